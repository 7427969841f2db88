"""Noise for robustness measurements and enhancement training (16 kHz float32 audio).

* :func:`make_noise`: unit-RMS generated noise (white, pink, brown, mains hum).
* :func:`add_noise`: one utterance ``wav [N]`` plus one noise at a given SNR.
* :func:`mix_noise`: a padded batch ``wav [B, N]``, each item with its own noise and SNR
  (babble from the other utterances of the batch).
"""

from __future__ import annotations

import numpy as np

__all__ = ["GENERATED_NOISES", "make_noise", "add_noise", "mix_noise"]

GENERATED_NOISES = ("white", "pink", "brown", "hum")


def make_noise(kind: str, n: int, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """Unit-RMS noise of ``n`` samples: white, pink (1/f), brown (1/f²) or mains hum (50 Hz + harmonics)."""
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind in ("pink", "brown"):
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.maximum(np.fft.rfftfreq(n, 1 / sample_rate), 1.0)
        spec = spec / (np.sqrt(f) if kind == "pink" else f)
        x = np.fft.irfft(spec, n)
    elif kind == "hum":
        t = np.arange(n) / sample_rate
        f0 = 50.0 * rng.uniform(0.95, 1.05)
        x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3, 5))
    else:
        raise ValueError(f"unknown noise '{kind}' (choose from {GENERATED_NOISES})")
    x = np.asarray(x, dtype=np.float64)
    return (x / max(float(np.sqrt(np.mean(x**2))), 1e-9)).astype(np.float32)


def add_noise(wav: np.ndarray, kind: str, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``wav`` plus ``kind`` noise at ``snr_db`` dB SNR (``none`` returns ``wav``)."""
    if kind == "none":
        return wav
    p = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
    return (wav + make_noise(kind, len(wav), rng) * p / 10 ** (snr_db / 20)).astype(np.float32)


def mix_noise(wav: np.ndarray, lens: np.ndarray, kinds: list[str], snrs: list[float],
              rng: np.random.Generator) -> np.ndarray:
    """Noisy copies of a padded batch ``wav [B, N]`` (valid samples ``lens [B]``): item ``i`` gets
    ``kinds[i]`` at ``snrs[i]`` dB SNR over its valid samples; padding stays zero.

    The speech keeps its level, so ``out - wav`` is exactly the added noise and the clean batch is
    the reference of the noisy one at every SNR. A mixture may therefore exceed ±1 (float audio,
    never clipped or rescaled: rescaling would make the clean target louder than its input)."""
    out = wav.copy()
    b = wav.shape[0]
    for i in range(b):
        n = int(lens[i])
        if n == 0:
            continue
        x = wav[i, :n].astype(np.float64)
        if kinds[i] == "babble":
            others = [j for j in range(b) if j != i] or [i]
            noise = np.zeros(n)
            for j in rng.choice(others, size=min(2, len(others)), replace=False):
                src = wav[j, : int(lens[j])].astype(np.float64)
                if len(src) == 0:
                    continue
                src = np.resize(src, n)  # repeat shorter talkers
                noise += src / max(float(np.sqrt(np.mean(src**2))), 1e-9)
            if not noise.any():
                noise = make_noise("white", n, rng).astype(np.float64)
        else:
            noise = make_noise(kinds[i], n, rng).astype(np.float64)
        p_s = float(np.sqrt(np.mean(x**2)))
        p_n = max(float(np.sqrt(np.mean(noise**2))), 1e-9)
        out[i, :n] = (x + noise * (p_s / p_n) / 10 ** (snrs[i] / 20)).astype(np.float32)
    return out
