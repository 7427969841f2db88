"""Masked attentive statistics pooling (seed appendix A.4)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AttentiveStatsPool"]


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and standard deviation over valid frames, projected to ``out_dim``.

    ``forward(x [B, T, D], mask [B, T] bool) -> [B, out_dim]``. Padded frames get zero weight.
    """

    def __init__(self, dim: int, out_dim: int = 256, hidden: int = 128) -> None:
        super().__init__()
        self.att = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.proj = nn.Linear(2 * dim, out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.att(x).squeeze(-1)
        if mask is not None:
            logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        w = logits.softmax(dim=-1).unsqueeze(-1)
        mu = (w * x).sum(1)
        var = (w * x * x).sum(1) - mu * mu
        return self.proj(torch.cat([mu, var.clamp_min(1e-6).sqrt()], dim=-1))
