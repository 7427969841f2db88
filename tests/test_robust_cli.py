"""The CLI's robustness (issue 31): cheap checks before any model load, a bad item of a batch is
skipped in one line and the rest finish, outputs follow the umask, ``dsatok info`` loads no weights."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from dsatok.audio import save
from dsatok.tokens import Tokens


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from test_tokenizer import tiny_model

    d = tmp_path_factory.mktemp("m") / "m"
    tiny_model().save_pretrained(d)
    return d


def _wav(seconds: float, f0: float = 150.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def _dsatok(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsatok", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_and_outputs_are_checked_before_the_model_loads(tmp_path, monkeypatch, capsys):
    from dsatok.cli.main import main
    from dsatok.tokenizer import DSATokenizer

    def never(*_a, **_k):
        raise AssertionError("the model was loaded before the cheap checks")

    monkeypatch.setattr(DSATokenizer, "from_pretrained", classmethod(never))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = ((["encode", "in.wav", "-o", str(tmp_path / "o"), "--device", "cuda"], "--device cuda: CUDA is not available"),
             (["decode", "x.dsatok", "-o", str(tmp_path / "o"), "--device", "tpu:0"], "--device tpu:0:"),
             (["encode", "in.wav", "-o", str(blocker / "sub")], "cannot write in"),
             (["encode", "in.wav", "-o", str(blocker)], "exists and is not a directory"),
             (["reconstruct", "in.wav", "-o", str(tmp_path)], "is a directory"),
             (["recombine", "a.wav", "b.wav", "-o", str(blocker / "o.wav")], f"output file {blocker / 'o.wav'}"),
             (["demo", str(blocker), "--device", "cpu"], "exists and is not a directory"))
    for argv, msg in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("dsatok: error: ") and msg in err[0], (argv, err)


def test_a_batch_skips_every_kind_of_bad_item_and_finishes_the_rest(model_dir, tmp_path, capsys):
    from dsatok.cli.main import main
    from test_tokenizer import tiny_model

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    save(src / "a.wav", _wav(0.6))
    save(src / "sub" / "a.wav", _wav(0.5, 220))  # same name, other directory: both kept
    (src / "broken.wav").write_bytes(b"RIFF broken")
    save(src / "short.wav", _wav(0.05))
    save(src / "silent.wav", np.zeros(8000, np.float32))
    import soundfile as sf

    sf.write(str(src / "rate1.wav"), _wav(0.5)[:, None], 1)  # declares 1 Hz: hours once resampled
    tok_dir = tmp_path / "tok"
    rc = main(["encode", str(src), str(src / "a.wav"), str(tmp_path / "empty_missing.wav"), "-o", str(tok_dir),
               "--model", str(model_dir), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    skipped = [e for e in err if e.startswith("dsatok: skipped ")]
    for name in ("broken.wav", "short.wav", "silent.wav", "rate1.wav", "empty_missing.wav"):
        assert sum(name in e for e in skipped) == 1, (name, err)
    assert any("would overwrite" in e for e in skipped)  # the second a.wav given as a file
    assert err[-1] == f"dsatok: {len(skipped)} of 8 file(s) failed"
    assert sorted(str(p.relative_to(tok_dir)) for p in tok_dir.rglob("*.dsatok")) == ["a.dsatok", "sub/a.dsatok"]

    # decode: damaged, foreign and out-of-range token files are skipped, the good ones decoded
    good = Tokens.load(tok_dir / "a.dsatok")
    (tok_dir / "garbage.dsatok").write_bytes(b"\x00" * 64)
    tiny_model(seed=1).encode(_wav(0.5)).save(tok_dir / "foreign.dsatok")
    bad = Tokens.load(tok_dir / "a.dsatok")
    bad.semantic[0, 0] = 5000  # one flipped bit: beyond the semantic codebook
    from safetensors.torch import save_file

    meta = {"format": "dsatok-tokens", "version": 1, "fingerprint": good.fingerprint,
            "frame_rates": list(good.frame_rates), "codebook_sizes": list(good.codebook_sizes), "sample_rate": 16000}
    tensors = {k: getattr(bad, k).to(torch.int32).contiguous() for k in
               ("semantic", "acoustic", "semantic_lengths", "acoustic_lengths", "num_samples")}
    save_file(tensors, str(tok_dir / "range.dsatok"), metadata={"dsatok": json.dumps(meta)})
    del meta["fingerprint"]
    save_file(tensors, str(tok_dir / "nofp.dsatok"), metadata={"dsatok": json.dumps(meta)})
    rc = main(["decode", str(tok_dir), "-o", str(tmp_path / "wav"), "--model", str(model_dir), "--steps", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1] == "dsatok: 4 of 6 file(s) failed", err
    for name, why in (("garbage", "not a token file"), ("foreign", "fingerprint"), ("range", "semantic indices"),
                      ("nofp", "lacks field 'fingerprint'")):
        line = [e for e in err if f"{name}.dsatok" in e]
        assert len(line) == 1 and why in line[0], (name, err)
    assert sorted(str(p.relative_to(tmp_path / "wav")) for p in (tmp_path / "wav").rglob("*.wav")) == \
        ["a.wav", "sub/a.wav"]
    assert "Traceback" not in "\n".join(err)


def test_outputs_follow_the_umask(model_dir, tmp_path, capsys):
    from dsatok.cli.main import main

    save(tmp_path / "in.wav", _wav(0.5))
    old = os.umask(0o022)
    try:
        assert main(["encode", str(tmp_path / "in.wav"), "-o", str(tmp_path / "tok"), "--model", str(model_dir),
                     "--quiet"]) == 0
        assert main(["reconstruct", str(tmp_path / "in.wav"), "-o", str(tmp_path / "r.wav"), "--model", str(model_dir),
                     "--steps", "1"]) == 0
        from dsatok.files import atomic_write_json

        atomic_write_json(tmp_path / "summary.json", {"x": 1})
        os.umask(0o027)
        atomic_write_json(tmp_path / "private.json", {"x": 1})
    finally:
        os.umask(old)
    capsys.readouterr()
    for p in (tmp_path / "tok" / "in.dsatok", tmp_path / "r.wav", tmp_path / "summary.json"):
        assert p.stat().st_mode & 0o777 == 0o644, p
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o640


def test_info_reads_configs_only_and_says_what_loading_says(model_dir):
    from dsatok.cli.codec import describe_model_dir
    from dsatok.tokenizer import DSATokenizer, default_model_dir

    for d in (model_dir, default_model_dir()):
        assert describe_model_dir(d) == json.loads(json.dumps(DSATokenizer.from_pretrained(d).info())), d
    t0 = time.perf_counter()
    r = _dsatok("info")
    took = time.perf_counter() - t0
    assert r.returncode == 0 and json.loads(r.stdout)["model"].endswith("dsa-default")
    r = subprocess.run(
        [sys.executable, "-c", "import sys, dsatok.cli.main as m; m.main(['info']); "
                               "print('torch' in sys.modules, file=sys.stderr)"], capture_output=True, text=True)
    assert r.stderr.strip().splitlines()[-1] == "False", r.stderr  # no torch: nothing was loaded
    assert took < 5.0, took


def test_usage_errors_come_before_any_load(tmp_path):
    for argv, msg in ((["encode"], "the following arguments are required"),
                      (["decode", "x.dsatok"], "the following arguments are required: -o/--out"),
                      (["reconstruct", "x.wav", "-o", "y.wav", "--steps", "0"], "must be at least 1")):
        r = subprocess.run([sys.executable, "-c", "import sys, dsatok.cli.main as m\ntry:\n m.main(sys.argv[1:])\n"
                            "finally:\n print('torch' in sys.modules, file=sys.stderr)", *argv],
                           capture_output=True, text=True)
        lines = r.stderr.strip().splitlines()
        assert msg in lines[-2] and lines[-1] == "False", (argv, r.stderr)


def test_loading_a_model_skips_the_quantizer_packages_heavy_imports(model_dir):
    """FSQ comes from its own module: einx (torch._dynamo, sympy: 1.5-2 s) is not imported, and a later
    full import of vector_quantize_pytorch shares the same FSQ class, so the tokens are the same."""
    code = (
        "import sys, numpy as np\n"
        "from dsatok.tokenizer import DSATokenizer\n"
        f"m = DSATokenizer.from_pretrained({str(model_dir)!r})\n"
        "a = m.encode(np.sin(np.arange(8000) / 9).astype(np.float32) * 0.3).acoustic.tolist()\n"
        "print('einx' in sys.modules)\n"
        "import vector_quantize_pytorch as v\n"
        "print(v.FSQ is type(m.acoustic.fsq.fsq), 'einx' in sys.modules)\n"
        "print(m.encode(np.sin(np.arange(8000) / 9).astype(np.float32) * 0.3).acoustic.tolist() == a)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.split() == ["False", "True", "True", "True"], r.stdout + r.stderr


def test_the_whisper_digest_is_remembered_by_path_size_and_mtime(tmp_path, monkeypatch):
    from dsatok.models import whisper_ct2 as w

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "m").mkdir()
    f = tmp_path / "m" / "model.bin"
    f.write_bytes(b"a" * 1000)
    w.weights_digest.cache_clear()
    first = w.weights_digest(str(tmp_path / "m"))
    assert json.loads(w._digest_cache_file().read_text()) == {w._file_key(f): first}
    w.weights_digest.cache_clear()
    assert w.weights_digest(str(tmp_path / "m")) == first  # read back from the cache
    f.write_bytes(b"b" * 1001)  # rewritten: a new key, hashed again
    w.weights_digest.cache_clear()
    second = w.weights_digest(str(tmp_path / "m"))
    assert second != first and len(json.loads(w._digest_cache_file().read_text())) == 2
    w.weights_digest.cache_clear()


def test_audio_arrays_are_scaled_by_dtype_or_refused_in_one_line():
    from dsatok.audio import AudioError, as_waveforms

    x = _wav(0.5)
    pcm = np.round(x * 32767).astype(np.int16)
    (w16,) = as_waveforms(pcm, 16000)
    assert torch.allclose(w16, torch.from_numpy(pcm / 32768.0).float()) and float(w16.abs().max()) < 0.31
    (w8,) = as_waveforms((np.round(x * 127) + 128).astype(np.uint8), 16000)
    assert torch.allclose(w8, torch.from_numpy(x), atol=1 / 127)
    (wt,) = as_waveforms(torch.from_numpy(np.round(x * 2 ** 31 * 0.9).astype(np.int32)), 16000)
    assert torch.allclose(wt, torch.from_numpy(x * 0.9), atol=1e-6)
    for bad, why in ((x.astype(np.complex64), "complex64"), (x > 0, "bool"), (x.astype(object), "object"),
                     (torch.from_numpy(x).to(torch.complex64), "complex64"), (np.zeros((1, 2, 8000)), "shape (1, 2, 8000)"),
                     ([], "empty list"), (np.zeros((2, 0), np.float32), "empty audio"), (x * 32767, "peak amplitude"),
                     (np.zeros((0, 8000), np.float32), "empty audio"), (3.0, "type float")):
        with pytest.raises(AudioError, match=re.escape(why)) as e:
            as_waveforms(bad, 16000)
        assert "\n" not in str(e.value)
    with pytest.raises(AudioError, match="lengths: values must lie in"):
        as_waveforms(np.stack([x, x]), 16000, torch.tensor([8000, 9000]))
    with pytest.raises(AudioError, match="lengths: 1 lengths for a batch of 2"):
        as_waveforms(np.stack([x, x]), 16000, torch.tensor([8000]))
    with pytest.raises(AudioError, match="lengths: expected a 1-D integer array"):
        as_waveforms(np.stack([x, x]), 16000, torch.tensor([8000.0, 8000.0]))


def test_a_file_declaring_an_absurd_rate_is_refused_before_reading(tmp_path):
    import soundfile as sf

    from dsatok.audio import AudioError, load

    for rate in (1, 3999, 192001):
        sf.write(str(tmp_path / "x.wav"), _wav(0.5)[:, None], rate)
        t0 = time.perf_counter()
        with pytest.raises(AudioError, match=f"sample rate {rate} Hz is outside 4-192 kHz"):
            load(tmp_path / "x.wav")
        assert time.perf_counter() - t0 < 1.0
    sf.write(str(tmp_path / "x.wav"), _wav(0.5)[:, None], 4000)
    assert load(tmp_path / "x.wav").shape == (8000 * 4,)  # 2 s at 4 kHz, resampled to 16 kHz


def test_bad_tokens_and_options_are_refused_by_name():
    import dataclasses

    from dsatok.config import ConfigError
    from dsatok.tokens import TokenFileError
    from test_tokenizer import tiny_model

    m = tiny_model()
    tok = m.encode(torch.from_numpy(_wav(0.5)))
    cases = ((dict(semantic=tok.semantic + 1000), "semantic indices must lie in [0, 1000)"),
             (dict(num_samples=torch.tensor([0])), "num_samples must be positive"),
             (dict(num_samples=torch.tensor([-5])), "num_samples must be positive"),
             (dict(num_samples=tok.num_samples * 3), "longer than its"),
             (dict(num_samples=torch.tensor([800])), "shorter than 0.1 s"),
             (dict(semantic_lengths=tok.semantic_lengths + 1), "beyond the array"),
             (dict(acoustic_lengths=tok.acoustic_lengths * 0), "zero-length"),
             (dict(num_samples=torch.tensor([8000, 8000])), "batch sizes differ"),
             (dict(semantic=tok.semantic.float()), "semantic must hold integer indices, got float32"),
             (dict(semantic=tok.semantic[:, :0], semantic_lengths=torch.tensor([0])), "zero-length"),
             (dict(fingerprint=None), "'fingerprint' must be a non-empty string"))
    for change, msg in cases:
        with pytest.raises(TokenFileError, match=re.escape(msg)):
            m.decode(dataclasses.replace(tok, **change), steps=1)
    for kw, msg in ((dict(solver="rk4"), "decode option solver: unknown solver 'rk4'"),
                    (dict(steps=0), "decode option steps: must lie in [1, 1000]"),
                    (dict(steps=2.5), "decode option steps: expected an integer"),
                    (dict(cfg_scale=float("inf")), "decode option cfg_scale: expected a finite number"),
                    (dict(seed="x"), "decode option seed: expected an integer"),
                    (dict(overlap=10 ** 6), "decode option overlap: must lie in")):
        with pytest.raises(ConfigError, match=re.escape(msg)):
            m.decode(tok, **kw)
    with pytest.raises(TokenFileError, match="expected dsatok.Tokens, got dict"):
        m.decode({"semantic": tok.semantic})
