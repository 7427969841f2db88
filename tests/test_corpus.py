import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import soundfile as sf

from conftest import tiny_options, tiny_voices
from dsatok.data.corpus import build_corpus, plan_corpus
from dsatok.data.manifests import load_cuts, load_split
from dsatok.data.text import load_sentences
from dsatok.data.voices import Voice


def _plan(**kw):
    return plan_corpus(tiny_voices(), load_sentences(), tiny_options(**kw))


def test_plan_is_deterministic_and_seed_dependent():
    a, pa = _plan()
    b, pb = _plan()
    c, _ = _plan(seed=8)
    assert a == b and pa == pb
    assert [u.text for u in a] != [u.text for u in c]


def test_plan_splits_are_speaker_and_sentence_disjoint():
    utts, pairs = _plan(hours=0.1)
    spk = {s: {u.speaker for u in utts if u.split == s} for s in ("train", "dev", "test")}
    txt = {s: {u.text for u in utts if u.split == s} for s in ("train", "dev", "test")}
    assert len(spk["test"]) == 3 and len(spk["dev"]) == 2 and len(spk["train"]) == 4
    for a, b in (("train", "test"), ("dev", "test"), ("train", "dev")):
        assert not spk[a] & spk[b] and not txt[a] & txt[b]
    hours = sum(0.32 + 0.28 * len(u.text.split()) / u.rate for u in utts) / 3600
    assert 0.1 <= hours < 0.11


def test_recombination_pairs_constraints():
    utts, pairs = _plan(hours=0.1, recomb_pairs=20)
    by = {u.id: u for u in utts}
    assert len(pairs) == 20
    for p in pairs:
        s, a = by[p["content"]], by[p["voice"]]
        assert s.split == a.split == "test"
        assert s.speaker != a.speaker and s.text != a.text
        assert abs(len(s.text.split()) - len(a.text.split())) >= 3
        assert p["text"] == s.text and p["voice_speaker"] == a.speaker


def test_built_corpus_manifests(tiny_corpus):
    meta = json.loads((tiny_corpus / "corpus.json").read_text())
    assert meta["failed"] == 0
    speakers = {}
    for split in ("train", "dev", "test"):
        recs, sups = load_split(tiny_corpus, split)
        assert len(recs) == len(sups) > 0
        for s in sups:
            r = recs[s.recording_id]
            info = sf.info(r.sources[0].source)
            assert info.samplerate == 16000 and info.channels == 1 and info.format == "FLAC"
            assert abs(info.frames / 16000 - s.duration) < 1e-6 and s.duration > 0.5
            assert s.text and s.speaker and s.gender in ("M", "F") and s.custom["engine"] == "espeak"
        speakers[split] = {s.speaker for s in sups}
    assert not (speakers["train"] & speakers["test"]) and not (speakers["dev"] & speakers["test"])
    cuts = load_cuts(tiny_corpus, "test")
    assert len(cuts) == len(load_split(tiny_corpus, "test")[1])
    audio = cuts[0].load_audio()
    assert audio.shape[0] == 1 and audio.shape[1] == cuts[0].num_samples


def test_recombination_targets_are_built(tiny_corpus):
    pairs = [json.loads(x) for x in (tiny_corpus / "recomb/pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 6
    test_ids = {s.id for s in load_split(tiny_corpus, "test")[1]}
    for p in pairs:
        assert p["content"] in test_ids and p["voice"] in test_ids
        t = tiny_corpus / p["target_path"]
        assert sf.info(t).frames > 8000
    # the target says S's text with A's voice: it differs from both sources
    p = pairs[0]
    t, s = (sf.read(tiny_corpus / p[k])[0] for k in ("target_path", "content_path"))
    assert len(t) != len(s) or not (abs(t - s).max() < 1e-4)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(sf.read(p)[0].tobytes()).hexdigest()
            for p in sorted(root.rglob("*.flac"))}


def test_build_is_deterministic(tiny_corpus, tmp_path):
    build_corpus(tmp_path, tiny_options(), voices=tiny_voices(), progress=False, log=lambda *a: None)
    assert _digest(tmp_path) == _digest(tiny_corpus)
    for split in ("train", "test"):
        a = [(s.id, s.text, s.speaker) for s in load_split(tmp_path, split)[1]]
        b = [(s.id, s.text, s.speaker) for s in load_split(tiny_corpus, split)[1]]
        assert a == b


def test_resume_skips_finished_and_repairs_broken(tmp_path):
    opts = tiny_options(hours=0.01, recomb_pairs=2)
    build_corpus(tmp_path, opts, voices=tiny_voices(), progress=False, log=lambda *a: None)
    files = sorted(tmp_path.rglob("*.flac"))
    before = _digest(tmp_path)
    deleted, truncated, kept = files[0], files[1], files[2]
    deleted.unlink()
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])  # a half-written file
    partial = kept.with_name(f".{kept.name}.part.flac")
    partial.write_bytes(b"junk")
    old_mtime = kept.stat().st_mtime_ns
    time.sleep(0.01)
    logs = []
    build_corpus(tmp_path, opts, voices=tiny_voices(), progress=False, log=logs.append)
    assert "2 to synthesise" in logs[0] and "1 partial files removed" in logs[0]
    assert _digest(tmp_path) == before
    assert kept.stat().st_mtime_ns == old_mtime  # finished files are not redone
    assert not partial.exists()


def test_failed_voice_is_reported_and_skipped(tmp_path):
    voices = tiny_voices() + [Voice("espeak", "no-such-voice-xyz", "M")]
    logs = []
    meta = build_corpus(tmp_path, tiny_options(hours=0.01, recomb_pairs=0, test_speakers=2),
                        voices=voices, progress=False, log=logs.append)
    assert meta["failed"] > 0
    assert any("skipped:" in m and "no-such-voice-xyz" in m for m in logs)
    all_ids = [s.speaker for split in ("train", "dev", "test") for s in load_split(tmp_path, split)[1]]
    assert "espeak_no-such-voice-xyz" not in all_ids and len(all_ids) > 10


def test_eval_voices_come_from_intelligible_voices():
    from dsatok.data.corpus import split_speakers
    from dsatok.data.voices import load_inventory, load_inventory_meta

    voices = load_inventory()
    wer = load_inventory_meta()["asr_wer"]
    ok = {v.id for v in voices if wer[v.id] <= 0.35}
    s = split_speakers(voices, 8, 4, seed=0, eligible=ok)
    assert {v.id for v in s["test"] + s["dev"]} <= ok
    assert len(s["train"]) == len(voices) - 12
    assert {v.id for v in s["train"]} >= {v.id for v in voices} - ok  # the rest all train
    few = split_speakers(voices, 8, 4, seed=0, eligible=set(list(ok)[:3]))  # too few: any voice
    assert len(few["test"]) == 8


def test_training_voices_near_a_test_voice_move_to_dev():
    import numpy as np

    from dsatok.data.corpus import keep_train_far, nearest_training_voice, split_speakers

    voices = tiny_voices()
    base = split_speakers(voices, 3, 2, seed=7)
    rng = np.random.default_rng(0)
    cents = {v.id: rng.standard_normal(16) for v in voices}
    t0, near = base["test"][0].id, base["train"][0].id
    cents[near] = cents[t0] + 0.05 * rng.standard_normal(16)  # a training voice that sounds like a test voice
    s, moved = keep_train_far(base, cents, 0.75)
    assert moved == {near: {"near": t0, "similarity": moved[near]["similarity"]}} and moved[near]["similarity"] > 0.9
    assert near not in {v.id for k in s for v in s[k]}  # left out of every split
    assert s["test"] == base["test"] and s["dev"] == base["dev"] and len(s["train"]) == len(base["train"]) - 1
    ids = {k: [v.id for v in s[k]] for k in s}
    nearest = nearest_training_voice(ids, cents)
    assert set(nearest) == set(ids["test"]) and all(n["similarity"] < 0.75 for n in nearest.values())
    assert nearest_training_voice({k: [v.id for v in base[k]] for k in base}, cents)[t0]["voice"] == near
    assert keep_train_far(base, {}, 0.75) == (base, {})  # no centroids: the split as it was
    # the plan offers isolated voices as test voices first: with `near` a twin of the first test
    # voice, neither of the two is drawn for test and nothing needs to be left out
    utts, _ = plan_corpus(voices, load_sentences(), tiny_options(hours=0.05), centroids=cents)
    spk = {k: {u.speaker for u in utts if u.split == k} for k in ("train", "dev", "test")}
    assert not {t0, near} & spk["test"] and {t0, near} <= spk["train"] | spk["dev"]
    assert len(spk["test"]) == 3 and sum(map(len, spk.values())) == len(voices)
    hours = sum(0.32 + 0.28 * len(u.text.split()) / u.rate for u in utts) / 3600
    assert 0.05 <= hours < 0.06
    from dsatok.data.corpus import Utterance, _left_out

    other = next(v.id for v in voices if v.id not in (t0, near))
    plan = [Utterance("a", "test", t0, "x", 1.0, "a.flac"), Utterance("b", "train", other, "y", 1.0, "b.flac")]
    left = _left_out(voices, plan, cents, 0.75)  # what corpus.json reports as left_out_near_test
    assert set(left) == {near} and left[near]["near"] == t0 and _left_out(voices, plan, cents, 0) == {}
    off, _ = plan_corpus(voices, load_sentences(), tiny_options(hours=0.05, far_test=0), centroids=cents)
    assert off == plan_corpus(voices, load_sentences(), tiny_options(hours=0.05))[0]  # the split without centroids


def test_bundled_inventories_keep_test_voices_far():
    """The default build's test voices: none within 0.75 of a training voice (by stored centroids)."""
    from dsatok.data.corpus import BuildOptions, nearest_training_voice
    from dsatok.data.voices import load_inventory, load_inventory_meta, load_voice_centroids

    voices, meta, cents = load_inventory(), load_inventory_meta(), load_voice_centroids()
    assert set(cents) == {v.id for v in voices}  # every bundled voice has its centroid
    utts, _ = plan_corpus(voices, load_sentences(), BuildOptions(hours=0.5, seed=0, eval_max_wer=0.25),
                          meta["asr_wer"], cents)
    spk = {s: sorted({u.speaker for u in utts if u.split == s}) for s in ("train", "dev", "test")}
    near = nearest_training_voice(spk, cents)
    assert len(near) == 8 and max(n["similarity"] for n in near.values()) < 0.75
    assert any(v.startswith(("kokoro", "hibari")) for v in spk["test"])  # natural test voices among them


def test_corpus_centroids_fill_an_inventory(tiny_corpus, tmp_path, monkeypatch, capsys):
    import numpy as np

    import dsatok.judges.speaker as speaker
    from dsatok.cli.main import main
    from dsatok.data.voices import load_voice_centroids, save_inventory

    class Loudness:  # a stand-in speaker encoder: level and brightness of the clip
        def embed(self, wav):
            w = np.asarray(wav, dtype=np.float64)
            return np.array([np.abs(w).mean(), np.abs(np.diff(w)).mean(), 1e-3])

    monkeypatch.setattr(speaker, "ResemblyzerEncoder", Loudness)
    inv, other = tmp_path / "inv.json", tmp_path / "other.json"
    save_inventory(tiny_voices()[:5], inv, meta={"asr_wer": {"x": 0.1}})
    save_inventory([Voice("espeak", "en-us+whisper", "M")], other)
    assert main(["corpus", "centroids", str(tiny_corpus), str(inv), str(other), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "centroids of 5 of 5 voices" in out and "no clips of 1: espeak_en-us_whisper" in out
    cents = load_voice_centroids(inv)
    assert set(cents) == {v.id for v in tiny_voices()[:5]}
    assert all(abs(np.linalg.norm(c) - 1) < 2e-3 for c in cents.values())  # unit norm, stored as float16
    assert json.loads(inv.read_text())["meta"]["asr_wer"] == {"x": 0.1}  # the rest of the meta is kept
    broken = json.loads(inv.read_text())
    broken["meta"]["centroids"][tiny_voices()[0].id] = "not base64!"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"broken.json: centroid of espeak_en-us_m1: not a stored centroid"):
        load_voice_centroids(tmp_path / "broken.json")
    assert main(["corpus", "centroids", str(tiny_corpus), str(tmp_path / "none.json")]) == 2
    assert "none.json: no inventory JSON there" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["corpus", "centroids", str(tiny_corpus), str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not a voice inventory" in capsys.readouterr().err
    assert main(["corpus", "centroids", str(tiny_corpus), str(other)]) == 2
    assert "none of the inventories' voices speaks in it" in capsys.readouterr().err


def test_voice_selection_stores_each_kept_voice_centroid():
    import numpy as np

    from dsatok.data.calibrate import select_voices
    from dsatok.data.voices import decode_centroid

    voices = tiny_voices()[:3]
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(8), rng.standard_normal(8)
    emb = {voices[0].id: a + 0.01 * rng.standard_normal((6, 8)), voices[1].id: a + 0.01 * rng.standard_normal((6, 8)),
           voices[2].id: b + 0.01 * rng.standard_normal((6, 8))}
    r = select_voices(voices, emb, threshold=0.8)
    assert [v.id for v in r.kept] == [voices[0].id, voices[2].id]  # the second sounds like the first
    cents = r.meta()["centroids"]
    assert set(cents) == {voices[0].id, voices[2].id}
    assert np.dot(decode_centroid(cents[voices[2].id]), b / np.linalg.norm(b)) > 0.99
