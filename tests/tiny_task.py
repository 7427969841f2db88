"""A tiny denoising task on mel frames, used to test the training engine (not a dsatok model)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from dsatok.audio import MelFrontend, lengths_to_mask


class TinyMelTask:
    def __init__(self) -> None:
        self.fe = MelFrontend()
        self.delay = float(os.environ.get("DSATOK_TEST_STEP_DELAY", "0"))

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Conv1d(100, 16, 3, padding=1), nn.GELU(), nn.Dropout(0.1), nn.Conv1d(16, 100, 3, padding=1))

    def _loss(self, model, batch, noise: bool) -> torch.Tensor:
        mel, lens = self.fe(batch.wav, batch.wav_lens)
        x = mel + 0.5 * torch.randn_like(mel) if noise else mel
        pred = model(x)
        mask = lengths_to_mask(lens, mel.shape[-1])[:, None].float()
        return ((pred - mel) ** 2 * mask).sum() / (mask.sum() * mel.shape[1])

    def training_step(self, model, batch, step):
        if self.delay:
            time.sleep(self.delay)
        return self._loss(model, batch, True), {"batch": float(len(batch))}

    def eval_step(self, model, batch):
        return {"loss": float(self._loss(model, batch, False))}

    def export(self, model, out_dir: Path) -> None:
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps({"kind": "tiny"}))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_dir / "model.safetensors"))


def run(corpus: str, run_dir: str, max_steps: int, workers: int = 0, ckpt_every: int = 5, ema: float = 0.9,
        extra: tuple[str, ...] = ()) -> dict:
    from dsatok.train.config import TrainConfig, load_config
    from dsatok.train.data import corpus_batches
    from dsatok.train.engine import Trainer

    torch.set_num_threads(1)
    cfg = load_config(TrainConfig, overrides=[f"run_dir={run_dir}", f"max_steps={max_steps}", f"ckpt_every={ckpt_every}",
                                              "eval_every=4", "eval_batches=2", "log_every=2", "keep_last=2",
                                              f"ema_decay={ema}", "optim.warmup_steps=3", "optim.lr=0.003",
                                              f"data.corpus={corpus}", f"data.num_workers={workers}",
                                              "data.max_frames=2500", "data.max_duration=10", "data.num_buckets=2", *extra])
    batches, dev_batches = corpus_batches(cfg.data, seed=cfg.seed)
    return Trainer(TinyMelTask(), cfg, batches, dev_batches, progress=False, log=lambda *a: print(*a, flush=True)).fit()


if __name__ == "__main__":
    a = sys.argv[1:]
    print(json.dumps(run(a[0], a[1], int(a[2]), workers=int(a[3]) if len(a) > 3 else 0), default=str))
