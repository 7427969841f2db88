"""Measurements of a corpus itself: how separable its speakers are, and the ASR floor.

* speaker accuracy: resemblyzer embeddings; each speaker's centroid comes from ``n_enroll`` of its
  utterances (test speakers: from the first half of theirs), and every *held-out* test utterance
  is assigned to the nearest centroid, among the test speakers and among all speakers;
* WER floor: faster-whisper on clean test utterances, the floor later WERs are compared with.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..files import atomic_write_json

__all__ = ["corpus_report"]


def corpus_report(root: str | Path, *, n_enroll: int = 6, max_test_per_speaker: int = 20,
                  wer_limit: int = 200, seed: int = 0, progress: bool = True, asr=None, encoder=None) -> dict:
    from tqdm import tqdm

    from ..audio import load
    from ..data.calibrate import nearest_centroid_accuracy
    from ..data.manifests import load_split
    from ..judges.text import wer

    root = Path(root)
    rng = random.Random(seed)
    by_spk: dict[str, list] = defaultdict(list)
    test_spk: set[str] = set()
    for split in ("train", "dev", "test"):
        recs, sups = load_split(root, split)
        for s in sups:
            by_spk[s.speaker].append((s, recs[s.recording_id].sources[0].source, split))
            if split == "test":
                test_spk.add(s.speaker)
    if not test_spk:
        raise ValueError(f"{root}: the test split is empty")
    if encoder is None:
        from ..judges.speaker import ResemblyzerEncoder

        encoder = ResemblyzerEncoder()
    t0 = time.time()
    enroll: dict[str, np.ndarray] = {}
    heldout: dict[str, np.ndarray] = {}
    work = []
    for spk, items in sorted(by_spk.items()):
        items = sorted(items, key=lambda x: x[0].id)
        if spk in test_spk:
            items = items[: 2 * max_test_per_speaker]
            half = max(1, len(items) // 2)
            work.append((spk, "enroll", items[:half]))
            work.append((spk, "heldout", items[half:]))
        else:
            work.append((spk, "enroll", rng.sample(items, min(n_enroll, len(items)))))
    n_items = sum(len(w[2]) for w in work)
    bar = tqdm(total=n_items, desc="speaker embeddings", disable=not progress)
    for spk, kind, items in work:
        embs = []
        for _, path, _ in items:
            embs.append(encoder.embed(load(path)))
            bar.update(1)
        if embs:
            (enroll if kind == "enroll" else heldout)[spk] = np.stack(embs)
    bar.close()
    heldout = {k: v for k, v in heldout.items() if len(v)}
    acc_test = nearest_centroid_accuracy({k: enroll[k] for k in test_spk}, heldout)
    acc_all = nearest_centroid_accuracy(enroll, heldout)
    t_spk = time.time() - t0

    if asr is None:
        from .asr import WhisperASR

        asr = WhisperASR()
    test_items = sorted((it for s in test_spk for it in by_spk[s]), key=lambda x: x[0].id)
    if wer_limit and len(test_items) > wer_limit:
        test_items = random.Random(seed).sample(test_items, wer_limit)
    t1 = time.time()
    refs, hyps, audio_s = [], [], 0.0
    per_engine: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for sup, path, _ in tqdm(test_items, desc="ASR", disable=not progress):
        x = load(path)
        audio_s += len(x) / 16000
        h = asr.transcribe(x)
        refs.append(sup.text)
        hyps.append(h)
        eng = (sup.custom or {}).get("engine", "unknown")
        per_engine[eng][0].append(sup.text)
        per_engine[eng][1].append(h)
    rep = {
        "corpus": str(root.resolve()),
        "speakers_total": len(by_spk),
        "speakers_test": len(test_spk),
        "speaker_encoder": getattr(encoder, "name", type(encoder).__name__),
        "speaker_accuracy_test_among_test": round(acc_test, 4),
        "speaker_accuracy_test_among_all": round(acc_all, 4),
        "heldout_test_utterances": int(sum(len(v) for v in heldout.values())),
        "asr": getattr(asr, "name", type(asr).__name__),
        "wer_clean_test": round(wer(refs, hyps), 4),
        "wer_clean_test_by_engine": {k: round(wer(*v), 4) for k, v in sorted(per_engine.items())},
        "wer_utterances": len(refs),
        "wer_audio_seconds": round(audio_s, 1),
        "seconds_speaker": round(t_spk, 1),
        "seconds_asr": round(time.time() - t1, 1),
    }
    atomic_write_json(root / "report.json", rep)
    return rep
