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
words from these exact tokens. With ``voice_attn`` > 0 it also reads the acoustic context frame by
frame (:class:`VoiceAttention`): each mel frame of the prior attends, by content (and, as an
option, by time), to the reference's acoustic frames, so the voice can come in as "how this speaker says
sounds like this one" instead of one global statistic (in-context voice, as a cross-attention
prompt does in F5-TTS or CosyVoice's flow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.attention import Attention, RotaryEmbedding
from ..nn.conv import ConvNeXtBlock
from ..nn.render import MelRenderer

__all__ = ["fsq_code_table", "PriorOutput", "SemanticPrior", "RendererPrior", "VoiceAttention", "load_render_head"]


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


class VoiceAttention(nn.Module):
    """``(h [B, D, T], ctx [B, T_ctx, Dc], ctx_mask [B, T_ctx]) -> [B, D, T]``: a residual cross-attention
    from the prior's mel-rate features to the acoustic context.

    Without rotary positions (the default) a frame finds the reference frames that *sound like*
    what it has to render, wherever they are, so the same layer serves reconstruction (the
    utterance's own frames) and recombination (another utterance's); with them (``rope_q`` /
    ``rope_k``) it can also read the reference frame at its own time. The output projection starts
    at zero, so a prior trained without it loads and behaves exactly as before. Rows with no
    attendable frame (acoustic stream dropped) add nothing.
    """

    def __init__(self, dim: int, ctx_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.att = Attention(dim, heads, ctx_dim)
        nn.init.zeros_(self.att.out.weight)
        nn.init.zeros_(self.att.out.bias)

    def forward(self, h: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor,
                rope_q: tuple[torch.Tensor, torch.Tensor] | None = None,
                rope_k: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``rope_q`` / ``rope_k``: rotary positions of the frames and the context (None: none)."""
        return h + self.att(self.norm(h.transpose(1, 2)), ctx, key_mask=ctx_mask, rope_q=rope_q,
                            rope_k=rope_k).transpose(1, 2)


class RendererPrior(nn.Module):
    """``forward(sem_idx [B, T_s], t_mel, voice [B, D_v]) -> PriorOutput`` (with ``voice`` statistics).

    FSQ code values ``[B, T_s, d]`` -> :class:`MelRenderer` (linear map, ``up``-fold repetition,
    ``blocks`` FiLM residual conv blocks, 1x1 conv to ``n_mels``), FiLM-conditioned on voice
    statistics ``[B, 2 * n_mels]`` that a small MLP predicts from the pooled acoustic context.
    ``states`` are the mel-rate features averaged back to the token rate. ``voice_attn`` layers of
    :class:`VoiceAttention` (over the acoustic context ``[B, T_ctx, voice_dim]``) sit after evenly
    spaced blocks.
    """

    def __init__(self, levels: Sequence[int], dim: int, blocks: int, voice_dim: int, n_mels: int, up: int,
                 voice_attn: int = 0, heads: int = 4, voice_attn_positions: bool = False) -> None:
        super().__init__()
        if not 0 <= voice_attn <= blocks:
            raise ValueError(f"voice_attn must be in [0, {blocks}] (one per block at most), got {voice_attn}")
        #: block index -> position in ``attn`` of the layer that follows it
        self.attn_after = {round((j + 1) * blocks / voice_attn) - 1: j for j in range(voice_attn)} if voice_attn else {}
        self.attn = nn.ModuleList(VoiceAttention(dim, voice_dim, heads) for _ in range(voice_attn))
        #: rotary positions on the voice attention: frame t of the prior and frame t of the context
        #: line up (the context as a time-aligned reference, as the DiT's cross-attention reads it)
        self.rope = RotaryEmbedding(dim // heads) if voice_attn and voice_attn_positions else None
        self.register_buffer("codes", fsq_code_table(levels), persistent=False)
        self.voice = nn.Sequential(nn.Linear(voice_dim, dim), nn.SiLU(), nn.Linear(dim, 2 * n_mels))
        # start at the normalised mel's unit statistics (mean 0, std 1 per bin), not at random ones
        nn.init.zeros_(self.voice[-1].weight)
        with torch.no_grad():
            self.voice[-1].bias.copy_(torch.cat([torch.zeros(n_mels), torch.ones(n_mels)]))
        self.net = MelRenderer(len(levels), n_mels, dim, blocks, up)

    def forward(self, sem_idx: torch.Tensor, t_mel: int, voice: torch.Tensor | None,
                stats: torch.Tensor | None = None, ctx: torch.Tensor | None = None,
                ctx_mask: torch.Tensor | None = None) -> PriorOutput:
        """``stats [B, 2 * n_mels]``, when given, replace the statistics predicted from ``voice``
        (e.g. an utterance's own, to measure what the prediction costs); ``voice`` may then be None.
        ``ctx [B, T_ctx, voice_dim]`` with ``ctx_mask [B, T_ctx]``: the acoustic context the voice
        attention reads (without it, or without attention layers, the prior uses ``stats`` alone)."""
        if stats is None:
            if voice is None:
                raise ValueError("RendererPrior needs the pooled acoustic context or voice statistics")
            stats = self.voice(voice)
        net = self.net
        h = net.inp(self.codes[sem_idx]).transpose(1, 2).repeat_interleave(net.up, dim=2)  # [B, D, T_s * up]
        if h.shape[2] < t_mel:
            h = F.pad(h, (0, t_mel - h.shape[2]), mode="replicate")
        h = h[:, :, :t_mel]
        rq = rk = None
        if ctx is not None and self.rope is not None:
            cos, sin = self.rope(torch.arange(max(t_mel, ctx.shape[1]), device=h.device))
            rq, rk = (cos[:t_mel], sin[:t_mel]), (cos[: ctx.shape[1]], sin[: ctx.shape[1]])
        for i, blk in enumerate(net.blocks):
            h = blk(h, stats)
            if ctx is not None and i in self.attn_after:
                mask = ctx_mask if ctx_mask is not None else torch.ones(ctx.shape[:2], dtype=torch.bool, device=ctx.device)
                h = self.attn[self.attn_after[i]](h, ctx, mask, rq, rk)
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
