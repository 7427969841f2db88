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
    "MAX_DURATION_S",
    "SAMPLE_RATE_RANGE",
    "as_waveforms",
]

MIN_DURATION_S = 0.1
#: longest audio accepted (seconds, at the model rate): bounds memory and time of a read or a resampling
MAX_DURATION_S = 10 * 3600.0
#: sample rates accepted from a file or a caller (Hz, inclusive)
SAMPLE_RATE_RANGE = (4000, 192000)
#: a float waveform with a larger peak is almost surely unscaled integer PCM
MAX_FLOAT_PEAK = 100.0
_SILENCE_PEAK = 1e-6


class AudioError(ValueError):
    """Audio input cannot be used. ``str(e)`` is one line: ``<path>: <reason>``."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def check_sample_rate(sr: object, name: str | Path = "sample_rate") -> int:
    """``sr`` as an int Hz within :data:`SAMPLE_RATE_RANGE`, else a one-line :class:`AudioError`."""
    lo, hi = SAMPLE_RATE_RANGE
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or not lo <= int(sr) <= hi:
        raise AudioError(name, f"sample rate {sr!r} Hz is outside {lo // 1000}-{hi // 1000} kHz")
    return int(sr)


def load(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate``.

    The header is checked before any sample is read: the file's sample rate must lie in
    :data:`SAMPLE_RATE_RANGE` and its duration must not exceed :data:`MAX_DURATION_S`.

    Returns:
        samples ``[N]`` float32.

    Raises:
        AudioError: missing, unreadable, empty, too short or too long, an absurd sample rate,
            non-finite or silent input.
    """
    import soundfile as sf

    p = Path(path)
    check_sample_rate(sample_rate)
    if not p.exists():
        raise AudioError(p, "file not found")
    if p.is_dir():
        raise AudioError(p, "is a directory, not an audio file")
    try:
        info = sf.info(str(p))
        if info.frames < 0 or info.channels < 1:
            raise AudioError(p, f"unreadable audio header ({info.frames} frames, {info.channels} channels)")
        check_sample_rate(info.samplerate, p)
        if info.frames / info.samplerate > MAX_DURATION_S:
            raise AudioError(p, f"too long ({info.frames / info.samplerate:.0f} s > {MAX_DURATION_S:.0f} s)")
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        msg = msg.replace(f"Error opening {str(p)!r}: ", "")  # libsndfile repeats the path
        raise AudioError(p, f"unreadable audio ({msg.strip()})") from None
    return check_samples(_to_mono_resampled(data, sr, sample_rate, p), sample_rate, p)


def _to_mono_resampled(data: np.ndarray, sr: int, sample_rate: int, p: Path) -> np.ndarray:
    """``data [N, C]`` at ``sr`` → mono ``[M]`` float32 at ``sample_rate`` (both rates checked)."""
    check_sample_rate(sr, p)
    if data.size == 0:
        raise AudioError(p, "empty audio (0 samples)")
    if data.shape[0] / sr > MAX_DURATION_S:
        raise AudioError(p, f"too long ({data.shape[0] / sr:.0f} s > {MAX_DURATION_S:.0f} s)")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError(p, "contains NaN or infinite samples")
    if sr != sample_rate:
        import soxr

        mono = soxr.resample(mono, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def check_samples(x: np.ndarray, sample_rate: int, name: str | Path = "<array>") -> np.ndarray:
    """Validate a mono waveform ``[N]``: long enough, finite, not silent, float-scaled. Returns it unchanged."""
    if x.ndim != 1:
        raise AudioError(name, f"expected mono samples [N], got shape {tuple(x.shape)}")
    if x.size == 0:
        raise AudioError(name, "empty audio (0 samples)")
    if x.size < MIN_DURATION_S * sample_rate:
        raise AudioError(name, f"too short ({x.size / sample_rate:.3f} s < {MIN_DURATION_S} s)")
    if x.size > MAX_DURATION_S * sample_rate:
        raise AudioError(name, f"too long ({x.size / sample_rate:.0f} s > {MAX_DURATION_S:.0f} s)")
    if not np.all(np.isfinite(x)):
        raise AudioError(name, "contains NaN or infinite samples")
    peak = float(np.max(np.abs(x)))
    if peak < _SILENCE_PEAK:
        raise AudioError(name, "silent (all samples are zero)")
    if peak > MAX_FLOAT_PEAK:
        raise AudioError(name, f"peak amplitude {peak:.4g}: float samples belong in [-1, 1] (integer PCM "
                               "arrays are scaled by their dtype; give them as int16 / int32)")
    return x


def _to_float(x: np.ndarray | Tensor, name: str) -> np.ndarray:
    """An array of samples as float32 numpy: floats as they are, integer PCM scaled by its dtype
    (int16 / 32768, int32 / 2**31, uint8 centred on 128); bool, complex and object arrays are refused."""
    if isinstance(x, Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise AudioError(name, f"unsupported sample type {str(x.dtype).replace('torch.', '')} (give real samples)")
        x = x.detach().cpu()
        try:
            x = x.numpy() if x.dtype != torch.bfloat16 else x.float().numpy()
        except TypeError:  # a dtype numpy lacks
            x = x.double().numpy() if x.is_floating_point() else x.long().numpy()
    kind = x.dtype.kind
    if kind == "f":
        return x.astype(np.float32, copy=False)
    if kind in "iu":
        bits = 8 * x.dtype.itemsize
        centre = 2.0 ** (bits - 1) if kind == "u" else 0.0
        return ((x.astype(np.float64) - centre) / 2.0 ** (bits - 1)).astype(np.float32)
    raise AudioError(name, f"unsupported sample type {x.dtype} (give float samples in [-1, 1] or integer PCM)")


def as_waveforms(audio: object, sample_rate: int, lengths: object = None, name: str = "audio") -> list[Tensor]:
    """Every accepted audio input as a list of checked mono float32 waveforms ``[N_i]`` at ``sample_rate``.

    Accepted: a path (read with :func:`load`), a waveform ``[N]`` or batch ``[B, N]`` (numpy or
    torch; float in [-1, 1] or integer PCM) with optional ``lengths [B]``, or a non-empty list /
    tuple of these. Anything else raises one :class:`AudioError` naming the input and the problem.
    A tensor's device is kept.
    """
    sample_rate = check_sample_rate(sample_rate)
    if isinstance(audio, (str, Path)):
        if lengths is not None:
            raise AudioError("lengths", "only given with a [B, N] batch array, not with a file")
        return [torch.from_numpy(load(audio, sample_rate))]
    if isinstance(audio, (list, tuple)):
        if lengths is not None:
            raise AudioError("lengths", "only given with a [B, N] batch array, not with a list")
        if not audio:
            raise AudioError(name, "no audio given (an empty list)")
        return [w for i, a in enumerate(audio) for w in as_waveforms(a, sample_rate, None, f"{name}[{i}]")]
    if not isinstance(audio, (np.ndarray, Tensor)):
        raise AudioError(name, f"unsupported audio input of type {type(audio).__name__} "
                               "(give a path, a numpy array or a torch tensor)")
    device = audio.device if isinstance(audio, Tensor) else torch.device("cpu")
    if audio.ndim not in (1, 2):
        raise AudioError(name, f"expected samples [N] or a batch [B, N], got shape {tuple(audio.shape)}")
    if 0 in tuple(audio.shape):
        raise AudioError(name, f"empty audio (shape {tuple(audio.shape)})")
    x = _to_float(audio, name)
    if x.ndim == 1:
        if lengths is not None:
            raise AudioError("lengths", "only given with a [B, N] batch array")
        return [torch.from_numpy(np.ascontiguousarray(check_samples(x, sample_rate, name))).to(device)]
    lens = _batch_lengths(lengths, x.shape[0], x.shape[1])
    out = []
    for i, n in enumerate(lens):
        w = np.ascontiguousarray(check_samples(x[i, :n], sample_rate, f"{name}[{i}]"))
        out.append(torch.from_numpy(w).to(device))
    return out


def _batch_lengths(lengths: object, b: int, n: int) -> list[int]:
    """Checked ``lengths [B]`` of a ``[B, N]`` batch (all ``N`` when ``None``)."""
    if lengths is None:
        return [n] * b
    if isinstance(lengths, Tensor):
        lengths = lengths.detach().cpu().numpy()
    arr = np.asarray(lengths) if isinstance(lengths, (np.ndarray, list, tuple)) else None
    if arr is None or arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise AudioError("lengths", f"expected a 1-D integer array [B], got {type(lengths).__name__}"
                                    + (f" of {arr.dtype} {tuple(arr.shape)}" if arr is not None else ""))
    if arr.shape[0] != b:
        raise AudioError("lengths", f"{arr.shape[0]} lengths for a batch of {b}")
    if arr.min() < 1 or arr.max() > n:
        raise AudioError("lengths", f"values must lie in [1, {n}] (the batch's length), got [{arr.min()}, {arr.max()}]")
    return [int(v) for v in arr]


def save(path: str | Path, samples: np.ndarray | Tensor, sample_rate: int = 16000) -> None:
    """Write mono float samples ``[N]`` (WAV/FLAC by extension), atomically (temp + rename).

    Raises:
        AudioError: naming ``path`` when it cannot be written (missing or read-only directory, ...).
    """
    import soundfile as sf

    from .files import atomic_path

    p = Path(path)
    x = samples.detach().cpu().numpy() if isinstance(samples, Tensor) else np.asarray(samples)
    x = np.clip(x.astype(np.float32).reshape(-1), -1.0, 1.0)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(p.suffix.lower(), "WAV")
    subtype = "PCM_16" if fmt in ("WAV", "FLAC") else None
    try:
        with atomic_path(p) as tmp:
            sf.write(str(tmp), x, sample_rate, format=fmt, subtype=subtype)
    except Exception as e:  # OSError from the directory, LibsndfileError from the writer
        msg = (e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]) or type(e).__name__
        raise AudioError(p, f"cannot write audio ({msg})") from None


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
