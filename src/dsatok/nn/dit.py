"""Diffusion-transformer blocks with AdaNorm on the flow time (seed section 3.2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention

__all__ = ["TimestepEmbedding", "AdaNorm", "DiTBlock"]


class TimestepEmbedding(nn.Module):
    """Sinusoidal embedding of ``t [B]`` in [0, 1] followed by an MLP: ``-> [B, dim]``."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        f = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device).float() / half)
        a = 1000.0 * t.float()[:, None] * f[None]
        return self.mlp(torch.cat([a.cos(), a.sin()], dim=-1))


class AdaNorm(nn.Module):
    """LayerNorm without affine whose shift, scale and output gate come from the time embedding.

    ``forward(x [B, T, D], c) -> (normed [B, T, D], gate [B, 1, D])``.

    - per-block (``shared=False``): ``c [B, D]`` is the time embedding and this norm owns its
      projection to ``3D`` (adaLN-Zero: the gate starts at zero, so a block starts as the identity);
    - shared (``shared=True``, adaLN-single as in PixArt-α): ``c [B, 3D]`` is this norm's slice of
      one projection shared by all blocks, and the norm only adds a learned ``[3D]`` offset. The
      DiT then spends ``9 D²`` on time conditioning once instead of once per block.
    """

    def __init__(self, dim: int, shared: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.shared = shared
        if shared:
            self.offset = nn.Parameter(torch.randn(3 * dim) / dim**0.5)
        else:
            self.mod = nn.Linear(dim, 3 * dim)
            nn.init.zeros_(self.mod.weight)
            nn.init.zeros_(self.mod.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = c + self.offset if self.shared else self.mod(F.silu(c))
        shift, scale, gate = m.unsqueeze(1).chunk(3, dim=-1)
        return self.norm(x) * (1 + scale) + shift, gate


class DiTBlock(nn.Module):
    """AdaNorm self-attention (RoPE) → AdaNorm cross-attention (RoPE; k/v from the acoustic
    context) → AdaNorm FFN (``ff_mult`` ×). ``[B, T, D] -> [B, T, D]``.

    ``c`` is the time embedding ``[B, D]``, or with ``shared_adanorm`` the shared time
    modulation ``[B, 9D]`` (three ``3D`` slices for the three norms; see :class:`AdaNorm`)."""

    def __init__(self, dim: int, heads: int, ctx_dim: int, ff_mult: int = 4, dropout: float = 0.0,
                 shared_adanorm: bool = False) -> None:
        super().__init__()
        self.shared = shared_adanorm
        self.n1, self.n2, self.n3 = (AdaNorm(dim, shared_adanorm) for _ in range(3))
        self.self_att = Attention(dim, heads)
        self.cross_att = Attention(dim, heads, ctx_dim=ctx_dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim * ff_mult), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
                                nn.Linear(dim * ff_mult, dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                kv: tuple[torch.Tensor, torch.Tensor], ctx_mask: torch.Tensor,
                rope_ctx: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``mask [B, T]`` valid query frames; ``kv`` from :meth:`Attention.kv` of the context;
        ``ctx_mask [B, Tk]`` which context frames may be attended."""
        c1, c2, c3 = c.chunk(3, dim=-1) if self.shared else (c, c, c)
        h, g = self.n1(x, c1)
        x = x + g * self.self_att(h, key_mask=mask, rope_q=rope)
        h, g = self.n2(x, c2)
        x = x + g * self.cross_att(h, key_mask=ctx_mask, rope_q=rope, kv=kv)
        h, g = self.n3(x, c3)
        return x + g * self.ff(h)
