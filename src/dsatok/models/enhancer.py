"""Speech enhancement in the DashengTokenizer's latent space (seed 001: SE as a generation task).

A conditional flow-matching transformer maps the unified latent of **noisy** speech to the
unified latent of the **clean** speech; the tokenizer's decoder turns it back into audio::

    z_noisy = tok.encode(noisy).unified        [B, T, D]  (25 Hz)
    z_clean ~ ODE(v_θ(x_t, z_noisy, t))        x_0 ~ N(0, I) → x_1 ≈ normalise(z_clean)
    wav     = tok.decode(denormalise(x_1))

With ``prior="noisy"`` the path starts at the noisy latent instead of pure noise (a flow-matching
bridge, as in Schrödinger-bridge / FlowSE enhancers): ``x_0 = z_noisy + σ ε``, so the field only
learns the *correction* from noisy to clean, and an untrained enhancer (zero output layer) returns
the noisy latent plus ``σ ε`` instead of noise. With a narrow prior (σ ≲ 0.1) the path after
t = 0 is nearly determined by ``x_t`` and the noisy latent, so one Euler step (the regression
estimate ``E[x_1 | z_noisy]``) is the best read-out: more steps amplify the unknown ``ε`` by
``(1 − t) / t``; ``t_zero_prob`` puts that share of the training examples at t = 0.

Latents are standardised per channel with statistics measured on clean training speech
(``mean`` / ``std`` buffers, saved with the weights). The velocity network is a stack of
AdaNorm self-attention blocks (RoPE) over ``concat(x_t, z_noisy)``; the flow-matching path is
the decoder's: ``x_t = (1 − t) x_0 + t x_1``, target ``x_1 − x_0``.

The exported directory holds ``config.json`` + ``model.safetensors`` and the tokenizer it was
trained on in ``tokenizer/`` (a latent enhancer is only meaningful with its own latent space).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from ..audio import batch_and_lengths, lengths_to_mask
from ..config import ConfigError
from ..nn.attention import Attention, RotaryEmbedding
from ..nn.dit import AdaNorm, TimestepEmbedding
from .io import ModelLoadError, load_model_config, load_weights, read_model_meta, save_model

__all__ = ["EnhancerConfig", "LatentEnhancer", "SpeechEnhancer", "ENHANCER_PRESETS"]

KIND = "dsatok-latent-enhancer"


@dataclasses.dataclass(frozen=True)
class EnhancerConfig:
    latent_dim: int = 256  # the tokenizer's latent width D
    dim: int = 256
    depth: int = 6
    heads: int = 4
    ff_mult: int = 4
    #: where the flow starts: "gaussian" (x_0 = ε) or "noisy" (x_0 = standardised noisy latent + prior_sigma·ε)
    prior: Literal["gaussian", "noisy"] = "gaussian"
    prior_sigma: float = 0.5
    #: fraction of training examples drawn at flow time t = 0, the point a one-step sampler reads
    #: (with a narrow noisy prior the rest of the path is nearly determined by x_t and the noisy latent)
    t_zero_prob: float = 0.0
    #: Euler steps when a caller gives none (1 for a narrow noisy prior, see the module docstring)
    default_steps: int = 16

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ConfigError(f"enhancer.dim ({self.dim}) must be divisible by heads ({self.heads})")
        for k in ("latent_dim", "dim", "depth", "heads", "ff_mult", "default_steps"):
            if getattr(self, k) <= 0:
                raise ConfigError(f"enhancer.{k} must be > 0, got {getattr(self, k)}")
        if self.prior not in ("gaussian", "noisy"):
            raise ConfigError(f"enhancer.prior must be 'gaussian' or 'noisy', got '{self.prior}'")
        if not self.prior_sigma >= 0:
            raise ConfigError(f"enhancer.prior_sigma must be >= 0, got {self.prior_sigma}")
        if not 0.0 <= self.t_zero_prob <= 1.0:
            raise ConfigError(f"enhancer.t_zero_prob must be in [0, 1], got {self.t_zero_prob}")


ENHANCER_PRESETS: dict[str, dict] = {
    "tiny": {"dim": 256, "depth": 6, "heads": 4},
    "base": {"dim": 512, "depth": 12, "heads": 8},
}


class _Block(nn.Module):
    """AdaNorm self-attention (RoPE) → AdaNorm FFN; ``[B, T, dim] -> [B, T, dim]``."""

    def __init__(self, dim: int, heads: int, ff_mult: int) -> None:
        super().__init__()
        self.n1, self.n2 = AdaNorm(dim), AdaNorm(dim)
        self.att = Attention(dim, heads)
        self.ff = nn.Sequential(nn.Linear(dim, dim * ff_mult), nn.GELU(approximate="tanh"), nn.Linear(dim * ff_mult, dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor,
                rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        h, g = self.n1(x, c)
        x = x + g * self.att(h, key_mask=mask, rope_q=rope)
        h, g = self.n2(x, c)
        return x + g * self.ff(h)


class LatentEnhancer(nn.Module):
    """Velocity field ``v(x_t [B, T, D], cond [B, T, D], t [B], mask [B, T]) -> [B, T, D]`` in the
    standardised latent space, plus :meth:`enhance` (ODE sampling) in the raw one."""

    def __init__(self, cfg: EnhancerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.latent_dim
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        self.inp = nn.Linear(2 * d, cfg.dim)
        self.time = TimestepEmbedding(cfg.dim)
        self.rope = RotaryEmbedding(cfg.dim // cfg.heads)
        self.blocks = nn.ModuleList([_Block(cfg.dim, cfg.heads, cfg.ff_mult) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-channel statistics ``[D]`` of clean latents (measured once before training)."""
        self.mean.copy_(mean)
        self.std.copy_(std.clamp(min=1e-4))

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean) / self.std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def latent_mse(self, z: torch.Tensor, clean: torch.Tensor, lengths: torch.Tensor | None = None) -> float:
        """Mean squared distance of ``z`` to ``clean`` (raw latents ``[B, T, D]``) in the standardised
        space, over the valid frames (``lengths [B]``; None: all)."""
        d = (self.normalise(z) - self.normalise(clean)) ** 2
        if lengths is None:
            return float(d.mean())
        w = lengths_to_mask(lengths, clean.shape[1])[..., None].to(d.dtype)
        return float((d * w).sum() / (w.sum() * clean.shape[-1]).clamp(min=1))

    def prior(self, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A start point ``x_0 [B, T, D]`` of the flow for the standardised noisy latent ``cond``."""
        eps = torch.randn(cond.shape, generator=generator, device=cond.device, dtype=cond.dtype)
        return cond + self.cfg.prior_sigma * eps if self.cfg.prior == "noisy" else eps

    def forward(self, x_t: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x_t`` and ``cond`` already standardised, ``[B, T, D]``; ``t [B]``; ``mask [B, T]`` bool."""
        h = self.inp(torch.cat([x_t, cond], dim=-1))
        c = self.time(t)
        rope = self.rope(torch.arange(h.shape[1], device=h.device))
        for blk in self.blocks:
            h = blk(h, c, mask, rope)
        return self.out(self.norm(h)) * mask[..., None].to(h.dtype)

    @torch.no_grad()
    def enhance(self, noisy: torch.Tensor, lengths: torch.Tensor | None = None, *, steps: int | None = None,
                seed: int | None = 0, start: float = 0.0) -> torch.Tensor:
        """Euler ODE from the prior (:meth:`prior`) to the clean latent: ``noisy [B, T, D] -> [B, T, D]``
        (raw space).

        ``start`` in [0, 1): begin at flow time ``start`` from ``(1 − start)·x_0 + start·noisy``
        (a warm start from the noisy latent, as in SDEdit); ``steps`` Euler steps cover the rest
        of the path (``None``: the config's ``default_steps``)."""
        steps = self.cfg.default_steps if steps is None else steps
        if steps <= 0:
            raise ValueError(f"steps must be > 0, got {steps}")
        if not 0.0 <= start < 1.0:
            raise ValueError(f"start must be in [0, 1), got {start}")
        b, t_len, _ = noisy.shape
        lengths = torch.full((b,), t_len, device=noisy.device) if lengths is None else lengths
        mask = lengths_to_mask(lengths, t_len)
        cond = self.normalise(noisy)
        g = None
        if seed is not None:
            g = torch.Generator(device=noisy.device).manual_seed(seed)
        x = (1 - start) * self.prior(cond, g) + start * cond
        ts = torch.linspace(start, 1, steps + 1, device=noisy.device)
        for i in range(steps):
            t = ts[i].expand(b)
            x = x + (ts[i + 1] - ts[i]) * self(x, cond, t, mask)
        return self.denormalise(x) * mask[..., None].to(x.dtype)

    def save_pretrained(self, out_dir: str | Path) -> Path:
        return save_model(self, self.cfg, KIND, out_dir)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> "LatentEnhancer":
        cfg, _ = load_model_config(EnhancerConfig, model_dir, KIND)
        return load_weights(cls(cfg), model_dir).requires_grad_(False)


class SpeechEnhancer(nn.Module):
    """A :class:`LatentEnhancer` with its DashengTokenizer: ``enhance(wav [B, N] | [N]) -> wav``.

    Saved as ``DIR/config.json`` + ``DIR/model.safetensors`` (the enhancer) and ``DIR/tokenizer/``.
    """

    def __init__(self, tokenizer: nn.Module, enhancer: LatentEnhancer) -> None:
        super().__init__()
        if tokenizer.cfg.dim != enhancer.cfg.latent_dim:
            raise ConfigError(f"enhancer latent_dim {enhancer.cfg.latent_dim} != tokenizer dim {tokenizer.cfg.dim}")
        self.tokenizer = tokenizer
        self.enhancer = enhancer

    sample_rate = 16000

    @torch.no_grad()
    def enhance(self, wav: torch.Tensor | np.ndarray, lens: torch.Tensor | None = None, *, steps: int | None = None,
                seed: int | None = 0, start: float = 0.0) -> torch.Tensor:
        """Noisy 16 kHz speech ``[B, N]`` (or ``[N]``) → enhanced speech ``[B, T * 640]``."""
        w = torch.as_tensor(np.asarray(wav, dtype=np.float32) if isinstance(wav, np.ndarray) else wav)
        single = w.dim() == 1
        w, lens = batch_and_lengths(w, lens)
        out = self.enhance_latents(self.tokenizer.encode(w, lens), steps=steps, seed=seed, start=start)
        return out[0] if single else out

    @torch.no_grad()
    def enhance_latents(self, z, *, steps: int | None = None, seed: int | None = 0, start: float = 0.0) -> torch.Tensor:
        """Tokenizer latents of noisy speech (:class:`DashengLatents`) → enhanced speech
        ``[B, T * 640]``, zero past each item's length; for callers that already encoded."""
        clean = self.enhancer.enhance(z.unified, z.lengths, steps=steps, seed=seed, start=start)
        out = self.tokenizer.decode(clean)
        n = z.lengths * 640
        out = out * lengths_to_mask(n, out.shape[-1]).to(out.dtype)
        return out[:, : int(n.max())]

    def save_pretrained(self, out_dir: str | Path) -> Path:
        out = save_model(self.enhancer, self.enhancer.cfg, KIND, out_dir,
                         extra={"tokenizer_fingerprint": self.tokenizer.fingerprint})
        self.tokenizer.save_pretrained(Path(out_dir) / "tokenizer")
        return out

    @classmethod
    def from_pretrained(cls, model_dir: str | Path | None = None, tokenizer: str | Path | None = None) -> "SpeechEnhancer":
        """An enhancer directory with its tokenizer in ``DIR/tokenizer/``, or stored inside its
        tokenizer's directory (``TOKENIZER/enhancer/``, as bundled), or with ``tokenizer`` given;
        ``None`` loads the enhancer bundled with ``dasheng-default``."""
        from ..dasheng_tokenizer import DashengTokenizer
        from ..resources import bundled_enhancer_dir

        model_dir = bundled_enhancer_dir() if model_dir is None else Path(model_dir)
        if tokenizer is None:
            inside = Path(model_dir) / "tokenizer"
            tokenizer = inside if inside.is_dir() or not (Path(model_dir).parent / "config.json").is_file() \
                else Path(model_dir).parent
        tok = DashengTokenizer.from_pretrained(tokenizer)
        want = read_model_meta(model_dir, KIND).get("tokenizer_fingerprint")
        if want is not None and want != tok.fingerprint:
            raise ModelLoadError(f"{model_dir}: enhancer trained on the latent of tokenizer {want}, not of "
                                 f"{tok.fingerprint}")
        return cls(tok, LatentEnhancer.from_pretrained(model_dir))
