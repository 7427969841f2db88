"""Choose which synthesiser settings are really different speakers.

Speaker labels must follow what a speaker encoder separates, not the settings' names (espeak
accents of one variant sound like one person). For each candidate voice we synthesise
``n_enroll`` enrolment and ``n_heldout`` held-out sentences, embed them with a third-party
encoder (resemblyzer), and greedily keep a candidate (most natural first) only when the cosine
similarity of its enrolment centroid to every kept centroid stays below ``threshold``. The
report gives the held-out nearest-centroid accuracy among the kept voices.
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .voices import SynthesisError, Voice, synthesize

__all__ = ["CalibrationResult", "embed_candidates", "candidate_wer", "select_voices", "nearest_centroid_accuracy",
           "corpus_centroids", "centroid_table"]


@dataclasses.dataclass
class CalibrationResult:
    kept: list[Voice]
    rejected: list[tuple[str, str, float]]  # (voice id, closest kept id, similarity)
    failed: list[str]
    heldout_accuracy: float
    threshold: float
    max_kept_similarity: float
    centroids: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # kept id -> unit centroid, all clips

    def meta(self) -> dict:
        return {
            "encoder": "resemblyzer-ge2e",
            "threshold": self.threshold,
            "n_kept": len(self.kept),
            "heldout_nearest_centroid_accuracy": round(self.heldout_accuracy, 4),
            "max_similarity_between_kept": round(self.max_kept_similarity, 4),
            "rejected": [{"voice": a, "closest": b, "similarity": round(s, 4)} for a, b, s in self.rejected],
            "failed": self.failed,
            "centroids": centroid_table(self.centroids),
        }


def _synth_job(args: tuple[Voice, list[str], str]) -> tuple[str, list[str] | str]:
    voice, texts, folder = args
    paths = []
    try:
        for i, t in enumerate(texts):
            p = Path(folder) / f"{voice.id}_{i}.flac"
            synthesize(voice, t, p)
            paths.append(str(p))
    except SynthesisError as e:
        return voice.id, str(e)
    return voice.id, paths


def nearest_centroid_accuracy(enroll: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> float:
    """Accuracy of assigning each test embedding to the speaker with the closest centroid.

    Args:
        enroll: speaker -> enrolment embeddings ``[n, D]``.
        test: speaker -> held-out embeddings ``[m, D]``.
    """
    names = sorted(enroll)
    cents = np.stack([enroll[n].mean(0) / np.linalg.norm(enroll[n].mean(0)) for n in names])
    correct = total = 0
    for n, embs in test.items():
        pred = (embs @ cents.T).argmax(1)
        correct += int(sum(names[p] == n for p in pred))
        total += len(embs)
    return correct / max(total, 1)


def embed_candidates(
    candidates: list[Voice],
    sentences: list[str],
    *,
    n_utts: int = 7,
    seed: int = 0,
    jobs: int = 2,
    encoder=None,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Synthesise ``n_utts`` sentences per candidate and embed them.

    Returns:
        (voice id -> embeddings ``[n_utts, D]``, messages of the voices that failed).
    """
    from tqdm import tqdm

    from ..audio import load

    if encoder is None:
        from ..judges.speaker import ResemblyzerEncoder

        encoder = ResemblyzerEncoder()
    texts = random.Random(seed).sample(sentences, n_utts)
    emb: dict[str, np.ndarray] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dsatok-calib-") as td:
        jobs_in = [(v, texts, td) for v in candidates]
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            results = list(tqdm(ex.map(_synth_job, jobs_in), total=len(jobs_in), desc="synthesise", disable=not progress))
        for vid, paths in tqdm(results, desc="embed", disable=not progress):
            if isinstance(paths, str):
                failed.append(paths)
                continue
            emb[vid] = np.stack([encoder.embed(load(p)) for p in paths])
    return emb, failed


def select_voices(
    candidates: list[Voice],
    emb: dict[str, np.ndarray],
    *,
    threshold: float = 0.75,
    n_enroll: int = 4,
    failed: list[str] | None = None,
) -> CalibrationResult:
    """Greedy selection (candidate order) of voices whose enrolment centroids stay below
    ``threshold`` cosine similarity to every kept one; held-out accuracy on the rest."""
    kept: list[Voice] = []
    cents: list[np.ndarray] = []
    rejected: list[tuple[str, str, float]] = []
    for v in candidates:
        if v.id not in emb:
            continue
        c = emb[v.id][:n_enroll].mean(0)
        c = c / np.linalg.norm(c)
        if cents:
            sims = np.stack(cents) @ c
            j = int(sims.argmax())
            if sims[j] >= threshold:
                rejected.append((v.id, kept[j].id, float(sims[j])))
                continue
        kept.append(v)
        cents.append(c)
    acc = nearest_centroid_accuracy(
        {v.id: emb[v.id][:n_enroll] for v in kept}, {v.id: emb[v.id][n_enroll:] for v in kept}
    )
    m = np.stack(cents) @ np.stack(cents).T
    np.fill_diagonal(m, -1)
    return CalibrationResult(kept, rejected, list(failed or []), acc, threshold, float(m.max()),
                             {v.id: _unit_mean(emb[v.id]) for v in kept})


def _unit_mean(e: np.ndarray) -> np.ndarray:
    m = np.asarray(e, dtype=np.float64).mean(0)
    return m / max(float(np.linalg.norm(m)), 1e-12)


def centroid_table(centroids: dict[str, np.ndarray]) -> dict[str, str]:
    """Centroids as an inventory stores them (``meta.centroids``; :func:`~dsatok.data.voices.encode_centroid`)."""
    from .voices import encode_centroid

    return {k: encode_centroid(v) for k, v in sorted(centroids.items())}


def corpus_centroids(corpus: str | Path, *, clips: int = 0, encoder=None,
                     progress: bool = True) -> dict[str, np.ndarray]:
    """Each speaker's unit-norm centroid ``[D]`` over its clips in every split of a built corpus
    (``clips``: that many spread over its utterances; 0: all)."""
    from collections import defaultdict

    from tqdm import tqdm

    from .batches import load_cut_audio
    from .manifests import load_cuts, spread

    if encoder is None:
        from ..judges.speaker import ResemblyzerEncoder

        encoder = ResemblyzerEncoder()
    by: dict[str, list] = defaultdict(list)
    for split in ("train", "dev", "test"):
        for c in load_cuts(corpus, split):
            by[c.supervisions[0].speaker].append(c)
    return {v: _unit_mean(np.stack([encoder.embed(load_cut_audio(c)) for c in spread(cuts, clips)]))
            for v, cuts in tqdm(sorted(by.items()), desc="voices", disable=not progress)}


def candidate_wer(
    candidates: list[Voice],
    sentences: list[str],
    *,
    n_utts: int = 4,
    seed: int = 1,
    jobs: int = 2,
    asr: Any,
    progress: bool = True,
) -> dict[str, float]:
    """Word error rate of an ASR model per candidate voice.

    ``asr``: anything with ``transcribe(wav [N]) -> str``, e.g. ``dsatok.eval.asr.WhisperASR()``
    (offline faster-whisper; passed in because the data layer does not import evaluation code).

    Voices no listener (human or ASR) can follow make poor training and test speakers; the
    selection drops candidates above a WER limit before choosing distinct speakers.
    """
    from tqdm import tqdm

    from ..audio import load
    from ..judges.text import wer

    texts = random.Random(seed).sample(sentences, n_utts)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dsatok-calib-wer-") as td:
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            results = list(tqdm(ex.map(_synth_job, [(v, texts, td) for v in candidates]), total=len(candidates),
                                desc="synthesise", disable=not progress))
        for vid, paths in tqdm(results, desc="transcribe", disable=not progress):
            if isinstance(paths, str):
                continue
            out[vid] = wer(texts, [asr.transcribe(load(p)) for p in paths])
    return out
