"""TensorBoard media for eval steps: mel-spectrogram images and audio samples."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["mel_image", "log_mel", "log_audio"]


def mel_image(mel: torch.Tensor | np.ndarray) -> np.ndarray:
    """Log-mel ``[n_mels, T]`` -> RGB image ``[3, n_mels, T]`` in [0, 1] (low bins at the bottom)."""
    m = mel.detach().float().cpu().numpy() if isinstance(mel, torch.Tensor) else np.asarray(mel, dtype=np.float32)
    lo, hi = float(np.percentile(m, 1)), float(m.max())
    x = np.clip((m - lo) / max(hi - lo, 1e-6), 0, 1)[::-1]
    # a small perceptual colour map (black -> purple -> orange -> yellow)
    r = np.clip(1.8 * x, 0, 1)
    g = np.clip(1.8 * x - 0.8, 0, 1)
    b = np.clip(np.sin(np.pi * x) * 0.8, 0, 1)
    return np.stack([r, g, b]).astype(np.float32)


def log_mel(writer: Any, tag: str, mel: torch.Tensor | np.ndarray, step: int) -> None:
    """Add a mel-spectrogram image ``[n_mels, T]`` to a SummaryWriter."""
    writer.add_image(tag, mel_image(mel), step, dataformats="CHW")


def log_audio(writer: Any, tag: str, wav: torch.Tensor | np.ndarray, step: int, sample_rate: int = 16000) -> None:
    """Add a mono waveform ``[N]`` (clipped to [-1, 1]) to a SummaryWriter."""
    x = wav.detach().float().cpu() if isinstance(wav, torch.Tensor) else torch.from_numpy(np.asarray(wav, np.float32))
    writer.add_audio(tag, x.clamp(-1, 1).reshape(1, -1), step, sample_rate=sample_rate)
