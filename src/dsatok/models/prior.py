"""Semantic prior of the flow decoder: tokens (+ a voice vector) → a mel estimate μ.

The Grad-TTS / Matcha-TTS prior, with CosyVoice's token encoder in front of the flow: the decoder
does not have to discover what the semantic tokens mean through a zero-initialised adapter; a
token encoder with its own loss ``|μ − mel|`` learns it directly, and the flow then refines μ.

``z_s [B, T_s]`` → frozen FSQ code values ``[B, T_s, d]`` (from the semantic tokenizer's levels,
exactly ``SemanticTokenizer``'s implicit codebook before its output projection) → trainable MLP
→ ConvNeXt blocks at the token rate → FiLM by a voice vector ``[B, D_v]`` → linear upsampling to
the mel rate → ConvNeXt blocks → ``h [B, T_mel, D]`` and ``μ [B, n_mels, T_mel]`` (normalised
mel units of the decoder).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.conv import ConvNeXtBlock

__all__ = ["fsq_code_table", "SemanticPrior"]


def fsq_code_table(levels: Sequence[int]) -> torch.Tensor:
    """``[prod(levels), len(levels)]`` code values in [-1, 1] of an FSQ with ``levels``.

    Index ``i`` has digit ``(i // basis_j) % L_j`` per dimension (``basis = cumprod([1] + L[:-1])``),
    mapped to ``(digit - L_j // 2) / (L_j // 2)``: the implicit codebook of
    ``vector_quantize_pytorch.FSQ`` (``indices_to_codes`` before ``project_out``).
    """
    lv = torch.tensor(list(levels), dtype=torch.long)
    basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.long), lv[:-1]]), 0)
    idx = torch.arange(int(math.prod(levels)))[:, None]
    digits = (idx // basis) % lv
    half = (lv // 2).float()
    return (digits.float() - half) / half


class SemanticPrior(nn.Module):
    """``forward(sem_idx [B, T_s], t_mel, voice [B, D_v]) -> (h [B, T_mel, D], mu [B, n_mels, T_mel], states [B, T_s, D])``.

    ``states`` are the token-rate features (before the voice): an auxiliary CTC head reads them
    while training.
    """

    def __init__(self, levels: Sequence[int], dim: int, token_blocks: int, mel_blocks: int, voice_dim: int,
                 n_mels: int) -> None:
        super().__init__()
        self.register_buffer("codes", fsq_code_table(levels), persistent=False)
        self.inp = nn.Sequential(nn.Linear(len(levels), dim), nn.SiLU(), nn.Linear(dim, dim))
        self.token_blocks = nn.ModuleList(ConvNeXtBlock(dim) for _ in range(token_blocks))
        self.film = nn.Linear(voice_dim, 2 * dim)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.mel_blocks = nn.ModuleList(ConvNeXtBlock(dim) for _ in range(mel_blocks))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, n_mels)

    def forward(self, sem_idx: torch.Tensor, t_mel: int, voice: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.inp(self.codes[sem_idx]).transpose(1, 2)  # [B, D, T_s]
        for b in self.token_blocks:
            h = b(h)
        states = h.transpose(1, 2)
        gamma, beta = self.film(voice).chunk(2, dim=-1)
        h = h * (1 + gamma[..., None]) + beta[..., None]
        h = F.interpolate(h, size=t_mel, mode="linear", align_corners=False)
        for b in self.mel_blocks:
            h = b(h)
        h = self.norm(h.transpose(1, 2))
        return h, self.out(h).transpose(1, 2), states
