"""One AdamW update of a linear model, on 1 process (batch 8) or 2 gloo processes (batch 4 each)."""

import json
import os
import sys

import torch
from torch import nn


class LinTask:
    def build_model(self):
        return nn.Linear(6, 1)

    def training_step(self, model, batch, step):
        x, y = batch
        return ((model(x) - y) ** 2).mean(), {}

    def eval_step(self, model, batch):
        return {}

    def export(self, model, out_dir):
        pass


def main(out: str, steps: int) -> None:
    from dsatok.train.config import TrainConfig, load_config
    from dsatok.train.engine import Trainer

    torch.set_num_threads(1)
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 6, generator=g), torch.randn(8, 1, generator=g)
    per = 8 // world
    part = (x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per])

    def batches():
        while True:
            yield part

    cfg = load_config(TrainConfig, overrides=[f"run_dir={out}.run{world}", f"max_steps={steps}", "optim.warmup_steps=0",
                                              "optim.lr=0.05", "optim.grad_clip=0.5"])
    t = Trainer(LinTask(), cfg, batches(), None, progress=False, log=lambda *a: None)
    init = {f"init.{k}": v.flatten().tolist() for k, v in t.unwrapped.state_dict().items()}
    t.fit()
    if rank == 0:
        sd = t.unwrapped.state_dict()
        with open(out, "w") as f:
            json.dump({**init, **{k: v.flatten().tolist() for k, v in sd.items()}}, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
