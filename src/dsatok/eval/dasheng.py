"""DashengTokenizer evaluations: reconstruction from the unified vs the semantic-only latent, and
speech enhancement in the latent space (PESQ / STOI / DNSMOS before and after).

Every row is computed on the *output* audio against the clean test utterance; the noisy input
and the clean input are reported as reference rows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import metrics as M
from .tables import Evaluators, add_extra_wer, mos_scores, speaker_cosine, summary_row, try_metric

__all__ = ["evaluate_dasheng_reconstruction", "evaluate_enhancement", "ENH_NOISES", "ENH_SNRS"]

ENH_NOISES = ("white", "pink", "brown", "hum", "babble")
ENH_SNRS = (-5.0, 0.0, 5.0, 10.0, 15.0)  # the issue's -5...15 dB range


def _test_cuts(corpus: str | Path, limit: int) -> list[Any]:
    from ..data.manifests import load_cuts

    cuts = list(load_cuts(str(corpus), "test"))
    return cuts[:limit] if limit else cuts


def _metrics(ev: Evaluators, clean: np.ndarray, out: np.ndarray, e_clean: np.ndarray, ident: str) -> dict[str, Any]:
    return {"id": ident, **mos_scores(ev, out), "sim": speaker_cosine(ev.speaker.embed(out), e_clean), "mel_l1": M.mel_l1(clean, out),
            "pesq": try_metric(M.pesq_wb, clean, out), "stoi": try_metric(M.stoi, clean, out)}


@torch.no_grad()
def evaluate_dasheng_reconstruction(models: dict[str, Any], corpus: str | Path, ev: Evaluators, *, limit: int = 0,
                                    revocoder: Any | None = None, progress: bool = True) -> dict[str, Any]:
    """Rows ``NAME`` (decode of the unified latent) and, for models with an acoustic injection,
    ``NAME/semantic-latent`` (the same decoder fed the semantic part alone), plus ``clean_input``.
    ``revocoder`` (a mel vocoder): also ``NAME/revocoded``, the decode's log-mel re-synthesised by it
    (is the decoder's magnitude or its waveform the weaker part?). Every ASR judge of ``ev`` scores
    every row. ``rtf`` is encode + decode seconds per second of audio on this machine."""
    from tqdm import tqdm

    from ..data.batches import load_cut_audio

    cuts = _test_cuts(corpus, limit)
    rows: dict[str, list[dict]] = {}
    hyps: dict[str, list[str]] = {}
    extra: dict[str, dict[str, list[str]]] = {}
    refs = [c.supervisions[0].text or "" for c in cuts]
    secs: dict[str, float] = {}
    audio_s = 0.0
    for c in tqdm(cuts, desc="dasheng reconstruction", disable=not progress):
        x = load_cut_audio(c)
        audio_s += len(x) / 16000
        e_clean = ev.speaker.embed(x)
        outs: list[tuple[str, np.ndarray]] = []
        for name, tok in models.items():
            t0 = time.perf_counter()
            z = tok.encode(torch.from_numpy(x))
            y = tok.decode(z.unified)[0].numpy()
            secs[name] = secs.get(name, 0.0) + time.perf_counter() - t0
            outs.append((name, y))
            if revocoder is not None:
                outs.append((f"{name}/revocoded", _revocode(revocoder, y)))
            if tok.cfg.inject_acoustic:
                outs.append((f"{name}/semantic-latent", tok.decode(z.semantic)[0].numpy()))
        for name, y in outs:
            rows.setdefault(name, []).append(_metrics(ev, x, y, e_clean, c.id))
            hyps.setdefault(name, []).append(ev.asr.transcribe(y))
            ev.transcribe_extra(y, extra.setdefault(name, {}))
        rows.setdefault("clean_input", []).append({"id": c.id, **mos_scores(ev, x)})
        hyps.setdefault("clean_input", []).append(ev.asr.transcribe(x))
        ev.transcribe_extra(x, extra.setdefault("clean_input", {}))
    table = [summary_row(k, v, refs, hyps[k]) for k, v in rows.items()]
    for r in table:
        add_extra_wer(r, refs, extra.get(r["system"], {}))
    for r in table:
        if r["system"] in secs:
            r["rtf"] = round(secs[r["system"]] / max(audio_s, 1e-9), 4)
    return {"table": table, "per_utterance": rows, "audio_seconds": round(audio_s, 1),
            "transcripts": {k: list(zip(refs, h))[:5] for k, h in hyps.items()}}


def _revocode(vocoder: Any, y: np.ndarray) -> np.ndarray:
    """``y``'s log-mel through a mel vocoder, at ``y``'s length."""
    from ..audio import MelFrontend

    mel = MelFrontend(vocoder.mel_config)(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None])[0]
    out = vocoder.synthesize(mel)[0].clamp(-1, 1).numpy()
    return np.pad(out, (0, max(0, len(y) - len(out))))[: len(y)]


def enhancement_items(cuts: list[Any], seed: int = 0, noises: tuple[str, ...] = ENH_NOISES,
                      snrs: tuple[float, ...] = ENH_SNRS) -> list[tuple[Any, np.ndarray, np.ndarray, str, float]]:
    """``(cut, clean, noisy, noise, snr)`` per test utterance: noise kinds and SNRs cycle over the
    utterances (babble: two *other* test utterances), reproducibly from ``seed``."""
    from ..data.batches import load_cut_audio
    from ..data.noise import mix_noise

    rng = np.random.default_rng(seed)
    wavs = [load_cut_audio(c) for c in cuts]
    out = []
    for k, (c, x) in enumerate(zip(cuts, wavs)):
        kind, snr = noises[k % len(noises)], snrs[(k // len(noises)) % len(snrs)]
        others = [wavs[(k + j) % len(wavs)] for j in (1, 2)] if len(wavs) > 2 else []
        n = max([len(x)] + [len(o) for o in others])
        batch = np.zeros((1 + len(others), n), np.float32)
        lens = np.array([len(x)] + [len(o) for o in others])
        batch[0, : len(x)] = x
        for j, o in enumerate(others, 1):
            batch[j, : len(o)] = o
        use = kind if (kind != "babble" or others) else "white"
        kinds = [use] + ["white"] * len(others)
        noisy = mix_noise(batch, lens, kinds, [snr] * len(kinds), rng)[0, : len(x)]
        out.append((c, x, noisy, kind, snr))
    return out


@torch.no_grad()
def evaluate_enhancement(enhancer: Any, corpus: str | Path, ev: Evaluators, *, limit: int = 0, steps: int | None = None,
                         seed: int = 0, start: float = 0.0, snrs: tuple[float, ...] = ENH_SNRS,
                         progress: bool = True) -> dict[str, Any]:
    """Rows ``noisy_input``, ``tokenizer_passthrough`` (decode of the noisy latent: what the
    tokenizer alone does to noisy speech), ``enhanced`` and ``clean_resynthesis`` (decode of the
    clean latent: the ceiling the decoder allows); every metric against the clean utterance.
    Also PESQ / STOI / DNSMOS of ``noisy_input``, ``tokenizer_passthrough`` and ``enhanced`` per SNR
    and per noise kind (the gain over the input, and over what the tokenizer alone makes of it).
    ``steps`` None: the enhancer's ``default_steps`` (the report's ``steps`` says which were used)."""
    from tqdm import tqdm

    steps = enhancer.enhancer.cfg.default_steps if steps is None else steps

    tok = enhancer.tokenizer
    items = enhancement_items(_test_cuts(corpus, limit), seed, snrs=tuple(snrs))
    rows: dict[str, list[dict]] = {k: [] for k in ("noisy_input", "tokenizer_passthrough", "enhanced",
                                                   "clean_resynthesis")}
    hyps: dict[str, list[str]] = {k: [] for k in rows}
    extra: dict[str, dict[str, list[str]]] = {k: {} for k in rows}
    refs = []
    t_enh = audio_s = 0.0
    for c, x, noisy, kind, snr in tqdm(items, desc="enhancement", disable=not progress):
        refs.append(c.supervisions[0].text or "")
        audio_s += len(x) / 16000
        e_clean = ev.speaker.embed(x)
        t0 = time.perf_counter()  # encode + enhance + decode: one encoding serves the passthrough row too
        zn = tok.encode(torch.from_numpy(noisy))
        enh = enhancer.enhance_latents(zn, steps=steps, seed=seed, start=start)[0].numpy()
        t_enh += time.perf_counter() - t0
        zc = tok.encode(torch.from_numpy(x))
        outs = {"noisy_input": noisy, "tokenizer_passthrough": tok.decode(zn.unified)[0].numpy(), "enhanced": enh,
                "clean_resynthesis": tok.decode(zc.unified)[0].numpy()}
        for name, y in outs.items():
            rows[name].append({**_metrics(ev, x, y, e_clean, c.id), "noise": kind, "snr": snr})
            hyps[name].append(ev.asr.transcribe(y))
            ev.transcribe_extra(y, extra[name])
    table = [summary_row(k, v, refs, hyps[k]) for k, v in rows.items()]
    for r in table:
        r.pop("snr", None)
        add_extra_wer(r, refs, extra[r["system"]])
    table[2]["rtf"] = round(t_enh / max(audio_s, 1e-9), 4)
    groups = []
    for key, values in (("snr", sorted({i[4] for i in items})), ("noise", sorted({i[3] for i in items}))):
        for v in values:
            g: dict[str, Any] = {"group": f"{key}={v:g}" if key == "snr" else f"noise={v}"}
            for name in ("noisy_input", "tokenizer_passthrough", "enhanced"):
                sel = [r for r in rows[name] if r[key] == v]
                g["n"] = len(sel)
                for m in ("pesq", "stoi", "mos_dnsmos"):
                    vals = [r.get(m) for r in sel if r.get(m) is not None]
                    g[f"{name}_{m}"] = round(float(np.mean(vals)), 4) if vals else None
            groups.append(g)
    return {"table": table, "groups": groups, "per_utterance": rows, "audio_seconds": round(audio_s, 1),
            "steps": steps, "start": start, "transcripts": {k: list(zip(refs, h))[:5] for k, h in hyps.items()}}
