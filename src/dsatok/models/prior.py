"""Semantic prior of the flow decoder: tokens (+ a voice vector) → a mel estimate μ.

The Grad-TTS / Matcha-TTS prior, with CosyVoice's token encoder in front of the flow: the decoder
does not have to discover what the semantic tokens mean through a zero-initialised adapter; a
token encoder with its own loss ``|μ − mel|`` learns it directly, and the flow then refines μ.

``z_s [B, T_s]`` → frozen FSQ code values ``[B, T_s, d]`` (from the semantic tokenizer's levels,
exactly ``SemanticTokenizer``'s implicit codebook before its output projection) → trainable MLP
→ ConvNeXt blocks at the token rate → FiLM by a voice vector ``[B, D_v]`` → linear upsampling to
the mel rate → ConvNeXt blocks → ``h [B, T_mel, D]`` and ``μ [B, n_mels, T_mel]`` (normalised
mel units of the decoder).

:class:`RendererPrior` is the other kind (``decoder.prior_kind = "renderer"``): stage 1's render
head (:class:`~dsatok.nn.render.MelRenderer`, FiLM residual conv blocks at the mel rate) over the
same code values, its voice statistics (per-bin mel mean and std) *predicted* from the pooled
acoustic context instead of read from the target. Its weights can start from a stage-1 run's
render head (:func:`load_render_head`), so the decoder starts with a prior that already renders
words from these exact tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.conv import ConvNeXtBlock
from ..nn.render import MelRenderer

__all__ = ["fsq_code_table", "PriorOutput", "SemanticPrior", "RendererPrior", "load_render_head"]


class PriorOutput(NamedTuple):
    """What a prior gives the decoder: ``h [B, T_mel, D]`` features for the adapter, ``mu [B, n_mels,
    T_mel]`` the mel estimate (normalised units), ``states [B, T_s, D]`` token-rate features (the
    auxiliary CTC reads them) and, for the renderer, ``voice [B, 2 * n_mels]`` the predicted voice
    statistics (per-bin mean and std of the normalised mel)."""

    h: torch.Tensor
    mu: torch.Tensor
    states: torch.Tensor
    voice: torch.Tensor | None = None


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

    def forward(self, sem_idx: torch.Tensor, t_mel: int, voice: torch.Tensor) -> PriorOutput:
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
        return PriorOutput(h, self.out(h).transpose(1, 2), states)


class RendererPrior(nn.Module):
    """``forward(sem_idx [B, T_s], t_mel, voice [B, D_v]) -> PriorOutput`` (with ``voice`` statistics).

    FSQ code values ``[B, T_s, d]`` -> :class:`MelRenderer` (linear map, ``up``-fold repetition,
    ``blocks`` FiLM residual conv blocks, 1x1 conv to ``n_mels``), FiLM-conditioned on voice
    statistics ``[B, 2 * n_mels]`` that a small MLP predicts from the pooled acoustic context.
    ``states`` are the mel-rate features averaged back to the token rate.
    """

    def __init__(self, levels: Sequence[int], dim: int, blocks: int, voice_dim: int, n_mels: int, up: int) -> None:
        super().__init__()
        self.register_buffer("codes", fsq_code_table(levels), persistent=False)
        self.voice = nn.Sequential(nn.Linear(voice_dim, dim), nn.SiLU(), nn.Linear(dim, 2 * n_mels))
        # start at the normalised mel's unit statistics (mean 0, std 1 per bin), not at random ones
        nn.init.zeros_(self.voice[-1].weight)
        with torch.no_grad():
            self.voice[-1].bias.copy_(torch.cat([torch.zeros(n_mels), torch.ones(n_mels)]))
        self.net = MelRenderer(len(levels), n_mels, dim, blocks, up)

    def forward(self, sem_idx: torch.Tensor, t_mel: int, voice: torch.Tensor | None,
                stats: torch.Tensor | None = None) -> PriorOutput:
        """``stats [B, 2 * n_mels]``, when given, replace the statistics predicted from ``voice``
        (e.g. an utterance's own, to measure what the prediction costs); ``voice`` may then be None."""
        if stats is None:
            if voice is None:
                raise ValueError("RendererPrior needs the pooled acoustic context or voice statistics")
            stats = self.voice(voice)
        net = self.net
        h = net.inp(self.codes[sem_idx]).transpose(1, 2).repeat_interleave(net.up, dim=2)  # [B, D, T_s * up]
        if h.shape[2] < t_mel:
            h = F.pad(h, (0, t_mel - h.shape[2]), mode="replicate")
        h = h[:, :, :t_mel]
        for blk in net.blocks:
            h = blk(h, stats)
        states = F.avg_pool1d(h, net.up, ceil_mode=True).transpose(1, 2)[:, : sem_idx.shape[1]]
        return PriorOutput(h.transpose(1, 2), net.out(h), states, stats)


def load_render_head(prior: RendererPrior, checkpoint: str | Path) -> None:
    """Start ``prior.net`` from a stage-1 run's render head.

    ``checkpoint``: a stage-1 export with ``render_head.safetensors`` (``RUN/best``), a stage-1
    checkpoint directory (``RUN/checkpoints/step-N``) or either file. The head read ``q = project_out(codes)``; this prior reads the code values,
    so its input map becomes ``W_r W_o`` with bias ``W_r b_o + b_r``. Raises ``ValueError`` when the
    file has no render head or its shapes differ from this prior's.
    """
    from safetensors.torch import load_file

    f = Path(checkpoint)
    if f.is_dir():
        f = f / "render_head.safetensors" if (f / "render_head.safetensors").is_file() else f / "model.safetensors"
    if not f.is_file():
        raise ValueError(f"{checkpoint}: no stage-1 checkpoint (model.safetensors) there")
    sd = load_file(str(f))
    head = {k.removeprefix("render."): v for k, v in sd.items() if k.startswith("render.")}
    po_w, po_b = sd.get("tokenizer.fsq.fsq.project_out.weight"), sd.get("tokenizer.fsq.fsq.project_out.bias")
    if not head or po_w is None or po_b is None:
        raise ValueError(f"{f}: no render head (train stage 1 with render_weight > 0) or no FSQ projection")
    w_r, b_r = head.pop("inp.weight"), head.pop("inp.bias")
    if w_r.shape[1] != po_w.shape[0] or po_w.shape[1] != prior.net.inp.in_features:
        raise ValueError(f"{f}: the render head reads {po_w.shape[1]}-d codes through a {w_r.shape[1]}-d "
                         f"projection; this prior reads {prior.net.inp.in_features}-d codes")
    head["inp.weight"], head["inp.bias"] = w_r @ po_w, w_r @ po_b + b_r
    try:
        prior.net.load_state_dict(head, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{f}: the render head does not fit this prior ({str(e).splitlines()[0]})") from None
