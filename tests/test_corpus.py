import hashlib
import json
import os
import time
from pathlib import Path

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
