"""A small mel renderer: token-rate features + a voice vector -> normalised log-mel.

Used twice with the same shape: as stage 1's *render head* (a loss on the quantised sequence that
keeps what a decoder needs to render words, dropped after training) and as the evaluation suite's
*renderability probe* (a fixed regression decoder that says how much of the words a token stream
still carries). The voice comes in as an oracle vector (the utterance's own mel mean and std per
bin), so the features only need to carry *what* is said.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FiLMResBlock", "MelRenderer", "voice_stats"]


def voice_stats(mel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-bin mean and std of ``mel [B, n_mels, T]`` over valid frames (``mask [B, T]``) -> ``[B, 2 * n_mels]``."""
    if mask is None:
        mask = torch.ones(mel.shape[0], mel.shape[2], dtype=torch.bool, device=mel.device)
    m = mask[:, None, :].to(mel.dtype)
    n = m.sum(-1).clamp(min=1.0)
    mean = (mel * m).sum(-1) / n
    var = (((mel - mean[..., None]) ** 2) * m).sum(-1) / n
    return torch.cat([mean, var.clamp(min=1e-6).sqrt()], dim=-1)


class FiLMResBlock(nn.Module):
    """``x [B, D, T], v [B, V] -> [B, D, T]``: conv -> GELU -> GroupNorm with FiLM from ``v`` -> conv, residual."""

    def __init__(self, dim: int, voice_dim: int, kernel: int = 5) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.c2 = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.film = nn.Linear(voice_dim, 2 * dim)

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        g, b = self.film(v)[..., None].chunk(2, dim=1)
        h = F.group_norm(F.gelu(self.c1(x)), 1) * (1 + g) + b
        return x + self.c2(h)


class MelRenderer(nn.Module):
    """``(x [B, T_s, in_dim], voice [B, 2 * n_mels]) -> mel [B, n_mels, T_s * up]``.

    A linear input map, ``up``-fold frame repetition to the mel rate, ``blocks`` FiLM residual
    conv blocks and a 1x1 output conv. ``embedding`` > 0 reads integer tokens ``[B, T_s]`` through a
    learnt table instead (the probe's "learnt table" input).
    """

    def __init__(self, in_dim: int, n_mels: int = 100, dim: int = 192, blocks: int = 6, up: int = 4,
                 embedding: int = 0) -> None:
        super().__init__()
        self.up, self.n_mels = up, n_mels
        self.inp: nn.Module = nn.Embedding(embedding, dim) if embedding > 0 else nn.Linear(in_dim, dim)
        self.blocks = nn.ModuleList(FiLMResBlock(dim, 2 * n_mels) for _ in range(blocks))
        self.out = nn.Conv1d(dim, n_mels, 1)

    def forward(self, x: torch.Tensor, voice: torch.Tensor) -> torch.Tensor:
        h = self.inp(x).transpose(1, 2).repeat_interleave(self.up, dim=2)
        for blk in self.blocks:
            h = blk(h, voice)
        return self.out(h)
