"""Hierarchical flow-matching DiT decoder (seed section 3.2) and its ODE sampler.

Conditioning:
- semantic: ``e_s = Embedding(z_s)`` → linear interpolation to ``T_mel`` → ControlNet-style CNN
  adapter (3 × Conv1d k=3, last one zero-initialised) → *added* to the projection of the noisy mel;
- acoustic: quantized acoustic latent ``e_a`` → SEANet decoder (up-sampling back to the mel rate)
  → keys / values of the cross-attention of every DiT block (RoPE on both sides).
Keys and values do not depend on the flow time: :meth:`FlowDecoder.prepare` computes them once
per utterance and :meth:`FlowDecoder.velocity` reuses them at every ODE step.

With ``prior=True`` (Grad-TTS / Matcha-TTS prior; :mod:`.prior`) the semantic pathway is a token
encoder with its own loss: tokens → frozen FSQ code values → ConvNeXt stack, FiLM by the pooled
acoustic context (the voice) → ``μ``, a mel estimate; the adapter reads ``[h; μ]`` instead of a
free embedding table, and with ``start="prior"`` the flow starts from ``μ + σε`` instead of noise.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import lengths_to_mask
from ..config import ConfigError, MelConfig
from ..nn.attention import RotaryEmbedding
from ..nn.conv import SEANetDecoder
from ..nn.dit import DiTBlock, TimestepEmbedding
from ..options import DecodeOptions
from .io import load_model_config, load_weights, save_model
from .prior import PriorOutput, RendererPrior, SemanticPrior

__all__ = ["DecoderConfig", "FlowDecoder", "DecoderContext", "sample", "prior_mel", "sway_schedule",
           "with_fresh_voice_attention"]

KIND = "dsatok-flow-decoder"


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Paper: 22 blocks, dim 1024, FFN 4096 (ff_mult 4), adapter 512 → 1024, SEANet dec dims [1024]*4."""

    mel: MelConfig = MelConfig()
    dim: int = 192
    blocks: int = 6
    heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.0
    sem_codebook_size: int = 1000
    sem_frame_rate: float = 25.0
    sem_embed_dim: int = 512
    ac_latent_dim: int = 128
    ac_dec_dims: tuple[int, ...] = (128, 128, 128, 128)
    ac_strides: tuple[int, ...] = (1, 1, 2)  # mirror of the acoustic encoder's [2, 1, 1]
    mel_mean: float = -5.0  # mel normalisation for the flow (log-mel units)
    mel_std: float = 2.5
    use_semantic: bool = True  # False: the single-stream baseline (acoustic tokens only, e_s always dropped)
    #: "block": each block projects the time embedding itself (adaLN-Zero, 9·dim² per block);
    #: "shared": one projection for all blocks plus per-block offsets (adaLN-single; the paper
    #: preset's ~430M parameters only add up this way)
    adanorm: str = "block"
    #: semantic prior (issue 29): a token encoder over the frozen FSQ code values of ``sem_levels``
    #: predicts a mel estimate mu (trained with its own loss); the adapter reads [h; mu]
    prior: bool = False
    sem_levels: tuple[int, ...] = ()  # the semantic tokenizer's FSQ levels (prod = sem_codebook_size)
    #: "convnext": token-rate ConvNeXt -> upsampling -> ConvNeXt (SemanticPrior); "renderer": stage 1's
    #: render head over the code values with predicted voice statistics (RendererPrior; its width is
    #: prior_dim and its depth prior_mel_blocks)
    prior_kind: str = "convnext"
    prior_dim: int = 256
    prior_token_blocks: int = 4
    prior_mel_blocks: int = 2
    #: renderer prior only: cross-attention layers from the prior to the acoustic context (the voice
    #: read frame by frame, by content; 0 = the global voice statistics alone)
    prior_voice_attn: int = 0
    #: rotary positions on that attention (the context read as a time-aligned reference)
    prior_voice_attn_positions: bool = False
    #: where the flow starts: "noise" (N(0, I)) or "prior" (mu + start_sigma * N(0, I))
    start: str = "noise"
    start_sigma: float = 1.0
    adapter_zero_init: bool = True  # ControlNet-style zero-initialised last adapter layer

    def __post_init__(self) -> None:
        if len(self.ac_dec_dims) != len(self.ac_strides) + 1:
            raise ConfigError("decoder: len(ac_dec_dims) must be len(ac_strides) + 1")
        if self.dim % self.heads:
            raise ConfigError(f"decoder.dim {self.dim} is not divisible by heads {self.heads}")
        if self.adanorm not in ("block", "shared"):
            raise ConfigError(f"decoder.adanorm must be 'block' or 'shared', got '{self.adanorm}'")
        # empty sem_levels with a prior: to be filled from the semantic tokenizer (FlowDecoder refuses it)
        if self.prior and self.sem_levels and math.prod(self.sem_levels) != self.sem_codebook_size:
            raise ConfigError(f"decoder.prior needs sem_levels whose product is sem_codebook_size "
                              f"{self.sem_codebook_size}, got {list(self.sem_levels)}")
        if self.prior_kind not in ("convnext", "renderer"):
            raise ConfigError(f"decoder.prior_kind must be 'convnext' or 'renderer', got '{self.prior_kind}'")
        if self.prior_voice_attn and (self.prior_kind != "renderer" or not self.prior):
            raise ConfigError("decoder.prior_voice_attn needs decoder.prior=true and prior_kind='renderer'")
        if self.prior_voice_attn_positions and not self.prior_voice_attn:
            raise ConfigError("decoder.prior_voice_attn_positions needs decoder.prior_voice_attn > 0")
        if not 0 <= self.prior_voice_attn <= self.prior_mel_blocks:
            raise ConfigError(f"decoder.prior_voice_attn must be in [0, prior_mel_blocks={self.prior_mel_blocks}], "
                              f"got {self.prior_voice_attn}")
        if self.start not in ("noise", "prior"):
            raise ConfigError(f"decoder.start must be 'noise' or 'prior', got '{self.start}'")
        if self.start == "prior" and not self.prior:
            raise ConfigError("decoder.start='prior' needs decoder.prior=true")
        if not (math.isfinite(self.start_sigma) and self.start_sigma > 0):
            raise ConfigError(f"decoder.start_sigma must be > 0, got {self.start_sigma}")


@dataclasses.dataclass
class DecoderContext:
    """Everything the velocity field needs that does not depend on (x, t).

    ``sem [B, T, D]`` adapter output (zeros where dropped), ``mask [B, T]`` valid mel frames,
    ``kv`` per block ``(k, v) [B, H, T_ctx, Dh]``, ``ctx_mask [B, T_ctx]`` attendable acoustic frames;
    with a prior, ``mu [B, n_mels, T]`` its mel estimate (normalised units) and ``prior_states
    [B, T_s, D]`` its token-rate features; a renderer prior adds ``voice [B, 2 * n_mels]``, its
    predicted voice statistics.
    """

    sem: torch.Tensor
    mask: torch.Tensor
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    ctx_mask: torch.Tensor
    rope: tuple[torch.Tensor, torch.Tensor]
    mu: torch.Tensor | None = None
    prior_states: torch.Tensor | None = None
    voice: torch.Tensor | None = None

    def cat(self, other: "DecoderContext") -> "DecoderContext":
        """Batch-concatenate two contexts of the same lengths (conditional + unconditional)."""
        def both(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
            return None if a is None or b is None else torch.cat([a, b])

        return DecoderContext(torch.cat([self.sem, other.sem]), torch.cat([self.mask, other.mask]),
                              [(torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])) for a, b in zip(self.kv, other.kv)],
                              torch.cat([self.ctx_mask, other.ctx_mask]), self.rope, both(self.mu, other.mu),
                              both(self.prior_states, other.prior_states), both(self.voice, other.voice))

    def row(self, i: int) -> "DecoderContext":
        """Item ``i`` as a batch of one (every field, the prior's included); lengths stay padded."""
        if not -self.sem.shape[0] <= i < self.sem.shape[0]:
            raise IndexError(f"context row {i} out of range for a batch of {self.sem.shape[0]}")
        i = i % self.sem.shape[0]

        def one(a: torch.Tensor | None) -> torch.Tensor | None:
            return None if a is None else a[i : i + 1]

        return DecoderContext(self.sem[i : i + 1], self.mask[i : i + 1], [(k[i : i + 1], v[i : i + 1]) for k, v in self.kv],
                              self.ctx_mask[i : i + 1], self.rope, one(self.mu), one(self.prior_states), one(self.voice))


class FlowDecoder(nn.Module):
    """``velocity(x [B, n_mels, T], t [B], ctx) -> v [B, n_mels, T]`` in normalised mel units."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.mel.n_mels
        if cfg.prior:
            if not cfg.sem_levels:
                raise ConfigError("decoder.prior needs decoder.sem_levels (the semantic tokenizer's fsq_levels)")
            if cfg.prior_kind == "renderer":
                up = max(1, round(cfg.mel.sample_rate / cfg.mel.hop_length / cfg.sem_frame_rate))
                self.prior: SemanticPrior | RendererPrior = RendererPrior(
                    cfg.sem_levels, cfg.prior_dim, cfg.prior_mel_blocks, cfg.ac_dec_dims[-1], n, up,
                    voice_attn=cfg.prior_voice_attn, voice_attn_positions=cfg.prior_voice_attn_positions)
            else:
                self.prior = SemanticPrior(cfg.sem_levels, cfg.prior_dim, cfg.prior_token_blocks,
                                           cfg.prior_mel_blocks, cfg.ac_dec_dims[-1], n)
            adapter_in = cfg.prior_dim + n
        else:
            self.sem_embed = nn.Embedding(cfg.sem_codebook_size, cfg.sem_embed_dim)
            adapter_in = cfg.sem_embed_dim
        self.adapter = nn.Sequential(nn.Conv1d(adapter_in, cfg.dim, 3, padding=1), nn.SiLU(),
                                     nn.Conv1d(cfg.dim, cfg.dim, 3, padding=1), nn.SiLU(),
                                     nn.Conv1d(cfg.dim, cfg.dim, 3, padding=1))
        if cfg.adapter_zero_init:
            nn.init.zeros_(self.adapter[-1].weight)
            nn.init.zeros_(self.adapter[-1].bias)
        self.ac_decoder = SEANetDecoder(cfg.ac_latent_dim, list(cfg.ac_dec_dims), list(cfg.ac_strides),
                                        cfg.ac_dec_dims[-1])
        self.in_proj = nn.Linear(n, cfg.dim)
        self.time = TimestepEmbedding(cfg.dim)
        self.rope = RotaryEmbedding(cfg.dim // cfg.heads)
        shared = cfg.adanorm == "shared"
        self.blocks = nn.ModuleList(DiTBlock(cfg.dim, cfg.heads, cfg.ac_dec_dims[-1], cfg.ff_mult, cfg.dropout, shared)
                                    for _ in range(cfg.blocks))
        if shared:
            self.time_mod = nn.Linear(cfg.dim, 9 * cfg.dim)
            nn.init.zeros_(self.time_mod.weight)
            nn.init.zeros_(self.time_mod.bias)
        self.out_norm = nn.LayerNorm(cfg.dim, elementwise_affine=False, eps=1e-6)
        self.out_mod = nn.Linear(cfg.dim, 2 * cfg.dim)
        nn.init.zeros_(self.out_mod.weight)
        nn.init.zeros_(self.out_mod.bias)
        self.out = nn.Linear(cfg.dim, n)

    @property
    def ac_stride(self) -> int:
        return int(math.prod(self.cfg.ac_strides))

    # ------------------------------------------------------------------ mel scaling
    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.cfg.mel_mean) / self.cfg.mel_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.cfg.mel_std + self.cfg.mel_mean

    # ------------------------------------------------------------------ conditioning
    def semantic_features(self, sem_idx: torch.Tensor, t_mel: int, voice: torch.Tensor | None = None,
                          ctx: torch.Tensor | None = None, ctx_mask: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, PriorOutput | None]:
        """``z_s [B, T_s] -> (adapter output [B, T_mel, D], the prior's output | None)``.

        Without a prior: embedding, linear interpolation, CNN adapter. With one: the prior's
        ``(h, mu, ...)`` from the tokens and ``voice [B, D_v]`` (zeros: no voice), then the adapter
        on ``[h; mu]``. A renderer prior with voice attention also reads the acoustic context
        ``ctx [B, T_ctx, D_v]`` where ``ctx_mask [B, T_ctx]`` allows.
        """
        if not self.cfg.prior:
            e = self.sem_embed(sem_idx).transpose(1, 2)
            e = F.interpolate(e, size=t_mel, mode="linear", align_corners=False)
            return self.adapter(e).transpose(1, 2), None
        if voice is None:
            voice = torch.zeros(sem_idx.shape[0], self.cfg.ac_dec_dims[-1], device=sem_idx.device)
        if isinstance(self.prior, RendererPrior):
            out = self.prior(sem_idx, t_mel, voice, ctx=ctx, ctx_mask=ctx_mask)
        else:
            out = self.prior(sem_idx, t_mel, voice)
        return self.adapter(torch.cat([out.h.transpose(1, 2), out.mu], dim=1)).transpose(1, 2), out

    @staticmethod
    def voice_vector(ctx: torch.Tensor, ctx_mask: torch.Tensor) -> torch.Tensor:
        """Mean of the acoustic context ``[B, T_ctx, Dc]`` over its attendable frames → ``[B, Dc]`` (0 if none)."""
        m = ctx_mask[..., None].to(ctx.dtype)
        return (ctx * m).sum(1) / m.sum(1).clamp_min(1.0)

    def acoustic_context(self, ac_q: torch.Tensor, ac_lens: torch.Tensor, visible: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantized acoustic latent ``[B, T_a, Dl]`` → context ``[B, T_a * stride, Dc]`` and its mask.

        ``visible [B, T_a]`` (optional): acoustic frames that may be used; the others are zeroed
        *before* the SEANet decoder and masked out of the cross-attention keys.
        """
        mask = lengths_to_mask(ac_lens, ac_q.shape[1])
        if visible is not None:
            mask = mask & visible
        h = self.ac_decoder((ac_q * mask[..., None]).transpose(1, 2)).transpose(1, 2)
        ctx_mask = mask.repeat_interleave(self.ac_stride, dim=1)[:, : h.shape[1]]
        return h, ctx_mask

    def prepare(self, sem_idx: torch.Tensor, mel_lens: torch.Tensor, t_mel: int, ac_q: torch.Tensor,
                ac_lens: torch.Tensor, *, visible: torch.Tensor | None = None, drop_sem: torch.Tensor | None = None,
                drop_ac: torch.Tensor | None = None) -> DecoderContext:
        """Build the time-independent context. ``drop_sem`` / ``drop_ac [B]`` bool: CFG drop-out.

        The prior's voice is the pooled acoustic context over the frames the decoder may attend to
        (the visible ones in recombination; none where the acoustic stream is dropped); its voice
        attention, if any, reads the same frames.
        """
        ctx, ctx_mask = self.acoustic_context(ac_q, ac_lens, visible)
        if drop_ac is not None:
            ctx_mask = ctx_mask & ~drop_ac[:, None]
        voice = self.voice_vector(ctx, ctx_mask) if self.cfg.prior else None
        sem, pr = self.semantic_features(sem_idx, t_mel, voice, ctx, ctx_mask)
        if not self.cfg.use_semantic:
            sem = torch.zeros_like(sem)
        elif drop_sem is not None:
            sem = sem * (~drop_sem).to(sem.dtype)[:, None, None]
        t_all = max(t_mel, ctx.shape[1])
        rope = self.rope(torch.arange(t_all, device=sem.device))
        rope_k = (rope[0][: ctx.shape[1]], rope[1][: ctx.shape[1]])
        kv = [b.cross_att.kv(ctx, rope_k) for b in self.blocks]
        return DecoderContext(sem, lengths_to_mask(mel_lens, t_mel), kv, ctx_mask, rope,
                              pr.mu if pr is not None else None, pr.states if pr is not None else None,
                              pr.voice if pr is not None else None)

    def unconditional(self, ctx: DecoderContext) -> DecoderContext:
        """The same context with e_s and e_a dropped (for classifier-free guidance)."""
        return self.dropped(ctx, semantic=True, acoustic=True)

    @staticmethod
    def dropped(ctx: DecoderContext, *, semantic: bool = False, acoustic: bool = False) -> DecoderContext:
        """The same context with the semantic features and/or the acoustic context dropped, as in training."""
        return DecoderContext(torch.zeros_like(ctx.sem) if semantic else ctx.sem, ctx.mask, ctx.kv,
                              torch.zeros_like(ctx.ctx_mask) if acoustic else ctx.ctx_mask, ctx.rope, ctx.mu,
                              ctx.prior_states, ctx.voice)

    # ------------------------------------------------------------------ field
    def velocity(self, x: torch.Tensor, t: torch.Tensor, ctx: DecoderContext) -> torch.Tensor:
        tm = x.shape[-1]
        h = self.in_proj(x.transpose(1, 2)) + ctx.sem
        c = self.time(t)
        rope = (ctx.rope[0][:tm], ctx.rope[1][:tm])
        cb = self.time_mod(F.silu(c)) if self.cfg.adanorm == "shared" else c
        for b, kv in zip(self.blocks, ctx.kv):
            h = b(h, cb, ctx.mask, rope, kv, ctx.ctx_mask)
        shift, scale = self.out_mod(F.silu(c)).unsqueeze(1).chunk(2, dim=-1)
        h = self.out_norm(h) * (1 + scale) + shift
        return self.out(h).transpose(1, 2) * ctx.mask[:, None].to(h.dtype)

    def start_noise(self, ctx: DecoderContext, noise: torch.Tensor, *, detach: bool = False) -> torch.Tensor:
        """The flow's starting point ``x_0 [B, n_mels, T]`` from standard noise: ``noise`` itself, or
        ``mu + start_sigma * noise`` when the flow starts from the prior (training and sampling alike;
        ``detach``: no gradient into ``mu`` through the flow loss, as in training)."""
        if self.cfg.start == "prior" and ctx.mu is not None:
            return (ctx.mu.detach() if detach else ctx.mu) + self.cfg.start_sigma * noise
        return noise

    @torch.no_grad()
    def generate(self, sem_idx: torch.Tensor, ac_q: torch.Tensor, ac_lens: torch.Tensor, t_mel: int,
                 options: DecodeOptions, generator: torch.Generator | None = None) -> torch.Tensor:
        """Tokens → log-mel ``[B, n_mels, t_mel]``: the one decode the tokenizer calls.

        ``sem_idx [B, T_s]`` semantic tokens, ``ac_q [B, T_a, D]`` quantised acoustic latents with
        ``ac_lens [B]``; every item is ``t_mel`` frames long. ``options.prior_only`` returns the
        semantic prior's estimate (no flow); otherwise :func:`sample` integrates the flow.
        """
        lens = torch.full((sem_idx.shape[0],), t_mel, device=sem_idx.device)
        ctx = self.prepare(sem_idx, lens, t_mel, ac_q, ac_lens)
        if options.prior_only:
            return prior_mel(self, ctx)
        return sample(self, ctx, t_mel, options, generator=generator)

    def save_pretrained(self, out_dir: str | Path) -> Path:
        return save_model(self, self.cfg, KIND, out_dir)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> "FlowDecoder":
        cfg, _ = load_model_config(DecoderConfig, model_dir, KIND)
        return load_weights(cls(cfg), model_dir).requires_grad_(False)


def with_fresh_voice_attention(decoder: FlowDecoder, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` (a decoder's weights) completed with ``decoder``'s own voice-attention layers when
    ``state`` has none of them: a decoder trained before its prior read the acoustic context frame by
    frame starts a fine-tune with them. The layers' outputs start at zero, so the completed decoder
    computes what the old one did. Any other difference is left for a strict load to report."""
    own = decoder.state_dict()
    fresh = {k for k in own if k.startswith("prior.attn.")}
    if not fresh or fresh & state.keys():
        return state
    return {**state, **{k: own[k] for k in fresh}}


def prior_mel(decoder: FlowDecoder, ctx: DecoderContext) -> torch.Tensor:
    """The semantic prior's mel estimate alone, ``mu`` as log-mel ``[B, n_mels, T_mel]`` (padded frames
    at the floor): what the tokens and the voice vector give without the flow."""
    if ctx.mu is None:
        raise ValueError("this decoder has no semantic prior (decoder.prior=false)")
    floor = math.log(decoder.cfg.mel.log_floor)
    return decoder.denormalize(ctx.mu).masked_fill(~ctx.mask[:, None], floor)


def sway_schedule(steps: int, coef: float | None, device: torch.device) -> torch.Tensor:
    """Time grid ``[steps + 1]`` from 0 to 1; sway sampling (F5-TTS) when ``coef`` is given (e.g. -1)."""
    u = torch.linspace(0, 1, steps + 1, device=device)
    if coef is None:
        return u
    return u + coef * (torch.cos(math.pi / 2 * u) - 1 + u)


@torch.no_grad()
def sample(decoder: FlowDecoder, ctx: DecoderContext, t_mel: int, options: DecodeOptions | None = None, *,
           generator: torch.Generator | None = None, extra_guides: Sequence[tuple[float, DecoderContext]] = (),
           **overrides: Any) -> torch.Tensor:
    """Integrate the flow from its start (noise, or the prior) to mel: returns log-mel
    ``[B, n_mels, T_mel]`` (padded frames at the floor).

    The sampler settings are a :class:`~dsatok.options.DecodeOptions` (default: its defaults), with
    single fields overridable by keyword (``steps=4, sway=None``).

    Guidance ``v = v_c + w (v_c - v_u) + w_v (v_c - v_s) + w_c (v_c - v_a)``: ``w = cfg_scale`` is
    classifier-free guidance against the unconditional field ``v_u`` (both streams dropped);
    ``w_v = voice_cfg`` guides against the semantic-only field ``v_s`` (acoustic context dropped),
    pushing the output towards what the acoustic tokens add (the voice); ``w_c = content_cfg``
    guides against the acoustic-only field ``v_a`` (semantic features dropped), pushing it towards
    what the semantic tokens add (the content). ``extra_guides`` adds ``w_i (v_c - v_i)`` for other
    contexts of the same shapes (e.g. another voice, to steer away from). Each non-zero extra term
    costs one more field evaluation per step; all are evaluated in one batched forward, and the
    cross-attention keys/values in ``ctx`` are reused at every step.
    """
    o = dataclasses.replace(options or DecodeOptions(), **overrides)
    steps, cfg_scale, voice_cfg, content_cfg = o.steps, o.cfg_scale, o.voice_cfg, o.content_cfg
    solver, sway = o.solver, o.sway
    for w, _ in extra_guides:
        if not math.isfinite(w):
            raise ValueError(f"extra guide weight must be a finite number, got {w}")
    b = ctx.sem.shape[0]
    n = decoder.cfg.mel.n_mels
    dev = ctx.sem.device
    x = decoder.start_noise(ctx, torch.randn(b, n, t_mel, generator=generator, device="cpu").to(dev))
    guides = [(w, c) for w, c in ((cfg_scale, decoder.unconditional(ctx)),
                                  (voice_cfg, decoder.dropped(ctx, acoustic=True)),
                                  (content_cfg, decoder.dropped(ctx, semantic=True)), *extra_guides) if w != 0]
    batch = ctx
    for _, c in guides:
        batch = batch.cat(c)
    k = 1 + len(guides)

    def field(xx: torch.Tensor, tt: float) -> torch.Tensor:
        tv = torch.full((xx.shape[0] * k,), tt, device=dev)
        v = decoder.velocity(torch.cat([xx] * k) if k > 1 else xx, tv, batch)
        vc, *vo = v.chunk(k)
        out = vc
        for (w, _), vg in zip(guides, vo):
            out = out + w * (vc - vg)
        return out

    ts = sway_schedule(steps, sway, dev).tolist()
    for i in range(steps):
        t0, t1 = ts[i], ts[i + 1]
        dt = t1 - t0
        if solver == "euler":
            x = x + dt * field(x, t0)
        else:
            x_mid = x + 0.5 * dt * field(x, t0)
            x = x + dt * field(x_mid, t0 + 0.5 * dt)
    mel = decoder.denormalize(x)
    floor = math.log(decoder.cfg.mel.log_floor)
    return mel.masked_fill(~ctx.mask[:, None], floor)
