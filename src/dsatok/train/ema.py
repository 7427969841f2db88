"""Exponential moving average of model weights (kept in float32 on the model's device)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """``shadow = decay * shadow + (1 - decay) * param`` after each optimizer step.

    The effective decay warms up as ``min(decay, (1 + n) / (10 + n))`` so early averages are not
    dominated by the random initialisation. Only trainable parameters (``requires_grad``) are
    averaged; frozen parameters and buffers are the model's own, bit for bit (an average of a
    constant drifts in float arithmetic, and a frozen part — a stage-2 model's semantic tokenizer,
    or its acoustic tokenizer with ``freeze_acoustic`` — must export exactly as it was loaded).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
        self.trainable = _trainable(model)  # the names averaged (fixed when training starts)
        # frozen parameters never change and copy_to never reads them from the shadow: not touched
        self.frozen = {k for k, _ in model.named_parameters(remove_duplicate=False)} - self.trainable

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for k, v in model.state_dict().items():
            if k in self.frozen:
                continue
            s = self.shadow[k]
            if k in self.trainable and v.dtype.is_floating_point:
                s.mul_(d).add_(v.detach().float(), alpha=1 - d)
            else:  # buffers
                s.copy_(v)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, sd: dict) -> None:
        self.decay = sd["decay"]
        self.num_updates = sd["num_updates"]
        for k, v in sd["shadow"].items():
            self.shadow[k].copy_(v)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model``'s trainable parameters (cast to their dtypes);
        its frozen parameters and buffers stay as they are."""
        sd = model.state_dict()
        model.load_state_dict({k: (self.shadow[k].to(v.dtype) if k in self.trainable else v) for k, v in sd.items()},
                              strict=True)


def _trainable(model: nn.Module) -> set[str]:
    """State-dict names of ``model``'s parameters that require gradients."""
    return {k for k, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
