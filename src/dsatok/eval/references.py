"""Classical reference codecs for the reconstruction table (a codec earns its place only if it beats them).

Codec2 (``pycodec2``, an optional package) runs at 8 kHz: the 16 kHz input is resampled down,
coded at the mode's bit rate, decoded and resampled back to 16 kHz at the input's length.
"""

from __future__ import annotations

import numpy as np

__all__ = ["codec2_roundtrip", "codec2_available", "CODEC2_MODES"]

#: Codec2 modes (bit/s) pycodec2 accepts
CODEC2_MODES = (3200, 2400, 1600, 1400, 1300, 1200, 700)


def codec2_available() -> bool:
    try:
        import pycodec2  # noqa: F401
    except ImportError:
        return False
    return True


def codec2_roundtrip(wav: np.ndarray, mode: int = 1200) -> np.ndarray:
    """16 kHz float waveform ``[N]`` → Codec2 at ``mode`` bit/s → 16 kHz float ``[N]``."""
    import pycodec2
    from scipy.signal import resample_poly

    if mode not in CODEC2_MODES:
        raise ValueError(f"codec2 mode must be one of {CODEC2_MODES}, got {mode}")
    x = np.asarray(wav, dtype=np.float64)
    lo = resample_poly(x, 1, 2)
    c2 = pycodec2.Codec2(mode)
    spf = c2.samples_per_frame()
    n = -(-lo.shape[0] // spf) * spf
    pcm = np.zeros(n, dtype=np.int16)
    pcm[: lo.shape[0]] = np.clip(lo * 32767.0, -32768, 32767).astype(np.int16)
    out = np.concatenate([c2.decode(c2.encode(pcm[i : i + spf])) for i in range(0, n, spf)]) if n else pcm
    y = resample_poly(out.astype(np.float64) / 32768.0, 2, 1)[: x.shape[0]]
    return np.pad(y, (0, x.shape[0] - y.shape[0])).astype(np.float32)
