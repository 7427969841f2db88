"""X-ARES-style linear probing of continuous latents on an offline task suite.

Each representation maps a waveform to frames ``[T, D]``; an utterance becomes one vector by
masked mean pooling, then **LayerNorm → one Linear**, trained with Adam (lr 1e-3), selected on
dev accuracy, reported on test. The tasks come from what the synthetic corpus knows about each
utterance (labels in its manifests) plus noise we generate:

============ ======================================================== ===================
task         label                                                    splits
============ ======================================================== ===================
speaker      voice, among the dev + test voices (never seen in        70/15/15 per voice
             training)
gender       F / M                                                    corpus train/dev/test
engine       synthesiser (espeak, festival, flite, pico)              corpus train/dev/test
rate         speaking rate: slow (< 0.95), normal, fast (> 1.05)      corpus train/dev/test
pitch        pitch shift: down / none / up                            corpus train/dev/test
keyword      first word of the sentence, among the 8 most frequent    corpus train/dev/test
noise        added noise: none, white, pink, brown, hum (5 dB SNR)     corpus train/dev/test
============ ======================================================== ===================
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.noise import add_noise
from ..files import atomic_write_json, atomic_write_text

__all__ = ["TASKS", "NOISES", "labels_for", "linear_probe", "probe_suite", "pool", "Representation"]

TASKS = ("speaker", "gender", "engine", "rate", "pitch", "keyword", "noise")
NOISES = ("none", "white", "pink", "brown", "hum")
#: wav [N] (16 kHz) -> {representation name: frames [T, D]} (one encoding serves several rows)
Representation = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def _first_word(text: str) -> str:
    m = re.match(r"\W*([A-Za-z']+)", text or "")
    return m.group(1).lower() if m else ""


def labels_for(task: str, sup: Any, keywords: list[str]) -> str | None:
    """The label of one supervision for ``task`` (None: not part of this task)."""
    cu = sup.custom or {}
    if task == "speaker":
        return sup.speaker
    if task == "gender":
        return sup.gender
    if task == "engine":
        return cu.get("engine")
    if task == "rate":
        r = float(cu.get("rate", 1.0))
        return "slow" if r < 0.95 else ("fast" if r > 1.05 else "normal")
    if task == "pitch":
        c = float(cu.get("shift_cents", 0))
        return "down" if c < -50 else ("up" if c > 50 else "none")
    if task == "keyword":
        w = _first_word(sup.text)
        return w if w in keywords else None
    raise ValueError(f"unknown task '{task}' (choose from {TASKS})")


def pool(frames: torch.Tensor) -> torch.Tensor:
    """Mean over time: ``[T, D] -> [D]``."""
    return frames.float().mean(dim=0)


def linear_probe(train: tuple[torch.Tensor, list[str]], dev: tuple[torch.Tensor, list[str]],
                 test: tuple[torch.Tensor, list[str]], epochs: int = 100, lr: float = 1e-3,
                 seed: int = 0) -> dict[str, float]:
    """LayerNorm → Linear on pooled vectors ``[N, D]``; best epoch on dev accuracy, reported on test."""
    classes = sorted(set(train[1]))
    idx = {c: i for i, c in enumerate(classes)}

    def xy(part):
        keep = [i for i, y in enumerate(part[1]) if y in idx]
        return part[0][keep], torch.tensor([idx[part[1][i]] for i in keep], dtype=torch.long)

    (xt, yt), (xd, yd), (xe, ye) = xy(train), xy(dev), xy(test)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.LayerNorm(xt.shape[1]), nn.Linear(xt.shape[1], len(classes)))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_state = -1.0, None
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for b in torch.randperm(len(xt), generator=g).split(64):
            loss = F.cross_entropy(model(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = float((model(xd).argmax(-1) == yd).float().mean()) if len(yd) else 0.0
        if acc > best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    with torch.no_grad():
        test_acc = float((model(xe).argmax(-1) == ye).float().mean()) if len(ye) else float("nan")
    return {"test_acc": test_acc, "dev_acc": best, "classes": len(classes), "chance": 1.0 / len(classes),
            "n_train": len(yt), "n_test": len(ye)}


@dataclasses.dataclass
class _Item:
    id: str
    split: str
    sup: Any
    noise: str
    wav: np.ndarray


def _items(corpus: str | Path, limit: int, seed: int) -> list[_Item]:
    from ..data.manifests import load_cuts
    from ..data.batches import load_cut_audio

    rng = np.random.default_rng(seed)
    out = []
    for split in ("train", "dev", "test"):
        cuts = list(load_cuts(str(corpus), split))
        random.Random(seed).shuffle(cuts)
        for k, c in enumerate(cuts[: limit or None]):
            noise = NOISES[k % len(NOISES)]
            wav = add_noise(load_cut_audio(c), noise, 5.0, rng)
            out.append(_Item(c.id, split, c.supervisions[0], noise, wav))
    return out


@torch.no_grad()
def probe_suite(reps: list[Representation], corpus: str | Path, tasks: tuple[str, ...] = TASKS,
                limit: int = 400, epochs: int = 100, seed: int = 0, progress: bool = True) -> list[dict]:
    """Probe every representation on every task; one row per (representation, task).

    Every fifth utterance is kept clean and the others get one noise type each at 5 dB SNR
    (the ``noise`` task's labels); ``limit`` caps utterances per split.
    """
    from tqdm import tqdm

    from .probe import _speaker_split

    items = _items(corpus, limit, seed)
    firsts = Counter(_first_word(i.sup.text) for i in items if i.split == "train")
    keywords = [w for w, _ in firsts.most_common(8)]
    pooled: dict[str, list[torch.Tensor]] = {}
    for rep in reps:
        for i in tqdm(items, desc="encode", disable=not progress):
            for name, frames in rep(torch.from_numpy(i.wav)).items():
                pooled.setdefault(name, []).append(pool(frames))
    rows = []
    for rep_name, vec_list in pooled.items():
        vecs = torch.stack(vec_list)
        for task in tasks:
            if task == "speaker":
                sel = [k for k, i in enumerate(items) if i.split in ("dev", "test")]
                tr, dv, te = _speaker_split([items[k].id for k in sel], [items[k].sup.speaker for k in sel])
                parts = [[sel[j] for j in p] for p in (tr, dv, te)]
            else:
                parts = [[k for k, i in enumerate(items) if i.split == s] for s in ("train", "dev", "test")]

            def lab(k: int) -> str | None:
                return items[k].noise if task == "noise" else labels_for(task, items[k].sup, keywords)

            data = []
            for p in parts:
                p = [k for k in p if lab(k) is not None]
                data.append((vecs[p] if p else vecs[:0], [lab(k) for k in p]))
            if len(set(data[0][1])) < 2:
                continue
            with torch.enable_grad():
                r = linear_probe(data[0], data[1], data[2], epochs=epochs, seed=seed)
            rows.append({"representation": rep_name, "task": task, **r})
    return rows


def dasheng_reps(model: Any) -> Representation:
    """Semantic-only, acoustic-only and unified latents of a :class:`DashengTokenizer` (one encode)."""

    def fn(wav: torch.Tensor) -> dict[str, torch.Tensor]:
        z = model.encode(wav[None])
        n = max(1, int(z.lengths[0]))
        return {f"dasheng_{k}": getattr(z, k)[0, :n] for k in ("semantic", "acoustic", "unified")}

    return fn


def dsa_reps(model: Any) -> Representation:
    """The DSA tokenizer's semantic and acoustic tokens as their codebook vectors ``[T, D]`` (one encode)."""

    def fn(wav: torch.Tensor) -> dict[str, torch.Tensor]:
        t = model.encode(wav)
        return {"dsa_semantic_tokens": model.semantic.embed(t.semantic[:, : int(t.semantic_lengths[0])])[0],
                "dsa_acoustic_tokens": model.acoustic.embed(t.acoustic[..., : int(t.acoustic_lengths[0])])[0]}

    return fn


def markdown(rows: list[dict]) -> str:
    """Representations as rows, tasks as columns (test accuracy, chance in the header)."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    reps = list(dict.fromkeys(r["representation"] for r in rows))
    chance = {r["task"]: r["chance"] for r in rows}
    head = "| representation | " + " | ".join(f"{t} (chance {chance[t]:.2f})" for t in tasks) + " |"
    lines = [head, "|" + "---|" * (len(tasks) + 1)]
    for rep in reps:
        acc = {r["task"]: r["test_acc"] for r in rows if r["representation"] == rep}
        lines.append(f"| {rep} | " + " | ".join(f"{acc[t]:.3f}" if t in acc else "–" for t in tasks) + " |")
    return "\n".join(lines) + "\n"


def write_report(rows: list[dict], out_dir: str | Path, meta: dict) -> Path:

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "linear_probe.json", {"meta": meta, "rows": rows})
    atomic_write_text(out / "linear_probe.md", markdown(rows))
    return out
