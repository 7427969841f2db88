"""The one training loop every stage uses.

A stage provides a :class:`Task` (model, loss, eval metrics, export); :class:`Trainer` owns
everything else: accelerate (DDP on one or many machines, mixed precision), gradient accumulation
and clipping, AdamW with warm-up and decay, EMA, atomic checkpoints with exact resume (model,
optimizer, scheduler, EMA, every rank's RNG states, data position), keep-last-K plus best,
TensorBoard scalars and media, a progress bar, and a per-step JSONL log.

Determinism contract: with the same config and data, a run killed at any point and resumed from
its last checkpoint produces the same losses, step for step, as an unbroken run.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..config import save_json
from .checkpoint import (CheckpointError, latest_valid, list_checkpoints, load_checkpoint, prune, rng_state,
                         save_checkpoint, set_rng_state)
from .config import TrainConfig
from .ema import EMA

__all__ = ["Task", "Trainer", "lr_lambda", "seed_everything"]


class Task(Protocol):
    """What a training stage supplies to the :class:`Trainer`."""

    def build_model(self) -> nn.Module:
        """A freshly initialised model (called after seeding)."""
        ...

    def training_step(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss to minimise and floats to log."""
        ...

    def eval_step(self, model: nn.Module, batch: Any) -> dict[str, float]:
        """Metrics of one dev batch (averaged over batches, weighted by ``batch_size``)."""
        ...

    def export(self, model: nn.Module, out_dir: Path) -> None:
        """Write inference weights: ``config.json`` + ``model.safetensors``."""
        ...


DEV_SEED_OFFSET = 7919  # dev evaluation seed = train seed + this (any fixed value apart from the train seed)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def lr_lambda(step: int, warmup: int, total: int, decay: str, min_ratio: float) -> float:
    """LR multiplier at optimizer step ``step`` (0-based): linear warm-up, then decay."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if decay == "constant" or total <= warmup:
        return 1.0
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    if decay == "linear":
        return 1.0 - (1.0 - min_ratio) * frac
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * frac))


def _batch_size(batch: Any) -> int:
    return len(batch) if hasattr(batch, "__len__") else 1


def _batch_seconds(batch: Any, sample_rate: int) -> float:
    lens = getattr(batch, "wav_lens", None)
    return float(lens.sum().item()) / sample_rate if lens is not None else 0.0


def _to(batch: Any, device: torch.device) -> Any:
    if hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


class Trainer:
    """Train ``task`` with ``cfg``; resumes from ``cfg.run_dir`` when it holds a checkpoint.

    Args:
        task: the stage's model / loss / export.
        cfg: loop settings.
        train_batches: endless iterable of batches; if it has ``state_dict`` / ``load_state_dict``
            (e.g. :class:`~dsatok.data.batches.ResumableBatches`) its position is checkpointed.
        dev_batches: zero-argument callable returning an iterable of dev batches (fixed order).
        full_config: the stage's whole resolved config, saved as ``<run_dir>/config.json``.
    """

    def __init__(self, task: Task, cfg: TrainConfig, train_batches: Iterable, dev_batches=None, *,
                 full_config: Any = None, log=print, progress: bool = True) -> None:
        from accelerate import Accelerator

        self.task, self.cfg, self.log = task, cfg, log
        self.train_batches, self.dev_batches = train_batches, dev_batches
        self.progress = progress
        self.run_dir = Path(cfg.run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
        if torch.cuda.is_available():  # TF32 matmuls/convs: ~fp32 accuracy at tensor-core speed
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.is_main = self.acc.is_main_process
        seed_everything(cfg.seed)
        model = task.build_model()
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        o = cfg.optim
        opt = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
        # The scheduler is stepped by us once per optimizer step (not by accelerate, which would
        # step it once per process), so the LR schedule is the same for any number of processes.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_lambda(s, o.warmup_steps, cfg.max_steps, o.decay, o.min_lr_ratio))
        self.model, self.opt = self.acc.prepare(model, opt)
        self.ema = EMA(self.unwrapped, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.step = 0
        self.best: dict[str, Any] = {"value": None, "step": None}
        self.full_config = full_config if full_config is not None else cfg
        self.writer = None

    # ------------------------------------------------------------------ helpers
    @property
    def unwrapped(self) -> nn.Module:
        return self.acc.unwrap_model(self.model)

    def _weights_for_export(self) -> nn.Module:
        m = self.unwrapped
        if self.ema is None:
            return m
        m2 = copy.deepcopy(m)
        self.ema.copy_to(m2)
        return m2

    def _state(self) -> dict[str, Any]:
        rngs = [rng_state()]
        if self.acc.num_processes > 1:
            gathered: list[Any] = [None] * self.acc.num_processes
            torch.distributed.all_gather_object(gathered, rngs[0])
            rngs = gathered
        data = self.train_batches.state_dict() if hasattr(self.train_batches, "state_dict") else None
        return {"step": self.step, "optimizer": self.opt.state_dict(), "scheduler": self.scheduler.state_dict(),
                "ema": self.ema.state_dict() if self.ema else None, "rng": rngs, "data": data,
                "best": self.best, "num_processes": self.acc.num_processes}

    def _resume(self) -> None:
        path = latest_valid(self.ckpt_dir, log=self.log if self.is_main else (lambda *a: None))
        if path is None:
            if list_checkpoints(self.ckpt_dir):
                raise CheckpointError(f"{self.ckpt_dir}: no checkpoint passes verification; move the directory "
                                      f"away to start afresh")
            return
        model_state, st = load_checkpoint(path)
        self.unwrapped.load_state_dict(model_state, strict=True)
        self.opt.load_state_dict(st["optimizer"])
        self.scheduler.load_state_dict(st["scheduler"])
        if self.ema is not None and st.get("ema"):
            self.ema.load_state_dict(st["ema"])
        if st.get("data") is not None and hasattr(self.train_batches, "load_state_dict"):
            self.train_batches.load_state_dict(st["data"])
        rngs = st["rng"]
        if len(rngs) != self.acc.num_processes:
            self.log(f"warning: {path} was written by {len(rngs)} process(es), resuming with "
                     f"{self.acc.num_processes}: data order and randomness will differ from an unbroken run")
        set_rng_state(rngs[self.acc.process_index % len(rngs)])
        self.step, self.best = int(st["step"]), st.get("best", self.best)
        if self.is_main:
            self.log(f"resumed from {path} (step {self.step})")

    def _checkpoint(self) -> None:
        state = self._state()  # collective: every rank takes part
        if self.is_main:
            save_checkpoint(self.ckpt_dir, self.step, self.unwrapped.state_dict(), state)
            protect = {f"step-{self.best['step']:08d}"} if self.best.get("step") is not None else set()
            prune(self.ckpt_dir, self.cfg.keep_last, protect)
        self.acc.wait_for_everyone()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Average dev metrics over ``eval_batches`` batches (EMA weights when EMA is on).

        The dev pass runs from a fixed seed (the flow time, noise, recombination mode and masks a
        stochastic loss draws are the same at every evaluation), so dev metrics of two steps differ
        only by the weights; the training RNG state is restored afterwards."""
        if self.dev_batches is None:
            return {}
        saved = rng_state()
        seed_everything(self.cfg.seed + DEV_SEED_OFFSET)
        model = self._weights_for_export()
        was_training = model.training
        model.eval()
        tot: dict[str, float] = {}
        n = 0
        for i, batch in enumerate(self.dev_batches()):
            if i >= self.cfg.eval_batches:
                break
            batch = _to(batch, self.acc.device)
            bs = _batch_size(batch)
            with self.acc.autocast():
                m = self.task.eval_step(model, batch)
            for k, v in m.items():
                tot[k] = tot.get(k, 0.0) + float(v) * bs
            n += bs
            if i == 0 and self.writer is not None and hasattr(self.task, "log_media"):
                self.task.log_media(model, batch, self.writer, self.step)
        model.train(was_training)
        set_rng_state(saved)
        return {k: v / max(n, 1) for k, v in tot.items()}

    def _improved(self, value: float) -> bool:
        b = self.best["value"]
        return b is None or (value < b if self.cfg.best_mode == "min" else value > b)

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_json(self.full_config, self.run_dir / "config.json")
        self.acc.wait_for_everyone()
        self._resume()
        if self.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.run_dir / "tb"))
            except ImportError:
                self.log("tensorboard is not installed: no TensorBoard logs (pip install 'dsatok[train]')")
        from tqdm import tqdm

        bar = tqdm(total=cfg.max_steps, initial=self.step, desc="train", disable=not (self.progress and self.is_main),
                   dynamic_ncols=True)
        log_f = (self.run_dir / "train_log.jsonl").open("a") if self.is_main else None
        it = iter(self.train_batches)
        sr = cfg.data.sample_rate
        t_last, audio_acc, steps_acc, skipped = time.time(), 0.0, 0, 0
        self.model.train()
        metrics: dict[str, float] = {}
        t_start = time.time()
        while self.step < cfg.max_steps:
            logs: dict[str, float] = {}
            loss_sum = 0.0
            finite = True
            for micro in range(cfg.grad_accum):
                batch = _to(next(it), self.acc.device)
                audio_acc += _batch_seconds(batch, sr) * self.acc.num_processes
                ctx = self.acc.no_sync(self.model) if micro < cfg.grad_accum - 1 else _nullctx()
                with ctx, self.acc.autocast():
                    loss, lg = self.task.training_step(self.model, batch, self.step)
                if not torch.isfinite(loss):
                    finite = False
                self.acc.backward(loss / cfg.grad_accum)
                loss_sum += float(loss.detach()) / cfg.grad_accum
                for k, v in lg.items():
                    logs[k] = logs.get(k, 0.0) + float(v) / cfg.grad_accum
            gnorm = None
            if cfg.optim.grad_clip > 0:
                gnorm = float(self.acc.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip))
                finite = finite and math.isfinite(gnorm)
            if finite:
                self.opt.step()
            else:
                skipped += 1
                if self.is_main:
                    self.log(f"warning: non-finite loss or gradient at step {self.step + 1}; update skipped")
            self.opt.zero_grad(set_to_none=True)
            self.scheduler.step()
            self.step += 1
            steps_acc += 1
            if self.ema is not None:
                self.ema.update(self.unwrapped)
            rec = {"step": self.step, "loss": loss_sum, "lr": self.scheduler.get_last_lr()[0], **logs}
            if gnorm is not None:
                rec["grad_norm"] = gnorm
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                dt = max(time.time() - t_last, 1e-9)
                speed = {"steps_per_s": steps_acc / dt, "audio_s_per_s": audio_acc / dt}
                if self.is_main:
                    bar.set_postfix(loss=f"{loss_sum:.4f}", steps_s=f"{speed['steps_per_s']:.2f}",
                                    audio_s_s=f"{speed['audio_s_per_s']:.1f}")
                    if self.writer is not None:
                        for k, v in {"loss": loss_sum, **logs, **speed, "lr": self.scheduler.get_last_lr()[0]}.items():
                            self.writer.add_scalar(f"train/{k}", v, self.step)
                rec.update(speed)
                t_last, audio_acc, steps_acc = time.time(), 0.0, 0
            if log_f is not None:
                log_f.write(json.dumps(rec) + "\n")
                log_f.flush()
            bar.update(1)
            if self.step % cfg.eval_every == 0 or self.step == cfg.max_steps:
                metrics = self.evaluate() if self.is_main else {}
                if self.is_main and metrics:
                    if self.writer is not None:
                        for k, v in metrics.items():
                            self.writer.add_scalar(f"dev/{k}", v, self.step)
                    val = metrics.get(cfg.best_metric)
                    is_best = val is not None and self._improved(val)
                    if is_best:
                        self.best = {"value": val, "step": self.step}
                    bar.write(f"step {self.step}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
                              + (" (best)" if is_best else ""))
                    if log_f is not None:
                        log_f.write(json.dumps({"step": self.step, "dev": metrics, "best": is_best}) + "\n")
                        log_f.flush()
                    if is_best:
                        self.task.export(self._weights_for_export(), self.run_dir / "best")
                self.best = _broadcast(self.acc, self.best)
                if self.best.get("step") == self.step and self.step % cfg.ckpt_every:
                    self._checkpoint()  # keep the best step resumable too
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.max_steps:
                self._checkpoint()
            if cfg.stop_step > 0 and cfg.stop_step <= self.step < cfg.max_steps:
                if self.is_main:
                    bar.write(f"stop_step {cfg.stop_step} reached: checkpoint and export")
                if self.step % cfg.ckpt_every:
                    self._checkpoint()
                break
            if cfg.time_limit_s > 0 and self.step < cfg.max_steps:
                over = time.time() - t_start > cfg.time_limit_s
                if self.acc.num_processes > 1:
                    over = bool(_broadcast(self.acc, over))  # every rank stops at the same step
                if over:
                    if self.is_main:
                        bar.write(f"time limit of {cfg.time_limit_s:g} s reached at step {self.step}: checkpoint and export")
                    if self.step % cfg.ckpt_every:
                        self._checkpoint()  # resumable from exactly here
                    break
        bar.close()
        if log_f is not None:
            log_f.close()
        if self.is_main:
            self.task.export(self._weights_for_export(), self.run_dir / "final")
            if self.writer is not None:
                self.writer.close()
        self.acc.wait_for_everyone()
        return {"step": self.step, "best": self.best, "dev": metrics, "skipped_updates": skipped}


class _nullctx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def _broadcast(acc: Any, obj: Any) -> Any:
    if acc.num_processes == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def export_checkpoint(task: Task, checkpoint: str | Path, out_dir: str | Path, use_ema: bool = True) -> Path:
    """Inference weights of one training checkpoint (EMA weights when it has them) via ``task.export``.

    For a run that was stopped before it wrote ``final/``, or to compare checkpoints.
    """
    from .checkpoint import load_checkpoint, verify

    path = Path(checkpoint)
    verify(path)
    model_state, st = load_checkpoint(path)
    model = task.build_model()
    model.load_state_dict(model_state, strict=True)
    if use_ema and st.get("ema"):
        ema = EMA(model, st["ema"]["decay"])
        ema.load_state_dict(st["ema"])
        ema.copy_to(model)
    model.eval()
    out = Path(out_dir)
    task.export(model, out)
    return out
