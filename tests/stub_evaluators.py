"""Cheap evaluators for report tests: each is a function of the audio it is given."""

from __future__ import annotations

import numpy as np


class LoudnessAsr:
    """Louder output -> more words."""

    name = "stub"

    def transcribe(self, w) -> str:
        return " ".join(["the"] * int(1 + 20 * float(np.abs(w).mean())))


class SpectrumSpeaker:
    """The normalised magnitude spectrum of the first 4096 samples as the 'speaker embedding'."""

    name = "spectrum"

    def embed(self, w) -> np.ndarray:
        spec = np.abs(np.fft.rfft(np.asarray(w, dtype=np.float64)[:4096], n=4096))[:256]
        return spec / (np.linalg.norm(spec) + 1e-9)


class ConstantAsr:
    """Always the same transcript (a second judge that disagrees with LoudnessAsr)."""

    name = "constant"

    def transcribe(self, w) -> str:
        return "the the"
