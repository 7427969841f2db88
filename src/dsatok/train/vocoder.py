"""Vocoder stage: :class:`~dsatok.models.vocoder.VocosVocoder` on random crops — mel L1, optional
supervised spectral losses (``spectral.*``, see :mod:`.spectral`) and, from ``gan_start`` on,
multi-period / multi-resolution discriminators with feature matching."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import MelFrontend, lengths_to_mask
from ..models.vocoder import VOCODER_PRESETS, VocoderConfig, VocosVocoder
from .config import TrainConfig, load_stage_config
from .gan import Discriminators, GANModel, gan_losses
from .spectral import SpectralLossConfig, magnitude_losses, spectral_losses

__all__ = ["VocoderStageConfig", "VocoderTask", "VOCODER_STAGE_PRESETS"]


@dataclasses.dataclass(frozen=True)
class VocoderStageConfig:
    model: VocoderConfig = VocoderConfig()
    train: TrainConfig = TrainConfig()
    segment_seconds: float = 1.0
    mel_weight: float = 45.0
    fm_weight: float = 2.0
    adv_weight: float = 1.0
    gan_start: int = 0  # steps of mel-loss-only pre-training before the discriminators join
    spectral: SpectralLossConfig = SpectralLossConfig()  # supervised spectral losses (train/spectral.py)
    mpd_channels: int = 16
    mrd_channels: int = 32
    init_from: str = ""  # vocoder export (config.json + model.safetensors) to start the generator from


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
        gen = VocosVocoder(self.cfg.model)
        if self.cfg.init_from:
            self._init_from(gen, Path(self.cfg.init_from))
        return GANModel(gen, Discriminators(self.cfg.mpd_channels, self.cfg.mrd_channels))

    def _init_from(self, gen: VocosVocoder, d: Path) -> None:
        """Load an exported vocoder's weights into ``gen`` (strict; its config must equal ``model``),
        e.g. to run the GAN phase after mel-only pre-training with a fresh schedule."""
        from ..config import ConfigError

        src = VocosVocoder.from_pretrained(d)  # ModelLoadError names the directory and the problem
        if src.cfg != self.cfg.model:
            raise ConfigError(f"init_from {d}: its vocoder config differs from this run's model config")
        gen.load_state_dict(src.state_dict(), strict=True)

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

    def _loss(self, m: GANModel, batch, step: int):
        real = self._crop(batch.wav, batch.wav_lens)
        mel, _ = self.fe(real)
        if m.gen.trains_on_magnitudes:
            return self._magnitude_loss(m.gen, mel, real)
        fake, spectral, parts = spectral_losses(m.gen, mel, real, self.cfg.spectral)
        mel_fake, _ = self.fe.compute(fake)
        mel_l1 = F.l1_loss(mel_fake, mel)
        loss = self.cfg.mel_weight * mel_l1 + spectral
        logs = {"mel_l1": float(mel_l1.detach()), **{k: float(v.detach()) for k, v in parts.items()}}
        if step >= self.cfg.gan_start:
            g = gan_losses(m.disc, real, fake)
            loss = loss + g["d_loss"] + self.cfg.adv_weight * g["g_adv"] + self.cfg.fm_weight * g["fm"]
            logs.update({k: float(v.detach()) for k, v in g.items()})
        return loss, logs

    def _magnitude_loss(self, gen: VocosVocoder, mel: torch.Tensor, real: torch.Tensor):
        """``phase="griffinlim"``: the head is trained on magnitudes alone (``mel_weight`` × (log
        magnitude L1 + mel L1), see :func:`.spectral.magnitude_losses`); no waveform, no GAN phase."""
        loss, parts = magnitude_losses(gen, mel, real)
        return self.cfg.mel_weight * loss, {k: float(v.detach()) for k, v in parts.items()}

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
