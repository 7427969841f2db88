"""Audio I/O, the log-mel front end and frame-rate helpers.

* :func:`load` reads anything soundfile reads, mixes to mono, resamples with soxr and returns
  float32 samples; bad input raises a one-line :class:`AudioError` naming the file.
* :class:`MelFrontend` is the single definition of the log-mel spectrogram used by every model
  (and inverted by the vocoder): torch STFT, batched, with lengths and masks.
* ``samples_to_frames`` / ``frames_to_samples`` / ``frames_to_tokens`` / ``tokens_to_frames``
  fix how lengths map between the waveform, the mel (100 Hz) and token streams.

Frame convention: a waveform of ``N`` samples has ``N // hop`` mel frames; frame ``i`` is
centred on sample ``i * hop``. A vocoder therefore returns ``T * hop`` samples for ``T`` frames.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .config import MelConfig

__all__ = [
    "AudioError",
    "load",
    "save",
    "MelFrontend",
    "mel_filterbank",
    "lengths_to_mask",
    "samples_to_frames",
    "frames_to_samples",
    "frames_to_tokens",
    "tokens_to_frames",
    "MIN_DURATION_S",
]

MIN_DURATION_S = 0.1
_SILENCE_PEAK = 1e-6


class AudioError(ValueError):
    """Audio input cannot be used. ``str(e)`` is one line: ``<path>: <reason>``."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def load(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate``.

    Returns:
        samples ``[N]`` float32.

    Raises:
        AudioError: missing, unreadable, empty, shorter than 0.1 s, non-finite or silent input.
    """
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AudioError(p, "file not found")
    if p.is_dir():
        raise AudioError(p, "is a directory, not an audio file")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(p, f"unreadable audio ({msg})") from None
    return check_samples(_to_mono_resampled(data, sr, sample_rate, p), sample_rate, p)


def _to_mono_resampled(data: np.ndarray, sr: int, sample_rate: int, p: Path) -> np.ndarray:
    if data.size == 0:
        raise AudioError(p, "empty audio (0 samples)")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError(p, "contains NaN or infinite samples")
    if sr != sample_rate:
        import soxr

        mono = soxr.resample(mono, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def check_samples(x: np.ndarray, sample_rate: int, name: str | Path = "<array>") -> np.ndarray:
    """Validate a mono waveform ``[N]``: long enough, finite, not silent. Returns it unchanged."""
    if x.ndim != 1:
        raise AudioError(name, f"expected mono samples [N], got shape {tuple(x.shape)}")
    if x.size == 0:
        raise AudioError(name, "empty audio (0 samples)")
    if x.size < MIN_DURATION_S * sample_rate:
        raise AudioError(name, f"too short ({x.size / sample_rate:.3f} s < {MIN_DURATION_S} s)")
    if not np.all(np.isfinite(x)):
        raise AudioError(name, "contains NaN or infinite samples")
    if float(np.max(np.abs(x))) < _SILENCE_PEAK:
        raise AudioError(name, "silent (all samples are zero)")
    return x


def save(path: str | Path, samples: np.ndarray | Tensor, sample_rate: int = 16000) -> None:
    """Write mono float samples ``[N]`` (WAV/FLAC by extension), atomically (temp + rename)."""
    import soundfile as sf

    p = Path(path)
    x = samples.detach().cpu().numpy() if isinstance(samples, Tensor) else np.asarray(samples)
    x = np.clip(x.astype(np.float32).reshape(-1), -1.0, 1.0)
    tmp = p.with_name(f".{p.name}.part")
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(p.suffix.lower(), "WAV")
    subtype = "PCM_16" if fmt in ("WAV", "FLAC") else None
    sf.write(str(tmp), x, sample_rate, format=fmt, subtype=subtype)
    tmp.replace(p)


# ----------------------------------------------------------------------------- frame helpers


def samples_to_frames(n_samples: int | Tensor, hop_length: int = 160) -> int | Tensor:
    """Number of mel frames for ``n_samples`` samples (``n // hop``)."""
    return n_samples // hop_length


def frames_to_samples(n_frames: int | Tensor, hop_length: int = 160) -> int | Tensor:
    """Number of samples a vocoder returns for ``n_frames`` mel frames."""
    return n_frames * hop_length


def frames_to_tokens(n_frames: int | Tensor, factor: int) -> int | Tensor:
    """Token frames for ``n_frames`` mel frames at down-sampling ``factor`` (ceil division)."""
    if isinstance(n_frames, Tensor):
        return torch.div(n_frames + factor - 1, factor, rounding_mode="floor")
    return -(-n_frames // factor)


def tokens_to_frames(n_tokens: int | Tensor, factor: int) -> int | Tensor:
    """Mel frames covered by ``n_tokens`` tokens at up-sampling ``factor``."""
    return n_tokens * factor


def batch_and_lengths(wav: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``[N]`` or ``[B, N]`` samples → ``([B, N], lengths [B])``; missing lengths mean full length."""
    if wav.dim() == 1:
        wav = wav[None]
    if lengths is None:
        lengths = torch.full((wav.shape[0],), wav.shape[-1], dtype=torch.long, device=wav.device)
    return wav, lengths


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """Boolean mask ``[B, T]``, True on valid positions, from ``lengths [B]``."""
    t = int(max_len) if max_len is not None else int(lengths.max().item()) if lengths.numel() else 0
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


# ----------------------------------------------------------------------------- mel front end


def _hz_to_mel(f: np.ndarray, scale: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    mels = f / f_sp
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray, scale: str) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=16)
def _filterbank_np(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, scale: str, norm: str) -> np.ndarray:
    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_pts = np.linspace(_hz_to_mel(fmin, scale), _hz_to_mel(fmax, scale), n_mels + 2)
    hz_pts = _mel_to_hz(mel_pts, scale)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        w *= (2.0 / (hz_pts[2 : n_mels + 2] - hz_pts[:n_mels]))[:, None]
    return w.astype(np.float32)


def mel_filterbank(cfg: MelConfig) -> Tensor:
    """Mel filter matrix ``[n_mels, n_fft // 2 + 1]`` (librosa-compatible slaney / htk)."""
    fmax = cfg.fmax if cfg.fmax is not None else cfg.sample_rate / 2
    return torch.from_numpy(
        _filterbank_np(cfg.sample_rate, cfg.n_fft, cfg.n_mels, float(cfg.fmin), float(fmax), cfg.mel_scale, cfg.norm)
    )


def _window(cfg: MelConfig) -> Tensor:
    n = cfg.win_length
    if cfg.window == "hann":
        return torch.hann_window(n, periodic=True)
    if cfg.window == "hamming":
        return torch.hamming_window(n, periodic=True)
    return torch.hann_window(n, periodic=False).pow(0.85)  # povey


class MelFrontend(nn.Module):
    """Batched log-mel spectrogram.

    ``forward(wav [B, N] or [N], lengths [B] | None) -> (mel [B, n_mels, T], frame_lengths [B])``
    with ``T = N // hop``. Frames past each item's length are set to ``log(log_floor)`` so that
    padded positions look like silence; use :func:`lengths_to_mask` for a mask.
    Buffers (window, filterbank) are not saved in state dicts: the config defines them.
    """

    def __init__(self, cfg: MelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or MelConfig()
        self.register_buffer("window", _window(self.cfg), persistent=False)
        self.register_buffer("fbank", mel_filterbank(self.cfg), persistent=False)

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    @property
    def floor_value(self) -> float:
        """Log-mel value of silence (what padded frames hold)."""
        return math.log(self.cfg.log_floor)

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        """Mel frames for ``n_samples`` samples."""
        return samples_to_frames(n_samples, self.cfg.hop_length)

    @torch.no_grad()
    def forward(self, wav: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.compute(wav, lengths)

    def compute(self, wav: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Like ``forward`` but differentiable (for losses on generated audio)."""
        if wav.dim() == 1:
            wav = wav[None]
        if wav.dim() != 2:
            raise ValueError(f"MelFrontend expects [B, N] or [N] samples, got shape {tuple(wav.shape)}")
        b, n = wav.shape
        cfg = self.cfg
        if lengths is None:
            lengths = torch.full((b,), n, dtype=torch.long, device=wav.device)
        n_frames = n // cfg.hop_length
        if n_frames < 1:
            raise ValueError(f"input of {n} samples is shorter than one hop ({cfg.hop_length})")
        pad = cfg.n_fft // 2
        x = torch.nn.functional.pad(wav[:, None, :].float(), (pad, pad), mode="reflect" if n > pad else "constant")[:, 0]
        # Items shorter than the batch get their own reflected tail (not the batch's zeros), so a
        # batched item's valid frames equal the frames of the same item computed alone.
        for i, li in enumerate(lengths.tolist()):
            li = int(li)
            if pad < li < n:
                x[i, pad + li : 2 * pad + li] = torch.flip(wav[i, li - pad - 1 : li - 1].float(), dims=[0])
        spec = torch.stft(
            x,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window.to(x.device),
            center=False,
            return_complex=True,
        )[..., :n_frames]
        mag = spec.abs()
        if cfg.power != 1.0:
            mag = mag.pow(cfg.power)
        mel = torch.matmul(self.fbank.to(mag.device), mag)
        logmel = torch.log(torch.clamp(mel, min=cfg.log_floor))
        frame_lengths = torch.clamp(lengths.to(wav.device) // cfg.hop_length, max=n_frames)
        mask = lengths_to_mask(frame_lengths, n_frames)
        logmel = logmel.masked_fill(~mask[:, None, :], math.log(cfg.log_floor))
        return logmel, frame_lengths
