"""Train the latent speech enhancer (:mod:`dsatok.models.enhancer`) on a frozen DashengTokenizer.

Per batch, every clean utterance gets one noise at an SNR drawn uniformly from
``[snr_min, snr_max]`` dB: white, pink, brown, mains hum (generated) or babble (the sum of two
other utterances of the batch). Both versions go through the frozen tokenizer; the enhancer
learns the flow from noise to the clean latent conditioned on the noisy one. The noise of step
``k`` comes from ``seed + k``, so a resumed run sees the same noisy batches.
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..audio import lengths_to_mask
from ..config import ConfigError
from ..data.noise import mix_noise
from ..models.enhancer import ENHANCER_PRESETS, EnhancerConfig, LatentEnhancer, SpeechEnhancer
from .config import TrainConfig, load_stage_config

__all__ = ["EnhanceStageConfig", "EnhanceTask", "ENHANCE_STAGE_PRESETS", "NOISE_KINDS", "flow_matching_loss", "run"]

NOISE_KINDS = ("white", "pink", "brown", "hum", "babble")


@dataclasses.dataclass(frozen=True)
class EnhanceStageConfig:
    model: EnhancerConfig = EnhancerConfig()
    train: TrainConfig = TrainConfig()
    tokenizer: str = ""  # exported DashengTokenizer directory (dsatok train dasheng)
    snr_min: float = -5.0
    snr_max: float = 15.0
    noises: tuple[str, ...] = NOISE_KINDS
    stats_batches: int = 16  # clean training batches that measure the latent mean / std
    feature_memo_gb: float = 2.0  # Whisper semantic back end: remember clean utterances' features

    def __post_init__(self) -> None:
        bad = [n for n in self.noises if n not in NOISE_KINDS]
        if bad or not self.noises:
            raise ConfigError(f"noises must be a non-empty subset of {NOISE_KINDS}, got {list(self.noises)}")
        if self.snr_min > self.snr_max:
            raise ConfigError(f"snr_min ({self.snr_min}) > snr_max ({self.snr_max})")


_TRAIN = {"optim": {"lr": 3e-4, "warmup_steps": 200, "weight_decay": 0.01, "grad_clip": 1.0},
          "best_metric": "fm_loss", "ckpt_every": 250, "eval_every": 250, "eval_batches": 4,
          "data": {"max_frames": 4000, "num_workers": 1}}
ENHANCE_STAGE_PRESETS: dict[str, dict] = {
    "tiny": {"model": ENHANCER_PRESETS["tiny"], "train": {"max_steps": 20_000, **_TRAIN}},
    "base": {"model": ENHANCER_PRESETS["base"], "train": {"max_steps": 200_000, **_TRAIN}},
}


def flow_matching_loss(enhancer: LatentEnhancer, clean: torch.Tensor, noisy: torch.Tensor, lengths: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Conditional flow-matching MSE of ``enhancer`` on valid frames (``lengths [B]``); ``clean`` /
    ``noisy`` raw latents ``[B, T, D]``. The path is ``x_t = (1 − t) x_0 + t x_1`` from the
    enhancer's prior ``x_0`` to the standardised clean latent ``x_1``, target ``x_1 − x_0``."""
    x1, cond = enhancer.normalise(clean), enhancer.normalise(noisy)
    mask = lengths_to_mask(lengths, x1.shape[1])
    x0 = enhancer.prior(cond, generator)
    t = torch.rand(x1.shape[0], generator=generator, device=x1.device, dtype=x1.dtype)
    if enhancer.cfg.t_zero_prob > 0:
        at_zero = torch.rand(x1.shape[0], generator=generator, device=x1.device) < enhancer.cfg.t_zero_prob
        t = torch.where(at_zero, torch.zeros_like(t), t)
    xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * x1
    v = enhancer(xt, cond, t, mask)
    m = mask[..., None].to(v.dtype)
    return ((v - (x1 - x0)) ** 2 * m).sum() / (m.sum() * x1.shape[-1]).clamp(min=1)


class _Trainable(nn.Module):
    """Holds the enhancer only: the frozen tokenizer lives in the task (not in checkpoints)."""

    def __init__(self, enhancer: LatentEnhancer) -> None:
        super().__init__()
        self.enhancer = enhancer


class EnhanceTask:
    """:class:`~dsatok.train.engine.Task` for the latent enhancer."""

    def __init__(self, cfg: EnhanceStageConfig, tokenizer: nn.Module,
                 stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        if cfg.model.latent_dim != tokenizer.cfg.dim:
            raise ConfigError(f"enhancer latent_dim {cfg.model.latent_dim} != tokenizer dim {tokenizer.cfg.dim} "
                              f"({cfg.tokenizer})")
        self.cfg = cfg
        self.tok = tokenizer.requires_grad_(False).eval()
        self.stats = stats
        sem = getattr(tokenizer, "dsa_semantic", None)
        self._whisper = getattr(getattr(sem, "encoder", None), "whisper", None)

    def build_model(self) -> nn.Module:
        enh = LatentEnhancer(self.cfg.model)
        if self.stats is not None:
            enh.set_stats(*self.stats)
        return _Trainable(enh)

    def noisy_batch(self, batch, seed: int) -> tuple[torch.Tensor, list[str], list[float]]:
        """The batch's noisy version ``[B, N]`` (noise kinds and SNRs drawn from ``seed``)."""
        rng = np.random.default_rng(seed)
        b = batch.wav.shape[0]
        kinds = [str(k) for k in rng.choice(list(self.cfg.noises), size=b)]
        snrs = [float(s) for s in rng.uniform(self.cfg.snr_min, self.cfg.snr_max, size=b)]
        noisy = mix_noise(batch.wav.cpu().numpy(), batch.wav_lens.cpu().numpy(), kinds, snrs, rng)
        return torch.from_numpy(noisy).to(batch.wav.device), kinds, snrs

    @torch.no_grad()
    def latents(self, batch, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(clean, noisy, lengths)``: unified latents ``[B, T, D]`` of both versions."""
        self.tok.to(batch.wav.device)
        noisy, _, _ = self.noisy_batch(batch, seed)
        if self._whisper is not None:  # clean audio repeats every epoch, noisy audio never does
            self._whisper.memo_limit = int(self.cfg.feature_memo_gb * 2**30)
        zc = self.tok.encode(batch.wav, batch.wav_lens)
        if self._whisper is not None:
            self._whisper.memo_limit = 0
        zn = self.tok.encode(noisy, batch.wav_lens)
        t = min(zc.unified.shape[1], zn.unified.shape[1])
        return zc.unified[:, :t], zn.unified[:, :t], torch.minimum(zc.lengths, zn.lengths).clamp(max=t)

    def training_step(self, model, batch, step):
        m = model.module if hasattr(model, "module") else model
        clean, noisy, lens = self.latents(batch, self.cfg.train.seed * 1_000_003 + step)
        loss = flow_matching_loss(m.enhancer, clean, noisy, lens)
        return loss, {"fm_loss": float(loss.detach())}

    @torch.no_grad()
    def eval_step(self, model, batch) -> dict[str, float]:
        m = model.module if hasattr(model, "module") else model
        seed = zlib.crc32("|".join(batch.ids).encode())  # the same noise for a dev batch every time
        clean, noisy, lens = self.latents(batch, seed)
        g = torch.Generator(device=clean.device).manual_seed(0)
        fm = flow_matching_loss(m.enhancer, clean, noisy, lens, generator=g)
        enh = m.enhancer.enhance(noisy, lens, steps=8, seed=0)
        # one Euler step from t = 0 is the regression estimate E[x_1 | noisy]: with a narrow noisy
        # prior it is the best estimate (more steps amplify the prior's noise ε by (1 - t) / t)
        enh1 = m.enhancer.enhance(noisy, lens, steps=1, seed=0)
        mse = m.enhancer.latent_mse
        return {"fm_loss": float(fm), "latent_mse_noisy": mse(noisy, clean, lens),
                "latent_mse_enhanced": mse(enh, clean, lens), "latent_mse_enhanced_1step": mse(enh1, clean, lens)}

    def export(self, model, out_dir: Path) -> None:
        m = model.module if hasattr(model, "module") else model
        SpeechEnhancer(self.tok, m.enhancer).save_pretrained(out_dir)


@torch.no_grad()
def latent_stats(tok: nn.Module, batches: Any, n_batches: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std ``[D]`` of clean unified latents over ``n_batches`` batches."""
    s = s2 = None
    count = 0
    for k, batch in enumerate(batches):
        if k >= n_batches:
            break
        z = tok.encode(batch.wav, batch.wav_lens)
        mask = (torch.arange(z.unified.shape[1])[None] < z.lengths[:, None])[..., None].float()
        u = z.unified.double() * mask
        s = u.sum((0, 1)) if s is None else s + u.sum((0, 1))
        s2 = (u**2).sum((0, 1)) if s2 is None else s2 + (u**2).sum((0, 1))
        count += int(mask.sum())
    if not count:
        raise ConfigError("no training audio to measure the latent statistics")
    mean = s / count
    std = (s2 / count - mean**2).clamp(min=0).sqrt()
    return mean.float(), std.float()


def run(corpus: str, preset: str = "tiny", tokenizer: str | None = None, config: str | None = None,
        overrides: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    from ..dasheng_tokenizer import DashengTokenizer
    from .data import corpus_batches
    from .engine import Trainer

    ov = [f"tokenizer={tokenizer}"] if tokenizer else []
    cfg = load_stage_config(EnhanceStageConfig, ENHANCE_STAGE_PRESETS, preset, corpus, config, ov + list(overrides or []))
    if not cfg.tokenizer:
        raise ConfigError("the enhancer needs a trained DashengTokenizer: --tokenizer DIR")
    tok = DashengTokenizer.from_pretrained(cfg.tokenizer)
    if cfg.model.latent_dim != tok.cfg.dim:  # the enhancer works in the tokenizer's latent width
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, latent_dim=tok.cfg.dim))
    batches, dev = corpus_batches(cfg.train.data, seed=cfg.train.seed)
    stats = latent_stats(tok, batches.preview(cfg.stats_batches), cfg.stats_batches)
    return Trainer(EnhanceTask(cfg, tok, stats), cfg.train, batches, dev, full_config=cfg, progress=progress).fit()
