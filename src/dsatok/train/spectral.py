"""Supervised spectral losses for iSTFT-head decoders (:class:`~dsatok.models.vocoder.VocosVocoder`),
usable with or without a discriminator (training only).

On the head's own STFT (APNet-style, Ai & Ling 2023): log-amplitude MSE (``amp``) and the
anti-wrapped phase errors ``ip`` (instantaneous phase), ``gd`` (group delay) and ``iaf``
(instantaneous angular frequency). On the output waveform re-analysed with the head's STFT: real and
imaginary parts against the truth (``ri``) and against the head's spectrum (``consistency``). On the
output at other resolutions: a multi-resolution STFT loss (``mrstft``, Parallel WaveGAN).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

__all__ = ["SpectralLossConfig", "anti_wrap", "phase_losses", "mrstft_loss", "spectral_losses", "magnitude_losses"]


@dataclasses.dataclass(frozen=True)
class SpectralLossConfig:
    """Weights of the spectral losses (0 = off; all 0: the losses are not computed)."""

    amp_weight: float = 0.0
    ip_weight: float = 0.0
    gd_weight: float = 0.0
    iaf_weight: float = 0.0
    ri_weight: float = 0.0
    consistency_weight: float = 0.0
    mrstft_weight: float = 0.0
    mrstft_ffts: tuple[int, ...] = (256, 512, 1024)

    def weights(self) -> dict[str, float]:
        return {"amp": self.amp_weight, "ip": self.ip_weight, "gd": self.gd_weight, "iaf": self.iaf_weight,
                "ri": self.ri_weight, "consistency": self.consistency_weight, "mrstft": self.mrstft_weight}


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """``|x - 2π·round(x / 2π)|``: the distance of a phase difference to the nearest multiple of 2π."""
    return (x - 2 * math.pi * torch.round(x / (2 * math.pi))).abs()


def phase_losses(pred: torch.Tensor, true: torch.Tensor) -> dict[str, torch.Tensor]:
    """Phase losses for phase spectra ``[B, F, T]``: ``ip``, ``gd`` (differences along frequency) and
    ``iaf`` (differences along time), each the mean anti-wrapped error; all invariant to 2π shifts."""
    return {"ip": anti_wrap(pred - true).mean(),
            "gd": anti_wrap(torch.diff(pred, dim=1) - torch.diff(true, dim=1)).mean(),
            "iaf": anti_wrap(torch.diff(pred, dim=2) - torch.diff(true, dim=2)).mean()}


def mrstft_loss(fake: torch.Tensor, real: torch.Tensor, ffts: tuple[int, ...]) -> torch.Tensor:
    """Multi-resolution STFT loss: for each FFT size (hop = size / 4), spectral convergence
    ``‖|S| - |Ŝ|‖_F / ‖|S|‖_F`` plus mean ``|log |S| - log |Ŝ||``; averaged over sizes.
    ``fake``, ``real``: ``[B, N]``."""
    total = fake.new_zeros(())
    for n in ffts:
        win = torch.hann_window(n, device=fake.device)
        a, b = (torch.stft(x, n, n // 4, n, window=win, return_complex=True).abs().clamp_min(1e-5)
                for x in (fake, real))
        total = total + torch.linalg.norm(b - a) / torch.linalg.norm(b).clamp_min(1e-5)
        total = total + (a.log() - b.log()).abs().mean()
    return total / max(1, len(ffts))


def spectral_losses(gen, inp: torch.Tensor, real: torch.Tensor, cfg: SpectralLossConfig
                    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Decode ``inp [B, C, T]`` with ``gen`` (a VocosVocoder) and score it against ``real [B, N]``.

    Returns ``(fake [B, N], weighted loss, parts)``; ``parts`` is empty (and the loss 0) when every
    weight is 0, and holds only ``mrstft`` when that is the only one on (the head-STFT losses and
    their two extra STFTs are skipped), so the caller pays nothing for switched-off losses.
    """
    log_mag, ph = gen.spectrum(inp)
    fake = gen.istft(log_mag, ph)
    weights = cfg.weights()
    if not any(weights.values()):
        return fake, fake.new_zeros(()), {}
    parts: dict[str, torch.Tensor] = {}
    if any(w for k, w in weights.items() if k != "mrstft"):  # the losses on the head's own STFT
        true = gen.analyse(real, ph.shape[-1])
        parts["amp"] = F.mse_loss(log_mag, torch.log(true.abs().clamp_min(1e-5)))
        parts.update(phase_losses(ph, torch.angle(true)))
        again = torch.view_as_real(gen.analyse(fake, ph.shape[-1]))
        parts["ri"] = F.l1_loss(again, torch.view_as_real(true))
        mag = torch.exp(log_mag)
        parts["consistency"] = F.mse_loss(again, torch.stack((mag * torch.cos(ph), mag * torch.sin(ph)), -1))
    if cfg.mrstft_weight:
        parts["mrstft"] = mrstft_loss(fake, real, cfg.mrstft_ffts)
    loss = sum(w * parts[k] for k, w in weights.items() if w)
    return fake, loss, parts


def magnitude_losses(gen, inp: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """For a ``phase="griffinlim"`` head: its log magnitude for ``inp [B, C, T]`` against the STFT of
    ``real [B, N]``. Returns ``(mag_l1 + mel_l1, parts)``: ``mag_l1`` (L1 of log magnitudes, floor
    1e-5), ``mel_l1`` (L1 of the log mels both make through the head's mel filterbank) and ``sc``
    (spectral convergence of the linear magnitudes, for the logs). No waveform is made."""
    c = gen.cfg
    log_mag = gen.log_magnitude(inp)
    true = gen.analyse(real, log_mag.shape[-1]).abs()

    def log_mel(mag: torch.Tensor) -> torch.Tensor:
        return torch.log((gen.fbank @ mag.pow(c.mel.power)).clamp_min(c.mel.log_floor))

    mag = torch.exp(log_mag)
    parts = {"mag_l1": F.l1_loss(log_mag, torch.log(true.clamp_min(1e-5))),
             "mel_l1": F.l1_loss(log_mel(mag), log_mel(true)),
             "sc": torch.linalg.norm(true - mag) / torch.linalg.norm(true).clamp_min(1e-5)}
    return parts["mag_l1"] + parts["mel_l1"], parts
