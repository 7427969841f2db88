"""Conformer encoder over log-mel (the offline default semantic speech encoder)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention, RotaryEmbedding

__all__ = ["ConvSubsampling", "ConformerBlock", "Conformer"]


class ConvSubsampling(nn.Module):
    """Strided 1-D conv front end: ``[B, n_mels, T] -> [B, T / factor, dim]`` (factor = 2^k)."""

    def __init__(self, n_mels: int, dim: int, factor: int) -> None:
        super().__init__()
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"subsampling factor must be a power of 2, got {factor}")
        layers: list[nn.Module] = [nn.Conv1d(n_mels, dim, 3, padding=1), nn.GELU()]
        f = factor
        while f > 1:
            layers += [nn.Conv1d(dim, dim, 4, stride=2, padding=1), nn.GELU()]
            f //= 2
        self.net = nn.Sequential(*layers)
        self.factor = factor

    def forward(self, mel: torch.Tensor, mel_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames beyond each item's length are zeroed before every conv, so a batched item gives
        the same output as the item alone (the convs' own zero padding sees the same zeros)."""
        t_out = -(-mel.shape[-1] // self.factor)
        pad = t_out * self.factor - mel.shape[-1]
        if pad:
            mel = F.pad(mel, (0, pad))
        h, lens = mel, mel_lens
        for layer in self.net:
            if isinstance(layer, nn.Conv1d):
                h = h * (torch.arange(h.shape[-1], device=h.device)[None] < lens[:, None])[:, None].to(h.dtype)
                h = layer(h)
                if layer.stride[0] > 1:
                    lens = torch.div(lens + 1, 2, rounding_mode="floor")
            else:
                h = layer(h)
        return h.transpose(1, 2)[:, :t_out], lens


class _FFN(nn.Module):
    def __init__(self, dim: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Linear(dim * mult, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConformerBlock(nn.Module):
    """Macaron FFN/2 → RoPE self-attention → depthwise conv module → FFN/2 → LayerNorm. ``[B, T, D]``."""

    def __init__(self, dim: int, heads: int, ff_mult: int = 4, kernel: int = 15, dropout: float = 0.1) -> None:
        super().__init__()
        self.ff1, self.ff2 = _FFN(dim, ff_mult, dropout), _FFN(dim, ff_mult, dropout)
        self.att_norm = nn.LayerNorm(dim)
        self.att = Attention(dim, heads)
        self.conv_norm = nn.LayerNorm(dim)
        self.pw1 = nn.Conv1d(dim, 2 * dim, 1)
        self.dw = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.bn = nn.LayerNorm(dim)  # per frame (BatchNorm / GroupNorm would mix in padding)
        self.pw2 = nn.Conv1d(dim, dim, 1)
        self.drop = nn.Dropout(dropout)
        self.out_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.drop(self.att(self.att_norm(x), key_mask=mask, rope_q=rope))
        h = self.conv_norm(x).transpose(1, 2)
        h = F.glu(self.pw1(h), dim=1).masked_fill(~mask[:, None], 0.0)  # padding must not enter the dw conv
        h = self.dw(h).masked_fill(~mask[:, None], 0.0)
        h = self.pw2(F.silu(self.bn(h.transpose(1, 2)).transpose(1, 2)))
        x = x + self.drop(h.transpose(1, 2))
        x = x + 0.5 * self.ff2(x)
        return self.out_norm(x)


class Conformer(nn.Module):
    """Conformer at ``100 / subsample`` Hz over log-mel frames."""

    def __init__(self, n_mels: int, dim: int, layers: int, heads: int, subsample: int, ff_mult: int = 4,
                 kernel: int = 15, dropout: float = 0.1) -> None:
        super().__init__()
        self.sub = ConvSubsampling(n_mels, dim, subsample)
        self.blocks = nn.ModuleList(ConformerBlock(dim, heads, ff_mult, kernel, dropout) for _ in range(layers))
        self.rope = RotaryEmbedding(dim // heads)

    def forward(self, mel: torch.Tensor, mel_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mel [B, n_mels, T], mel_lens [B]) -> ([B, T', D], lens [B])``."""
        from ..audio import lengths_to_mask

        x, lens = self.sub(mel, mel_lens)
        mask = lengths_to_mask(lens, x.shape[1])
        rope = self.rope(torch.arange(x.shape[1], device=x.device))
        for b in self.blocks:
            x = b(x, mask, rope)
        return x, lens
