"""FSQ / residual FSQ with a fixed interface: ``[B, T, D] -> (quantized [B, T, D], indices [B, L, T])``.

Wraps ``vector_quantize_pytorch.FSQ`` and ``ResidualFSQ`` (straight-through gradients, implicit
codebooks), adds index ↔ code conversion and a codebook-usage monitor.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Quantizer", "codebook_stats", "bitrate"]


def bitrate(codebook_size: int, layers: int, frame_rate: float) -> float:
    """Bits per second of ``layers`` streams of ``codebook_size`` codes at ``frame_rate`` Hz."""
    return layers * frame_rate * math.log2(codebook_size)


class Quantizer(nn.Module):
    """``L`` stacked (residual) FSQ layers with ``levels`` per dimension, projected from/to ``dim``.

    - ``forward(x [B, T, D]) -> (quantized [B, T, D], indices [B, L, T] int64)``
    - ``decode(indices [B, L, T]) -> [B, T, D]`` equals the quantized output of ``forward``.
    """

    def __init__(self, dim: int, levels: list[int], layers: int = 1) -> None:
        super().__init__()
        from vector_quantize_pytorch import FSQ, ResidualFSQ

        if layers < 1:
            raise ValueError(f"quantizer layers must be >= 1, got {layers}")
        self.levels, self.layers = list(levels), layers
        self.codebook_size = int(math.prod(levels))
        if layers == 1:
            self.fsq = FSQ(levels=list(levels), dim=dim)
        else:
            self.fsq = ResidualFSQ(dim=dim, levels=list(levels), num_quantizers=layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(x.device.type, enabled=False):
            q, idx = self.fsq(x.float())
        idx = idx.long()
        idx = idx[:, None] if self.layers == 1 else idx.permute(0, 2, 1)
        return q.to(x.dtype), idx

    def bound_penalty(self, x: torch.Tensor, limit: float = 2.0) -> torch.Tensor:
        """Mean squared excess of the pre-bound projection ``|z|`` over ``limit``.

        FSQ bounds ``z`` with tanh: once ``|z|`` is large the straight-through gradient vanishes
        and every frame falls into one code (seen when CTC sits on its all-blank plateau). Adding
        this term to the loss keeps ``z`` in tanh's responsive range.
        """
        z = self.fsq.project_in(x.float())
        return torch.relu(z.abs() - limit).pow(2).mean()

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.dim() != 3 or indices.shape[1] != self.layers:
            raise ValueError(f"expected indices [B, {self.layers}, T], got {list(indices.shape)}")
        if int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size:
            raise ValueError(f"indices must lie in [0, {self.codebook_size}), got [{int(indices.min())}, "
                             f"{int(indices.max())}]")
        if self.layers == 1:
            return self.fsq.indices_to_codes(indices[:, 0].int())
        return self.fsq.get_output_from_indices(indices.permute(0, 2, 1).int())


def codebook_stats(indices: torch.Tensor, codebook_size: int, mask: torch.Tensor | None = None) -> dict[str, float]:
    """Fraction of codes used and perplexity of ``indices [B, T]`` (valid frames per ``mask [B, T]``)."""
    flat = indices[mask] if mask is not None else indices.reshape(-1)
    if flat.numel() == 0:
        return {"usage": 0.0, "perplexity": 0.0}
    counts = torch.bincount(flat.reshape(-1).long(), minlength=codebook_size).float()
    p = counts / counts.sum()
    ent = -(p[p > 0] * p[p > 0].log()).sum()
    return {"usage": float((counts > 0).float().mean()), "perplexity": float(ent.exp())}
