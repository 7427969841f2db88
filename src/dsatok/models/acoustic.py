"""Acoustic tokenizer (seed section 3.1.2): log-mel → SEANet encoder → (residual) FSQ.

``[2, 1, 1]`` down-sampling gives 50 Hz tokens, ``[2, 2, 1]`` 25 Hz; FSQ with ``N^C`` levels
(4^8 default, 4^7 option) and ``L`` stacked layers.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import MelFrontend, batch_and_lengths, lengths_to_mask
from ..config import ConfigError, MelConfig
from ..nn.conv import SEANetEncoder
from ..quant.fsq import Quantizer, bitrate
from .io import load_model_config, load_weights, save_model

__all__ = ["AcousticConfig", "AcousticTokenizer"]

KIND = "dsatok-acoustic"


@dataclasses.dataclass(frozen=True)
class AcousticConfig:
    """Paper: encoder dims [512, 1024, 1024, 1024], strides [2, 1, 1], FSQ 4^8, 1 layer."""

    mel: MelConfig = MelConfig()
    enc_dims: tuple[int, ...] = (64, 128, 128, 128)
    strides: tuple[int, ...] = (2, 1, 1)
    latent_dim: int = 128
    fsq_levels: tuple[int, ...] = (4,) * 8
    fsq_layers: int = 1

    def __post_init__(self) -> None:
        if len(self.enc_dims) != len(self.strides) + 1:
            raise ConfigError(f"acoustic: len(enc_dims) must be len(strides) + 1, got {list(self.enc_dims)} and "
                              f"{list(self.strides)}")
        if self.fsq_layers not in (1, 2, 3, 4):
            raise ConfigError(f"acoustic.fsq_layers must be 1..4, got {self.fsq_layers}")

    @property
    def stride(self) -> int:
        return int(math.prod(self.strides))

    @property
    def frame_rate(self) -> float:
        return self.mel.sample_rate / self.mel.hop_length / self.stride

    @property
    def codebook_size(self) -> int:
        return int(math.prod(self.fsq_levels))


class AcousticTokenizer(nn.Module):
    """``quantize(wav [B, N], lens [B]) -> (q [B, T_a, D], indices [B, L, T_a], lens [B])``;
    ``encode`` returns indices only; ``embed(indices) -> [B, T_a, D]``."""

    def __init__(self, cfg: AcousticConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mel = MelFrontend(cfg.mel)
        self.encoder = SEANetEncoder(cfg.mel.n_mels, list(cfg.enc_dims), list(cfg.strides), cfg.latent_dim)
        self.fsq = Quantizer(cfg.latent_dim, list(cfg.fsq_levels), cfg.fsq_layers)

    @property
    def frame_rate(self) -> float:
        return self.cfg.frame_rate

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    @property
    def bitrate(self) -> float:
        return bitrate(self.codebook_size, self.cfg.fsq_layers, self.frame_rate)

    def token_lengths(self, mel_lens: torch.Tensor) -> torch.Tensor:
        s = self.cfg.stride
        return torch.div(mel_lens + s - 1, s, rounding_mode="floor")

    def quantize_mel(self, mel: torch.Tensor, mel_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """From log-mel ``[B, n_mels, T]`` (padded frames at the log floor).

        The mel is extended with silence (the log floor) by the encoder's receptive field, so the
        last tokens of an utterance see silence after it whether it is alone or padded in a batch.
        """
        q, idx, lens, _ = self.quantize_mel_latent(mel, mel_lens)
        return q, idx, lens

    def quantize_mel_latent(self, mel: torch.Tensor, mel_lens: torch.Tensor):
        """:meth:`quantize_mel` plus the pre-FSQ latent ``[B, T_a, D]`` (for the bound penalty in training)."""
        t_out = -(-mel.shape[-1] // self.cfg.stride)
        margin = -(-self.encoder.receptive_field // self.cfg.stride) * self.cfg.stride
        mel = F.pad(mel, (0, margin), value=math.log(self.cfg.mel.log_floor))
        h = self.encoder(mel)[..., :t_out].transpose(1, 2)
        q, idx = self.fsq(h)
        lens = self.token_lengths(mel_lens)
        mask = lengths_to_mask(lens, idx.shape[-1])
        return q * mask[..., None], idx.masked_fill(~mask[:, None], 0), lens, h

    def quantize(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mel, mel_lens = self.mel(wav, wav_lens)
        return self.quantize_mel(mel, mel_lens)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, wav_lens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        wav, wav_lens = batch_and_lengths(wav, wav_lens)
        _, idx, lens = self.quantize(wav, wav_lens)
        return idx, lens

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """``[B, L, T_a] -> [B, T_a, D]`` (the quantized latent)."""
        return self.fsq.decode(indices)

    def save_pretrained(self, out_dir: str | Path) -> Path:
        return save_model(self, self.cfg, KIND, out_dir)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> "AcousticTokenizer":
        cfg, _ = load_model_config(AcousticConfig, model_dir, KIND)
        return load_weights(cls(cfg), model_dir).requires_grad_(False)
