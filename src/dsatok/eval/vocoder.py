"""Vocoder copy-synthesis: test audio → its true mel → each vocoder → waveform, scored against the
original (PESQ, STOI, MCD, mel L1, SIM, WER, naturalness) with each vocoder's real-time factor, and
the clean input's own WER / naturalness as the reference row."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from . import metrics as M
from .tables import Evaluators, mos_scores, speaker_cosine, summary_row, try_metric

__all__ = ["evaluate_vocoders"]


def evaluate_vocoders(vocoders: dict[str, Any], corpus: str | Path, ev: Evaluators, *, split: str = "test",
                      limit: int = 0, progress: bool = True, chunk_frames: int = 1000) -> dict[str, Any]:
    """One row per vocoder plus ``clean_input``; every vocoder must share one :class:`MelConfig`.

    ``vocoders``: name → module with ``mel_config`` and ``synthesize(mel [1, n_mels, T]) -> [1, N]``.
    """
    from tqdm import tqdm

    from ..audio import MelFrontend
    from ..data.manifests import load_cuts
    from ..models.vocoder import check_mel_match
    from ..data.batches import load_cut_audio

    if not vocoders:
        raise ValueError("no vocoder to evaluate")
    first, *rest = vocoders.items()
    for name, v in rest:
        check_mel_match(v.mel_config, first[1].mel_config, f"vocoder {name}")
    fe = MelFrontend(first[1].mel_config)
    sr = first[1].mel_config.sample_rate
    cuts = list(load_cuts(str(corpus), split))
    cuts = cuts[:limit] if limit else cuts
    names = [*vocoders, "clean_input"]
    rows: dict[str, list[dict]] = {n: [] for n in names}
    hyps: dict[str, list[str]] = {n: [] for n in names}
    seconds = {n: 0.0 for n in vocoders}
    refs: list[str] = []
    audio_s = 0.0
    for c in tqdm(cuts, desc="copy-synthesis", disable=not progress):
        x = load_cut_audio(c)
        refs.append(c.supervisions[0].text or "")
        audio_s += x.shape[0] / sr
        mel = fe(torch.from_numpy(x)[None])[0]
        ex = ev.speaker.embed(x)
        for name in names:
            if name == "clean_input":
                w, it = x, {}
            else:
                t0 = time.perf_counter()
                with torch.no_grad():
                    w = vocoders[name].synthesize(mel, chunk_frames=chunk_frames)[0].cpu().numpy()[: x.shape[0]]
                seconds[name] += time.perf_counter() - t0
                it = {"sim": speaker_cosine(ev.speaker.embed(w), ex), "mel_l1": M.mel_l1(x, w), "mcd": M.mcd(x, w),
                      "pesq": try_metric(M.pesq_wb, x, w), "stoi": try_metric(M.stoi, x, w)}
            rows[name].append({"id": c.id, **it, **mos_scores(ev, w)})
            hyps[name].append(ev.asr.transcribe(w))
    table = [summary_row(n, rows[n], refs, hyps[n]) for n in names]
    for r in table[:-1]:
        r["rtf"] = round(seconds[r["system"]] / max(audio_s, 1e-9), 4)
    clean = table[-1]["wer"]
    for r in table[:-1]:
        r["wer_minus_clean"] = round(r["wer"] - clean, 4)
    return {"table": table, "per_utterance": rows,
            "transcripts": {k: list(zip(refs, h))[:5] for k, h in hyps.items()}, "audio_seconds": round(audio_s, 1)}
