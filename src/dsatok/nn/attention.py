"""Multi-head attention with rotary position embeddings (RoPE), for self- and cross-attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RotaryEmbedding", "apply_rope", "Attention"]


class RotaryEmbedding(nn.Module):
    """RoPE tables. ``forward(pos [T] float) -> (cos, sin) [T, head_dim]``.

    Positions are floats so that two sequences at different frame rates (e.g. 100 Hz queries and
    50 Hz keys) can be placed on one time axis by scaling their positions.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head dim, got {head_dim}")
        inv = 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim)
        self.register_buffer("inv_freq", inv, persistent=False)

    def forward(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = pos.float()[:, None] * self.inv_freq[None]
        f = torch.cat([f, f], dim=-1)
        return f.cos(), f.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, H, T, Dh]`` by tables ``[T, Dh]`` (half-split convention)."""
    x1, x2 = x.chunk(2, dim=-1)
    rot = torch.cat([-x2, x1], dim=-1)
    return x * cos.to(x.dtype) + rot * sin.to(x.dtype)


class Attention(nn.Module):
    """Multi-head (self or cross) attention with optional RoPE on queries and keys.

    ``forward(x [B, Tq, D], ctx [B, Tk, Dc] | None, key_mask [B, Tk] bool (True = attend),
    rope_q, rope_k) -> [B, Tq, D]``. Keys and values can be precomputed once with
    :meth:`kv` and passed as ``kv=`` (the decoder does so: they do not depend on the flow time).
    """

    def __init__(self, dim: int, heads: int, ctx_dim: int | None = None, qk_norm: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(ctx_dim or dim, dim)
        self.v = nn.Linear(ctx_dim or dim, dim)
        self.out = nn.Linear(dim, dim)
        self.q_norm = nn.RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(self.head_dim) if qk_norm else nn.Identity()

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def kv(self, ctx: torch.Tensor, rope_k: tuple[torch.Tensor, torch.Tensor] | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``[B, H, Tk, Dh]`` of ``ctx [B, Tk, Dc]`` (RoPE applied to keys)."""
        k = self.k_norm(self._split(self.k(ctx)))
        if rope_k is not None:
            k = apply_rope(k, *rope_k)
        return k, self._split(self.v(ctx))

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None, key_mask: torch.Tensor | None = None,
                rope_q: tuple[torch.Tensor, torch.Tensor] | None = None,
                rope_k: tuple[torch.Tensor, torch.Tensor] | None = None,
                kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        q = self.q_norm(self._split(self.q(x)))
        if rope_q is not None:
            q = apply_rope(q, *rope_q)
        if kv is None:
            kv = self.kv(x if ctx is None else ctx, rope_k if ctx is not None else rope_q)
        k, v = kv
        mask = None
        if key_mask is not None:
            # rows whose keys are all masked attend to nothing: give them one dummy key (zeros out later)
            mask = key_mask[:, None, None, :]
            empty = ~key_mask.any(dim=1)
            if empty.any():
                mask = mask.clone()
                mask[empty, ..., 0] = True
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if key_mask is not None and (~key_mask.any(dim=1)).any():
            o = o * key_mask.any(dim=1).to(o.dtype)[:, None, None, None]
        b, h, t, dh = o.shape
        return self.out(o.transpose(1, 2).reshape(b, t, h * dh))
