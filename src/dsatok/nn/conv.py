"""Convolution helpers: masked 1-D convs, SEANet residual stacks, ConvNeXt blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SEANetEncoder", "SEANetDecoder", "ConvNeXtBlock", "ResidualUnit"]


class ResidualUnit(nn.Module):
    """ELU → dilated Conv1d(k=3) → ELU → Conv1d(k=1), plus the input. ``[B, C, T] -> [B, C, T]``."""

    def __init__(self, ch: int, dilation: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.ELU(), nn.Conv1d(ch, ch // 2, 3, dilation=dilation, padding=dilation),
                                   nn.ELU(), nn.Conv1d(ch // 2, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _receptive_field(net: nn.Module) -> int:
    """Input frames that one output frame of a stack of Conv1d layers can see (upper bound)."""
    rf, jump = 1, 1
    for m in net.modules():
        if isinstance(m, nn.Conv1d):
            rf += (m.kernel_size[0] - 1) * m.dilation[0] * jump
            jump *= m.stride[0]
    return rf


class SEANetEncoder(nn.Module):
    """SEANet-style encoder over mel frames (seed appendix A.1).

    ``[B, in_ch, T] -> [B, out_dim, T / prod(strides)]``: an input conv to ``dims[0]``, then per
    stage residual units (dilations 1, 3, 9) and a strided conv to the next width; ``strides``
    like ``[2, 1, 1]`` (100 → 50 Hz) or ``[2, 2, 1]`` (100 → 25 Hz).
    """

    def __init__(self, in_ch: int, dims: list[int], strides: list[int], out_dim: int) -> None:
        super().__init__()
        if len(dims) != len(strides) + 1:
            raise ValueError(f"SEANet needs len(dims) == len(strides) + 1, got {dims} and {strides}")
        layers: list[nn.Module] = [nn.Conv1d(in_ch, dims[0], 7, padding=3)]
        for i, s in enumerate(strides):
            layers += [ResidualUnit(dims[i], d) for d in (1, 3, 9)]
            k = 2 * s if s > 1 else 3
            layers += [nn.ELU(), nn.Conv1d(dims[i], dims[i + 1], k, stride=s, padding=(k - s + 1) // 2)]
        layers += [nn.ELU(), nn.Conv1d(dims[-1], out_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        self.stride = 1
        for s in strides:
            self.stride *= s
        self.receptive_field = _receptive_field(self.net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t_out = -(-x.shape[-1] // self.stride)
        pad = t_out * self.stride - x.shape[-1]
        if pad:
            x = F.pad(x, (0, pad), mode="replicate")
        return self.net(x)[..., :t_out]


class SEANetDecoder(nn.Module):
    """Mirror of :class:`SEANetEncoder`: ``[B, in_dim, T] -> [B, out_ch, T * prod(strides)]``."""

    def __init__(self, in_dim: int, dims: list[int], strides: list[int], out_ch: int) -> None:
        super().__init__()
        if len(dims) != len(strides) + 1:
            raise ValueError(f"SEANet needs len(dims) == len(strides) + 1, got {dims} and {strides}")
        layers: list[nn.Module] = [nn.Conv1d(in_dim, dims[0], 7, padding=3)]
        for i, s in enumerate(strides):
            layers.append(nn.ELU())
            if s > 1:
                layers.append(nn.ConvTranspose1d(dims[i], dims[i + 1], 2 * s, stride=s, padding=s // 2))
            else:
                layers.append(nn.Conv1d(dims[i], dims[i + 1], 3, padding=1))
            layers += [ResidualUnit(dims[i + 1], d) for d in (1, 3, 9)]
        layers += [nn.ELU(), nn.Conv1d(dims[-1], out_ch, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        self.stride = 1
        for s in strides:
            self.stride *= s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[..., : x.shape[-1] * self.stride]


class ConvNeXtBlock(nn.Module):
    """Vocos ConvNeXt block: depthwise conv k=7 → LayerNorm → pointwise MLP (×mult) → layer scale."""

    def __init__(self, dim: int, mult: int = 3, layer_scale: float = 1e-2) -> None:
        super().__init__()
        self.dw = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, dim * mult)
        self.pw2 = nn.Linear(dim * mult, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, D, T] -> [B, D, T]``."""
        h = self.dw(x).transpose(1, 2)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)
