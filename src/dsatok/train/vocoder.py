"""Vocoder stage: GAN training of :class:`~dsatok.models.vocoder.VocosVocoder` on random crops."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import MelFrontend, lengths_to_mask
from ..models.vocoder import VOCODER_PRESETS, VocoderConfig, VocosVocoder
from .config import TrainConfig, load_stage_config
from .gan import Discriminators, GANModel, gan_losses

__all__ = ["VocoderStageConfig", "VocoderTask", "VOCODER_STAGE_PRESETS", "anti_wrap", "phase_losses"]


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """``|x - 2π·round(x / 2π)|``: the distance of a phase difference to the nearest multiple of 2π."""
    return (x - 2 * math.pi * torch.round(x / (2 * math.pi))).abs()


def phase_losses(pred: torch.Tensor, true: torch.Tensor) -> dict[str, torch.Tensor]:
    """APNet's phase losses for phase spectra ``[B, F, T]``: instantaneous phase (``ip``), group
    delay (``gd``, differences along frequency) and instantaneous angular frequency (``iaf``,
    differences along time), each the mean anti-wrapped error; all invariant to 2π shifts."""
    return {"ip": anti_wrap(pred - true).mean(),
            "gd": anti_wrap(torch.diff(pred, dim=1) - torch.diff(true, dim=1)).mean(),
            "iaf": anti_wrap(torch.diff(pred, dim=2) - torch.diff(true, dim=2)).mean()}


@dataclasses.dataclass(frozen=True)
class VocoderStageConfig:
    model: VocoderConfig = VocoderConfig()
    train: TrainConfig = TrainConfig()
    segment_seconds: float = 1.0
    mel_weight: float = 45.0
    fm_weight: float = 2.0
    adv_weight: float = 1.0
    gan_start: int = 0  # steps of mel-loss-only pre-training before the discriminators join
    # supervised spectral losses on the head's STFT (APNet-style; 0 = off): log-amplitude MSE,
    # anti-wrapped instantaneous-phase / group-delay / instantaneous-frequency, real+imaginary
    # parts of the re-analysed output vs the truth, and head-vs-reanalysis consistency
    amp_weight: float = 0.0
    phase_weight: float = 0.0
    ri_weight: float = 0.0
    consistency_weight: float = 0.0
    mpd_channels: int = 16
    mrd_channels: int = 32


_TRAIN = {"optim": {"lr": 5e-4, "warmup_steps": 200, "betas": [0.8, 0.99], "weight_decay": 0.0, "grad_clip": 10.0},
          "best_metric": "mel_l1", "ckpt_every": 500, "eval_every": 500, "eval_batches": 4,
          "data": {"max_frames": 3000, "num_workers": 1}}
VOCODER_STAGE_PRESETS: dict[str, dict] = {
    "tiny": {"model": VOCODER_PRESETS["tiny"], "train": {"max_steps": 20_000, **_TRAIN}},
    "base": {"model": VOCODER_PRESETS["base"], "mpd_channels": 32, "mrd_channels": 32,
             "train": {"max_steps": 1_000_000, **_TRAIN, "data": {"max_frames": 8000}}},
}



class VocoderTask:
    def __init__(self, cfg: VocoderStageConfig) -> None:
        self.cfg = cfg
        self.fe = MelFrontend(cfg.model.mel)

    def build_model(self) -> nn.Module:
        return GANModel(VocosVocoder(self.cfg.model), Discriminators(self.cfg.mpd_channels, self.cfg.mrd_channels))

    def _crop(self, wav: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        hop = self.cfg.model.mel.hop_length
        seg = int(self.cfg.segment_seconds * self.cfg.model.mel.sample_rate) // hop * hop
        out = torch.zeros(wav.shape[0], seg, device=wav.device)
        for i, n in enumerate(lens.tolist()):
            start = int(torch.randint(0, max(1, n - seg) + 1, (1,)).item()) // hop * hop
            piece = wav[i, start : start + min(seg, n)]
            out[i, : piece.shape[0]] = piece
        return out

    def training_step(self, model, batch, step):
        return model(self._loss, batch, step)

    def _stft(self, gen: VocosVocoder, wav: torch.Tensor, frames: int) -> torch.Tensor:
        """The head's analysis of ``wav [B, N]``: complex ``[B, n_fft // 2 + 1, frames]``."""
        c = gen.cfg
        return torch.stft(wav, c.n_fft, c.mel.hop_length, c.n_fft, window=gen.window, center=True,
                          return_complex=True)[..., :frames]

    def _spectral(self, gen: VocosVocoder, real: torch.Tensor, mel: torch.Tensor):
        """Generate from ``mel`` and return ``(fake wav, weighted spectral loss, logs)``."""
        c = self.cfg
        log_mag, ph = gen.spectrum(mel)
        fake = gen.istft(log_mag, ph)
        if not (c.amp_weight or c.phase_weight or c.ri_weight or c.consistency_weight):
            return fake, fake.new_zeros(()), {}
        true = self._stft(gen, real, ph.shape[-1])
        logs: dict[str, torch.Tensor] = {}
        logs["amp"] = F.mse_loss(log_mag, torch.log(true.abs().clamp_min(1e-5)))
        logs.update(phase_losses(ph, torch.angle(true)))
        again = self._stft(gen, fake, ph.shape[-1])
        logs["ri"] = F.l1_loss(torch.view_as_real(again), torch.view_as_real(true))
        mag = torch.exp(log_mag)
        head = torch.view_as_real(torch.complex(mag * torch.cos(ph), mag * torch.sin(ph)))
        logs["consistency"] = F.mse_loss(torch.view_as_real(again), head)
        loss = (c.amp_weight * logs["amp"] + c.phase_weight * (logs["ip"] + logs["gd"] + logs["iaf"])
                + c.ri_weight * logs["ri"] + c.consistency_weight * logs["consistency"])
        return fake, loss, logs

    def _loss(self, m: GANModel, batch, step: int):
        real = self._crop(batch.wav, batch.wav_lens)
        mel, _ = self.fe(real)
        fake, spectral, parts = self._spectral(m.gen, real, mel)
        mel_fake, _ = self.fe.compute(fake)
        mel_l1 = F.l1_loss(mel_fake, mel)
        loss = self.cfg.mel_weight * mel_l1 + spectral
        logs = {"mel_l1": float(mel_l1), **{k: float(v) for k, v in parts.items()}}
        if step >= self.cfg.gan_start:
            g = gan_losses(m.disc, real, fake)
            loss = loss + g["d_loss"] + self.cfg.adv_weight * g["g_adv"] + self.cfg.fm_weight * g["fm"]
            logs.update({k: float(v) for k, v in g.items()})
        return loss, logs

    def eval_step(self, model, batch) -> dict[str, float]:
        m = model.module if hasattr(model, "module") else model
        mel, lens = self.fe(batch.wav, batch.wav_lens)
        fake = m.gen(mel)
        mel_fake, _ = self.fe(fake, lens * self.cfg.model.mel.hop_length)
        mask = lengths_to_mask(lens, mel.shape[-1])[:, None].float()
        l1 = ((mel_fake - mel).abs() * mask).sum() / (mask.sum() * mel.shape[1])
        return {"mel_l1": float(l1)}

    def log_media(self, model, batch, writer, step) -> None:
        from .media import log_audio, log_mel

        m = model.module if hasattr(model, "module") else model
        mel, lens = self.fe(batch.wav[:1], batch.wav_lens[:1])
        wav = m.gen(mel)[0, : int(batch.wav_lens[0])]
        log_mel(writer, "vocoder/mel_in", mel[0], step)
        log_audio(writer, "vocoder/audio", wav, step, self.cfg.model.mel.sample_rate)

    def export(self, model, out_dir: Path) -> None:
        m = model.module if hasattr(model, "module") else model
        m.gen.save_pretrained(out_dir)


def run(corpus: str, preset: str = "tiny", config: str | None = None, overrides: list[str] | None = None,
        progress: bool = True) -> dict[str, Any]:
    from .data import corpus_batches
    from .engine import Trainer

    ov: list[str] = []
    cfg = load_stage_config(VocoderStageConfig, VOCODER_STAGE_PRESETS, preset, corpus, config, ov + list(overrides or []))
    batches, dev = corpus_batches(cfg.train.data, seed=cfg.train.seed)
    return Trainer(VocoderTask(cfg), cfg.train, batches, dev, full_config=cfg, progress=progress).fit()
