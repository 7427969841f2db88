"""Supervised fine-tuning of the speech LM on tokenised triplets (loss on the response only).

Seed recipe: AdamW, lr 1e-5 for a pretrained base (1e-3 here for the tiny from-scratch LM),
warm-up ratio 0.1 then cosine decay, a few epochs. The model is saved atomically (written to a
temporary directory, then renamed) after every epoch and at the end.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from .format import IGNORE
from .model import SpeechLM

__all__ = ["collate", "train_lm", "examples_from"]


def examples_from(model: SpeechLM, triplets: list[dict[str, Any]], max_len: int) -> list[tuple[list[int], list[int]]]:
    """``(input_ids, labels)`` per triplet; longer than ``max_len`` are skipped."""
    out = []
    for t in triplets:
        ids, labels = model.layout.example(t["content_tokens"], t["voice_tokens"], t["target_tokens"])
        if len(ids) <= max_len:
            out.append((ids, labels))
    return out


def collate(batch: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``labels`` (-100 on padding) and ``attention_mask``: ``[B, T]``."""
    t = max(len(x) for x, _ in batch)
    ids = torch.zeros(len(batch), t, dtype=torch.long)
    lab = torch.full((len(batch), t), IGNORE, dtype=torch.long)
    mask = torch.zeros(len(batch), t, dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        lab[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "labels": lab, "attention_mask": mask}


def _save_atomic(model: SpeechLM, out: Path) -> None:
    tmp = out.with_name(f".{out.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    old = out.with_name(f".{out.name}.old")
    if out.exists():
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def train_lm(model: SpeechLM, train: list[tuple[list[int], list[int]]], dev: list[tuple[list[int], list[int]]],
             out_dir: str | Path, epochs: int = 5, lr: float = 1e-3, batch_size: int = 8, warmup_ratio: float = 0.1,
             seed: int = 0, max_steps: int = 0, time_limit_s: float = 0.0, progress: bool = True,
             log=print) -> dict[str, Any]:
    """Train, evaluate the response loss on ``dev`` after each epoch, save the best to ``out_dir``.

    ``time_limit_s`` (> 0) ends training after the step that crosses it, with the same final dev
    evaluation and save as a finished run (``stopped_by`` in the result says which limit ended it).
    """
    from tqdm import tqdm

    if not train:
        raise ValueError("no training examples (all longer than max_len?)")
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = max_steps or epochs * steps_per_epoch
    warm = max(1, int(warmup_ratio * total))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    history, best, step, t0, stopped = [], float("inf"), 0, time.time(), "steps"
    bar = tqdm(total=total, desc="lm", disable=not progress)
    while step < total:
        order = list(range(len(train)))
        rng.shuffle(order)
        model.train()
        for k in range(0, len(order), batch_size):
            b = collate([train[i] for i in order[k : k + batch_size]])
            loss = model(**b)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            if time_limit_s > 0 and time.time() - t0 >= time_limit_s and step < total:
                stopped, total = "time_limit", step
            if step >= total:
                break
        dev_loss = evaluate_loss(model, dev, batch_size) if dev else float(loss)
        history.append({"step": step, "train_loss": float(loss), "dev_loss": dev_loss})
        log(json.dumps(history[-1]))
        if dev_loss < best:
            best = dev_loss
            _save_atomic(model, out)
    bar.close()
    return {"steps": step, "best_dev_loss": best, "history": history, "seconds": round(time.time() - t0, 1),
            "stopped_by": stopped}


@torch.no_grad()
def evaluate_loss(model: SpeechLM, data: list[tuple[list[int], list[int]]], batch_size: int = 8) -> float:
    """Mean response cross-entropy per token over ``data``."""
    model.eval()
    tot, n = 0.0, 0
    for k in range(0, len(data), batch_size):
        b = collate(data[k : k + batch_size])
        tokens = int((b["labels"][:, 1:] != IGNORE).sum())
        tot += float(model(**b)) * tokens
        n += tokens
    return tot / max(n, 1)
