import math

import numpy as np
import pytest
import torch

from dsatok.audio import (MelFrontend, frames_to_samples, frames_to_tokens, lengths_to_mask, mel_filterbank,
                          samples_to_frames, tokens_to_frames)
from dsatok.config import ConfigError, MelConfig


def test_shapes_and_frame_rate():
    fe = MelFrontend()
    wav = torch.randn(2, 16000) * 0.1
    mel, lens = fe(wav)
    assert mel.shape == (2, 100, 100) and lens.tolist() == [100, 100]
    assert fe.cfg.frame_rate == 100.0
    assert fe(torch.randn(16123))[0].shape == (1, 100, 100)  # 16123 // 160 = 100


def test_batched_equals_single_on_valid_frames():
    torch.manual_seed(0)
    fe = MelFrontend()
    a, b = torch.randn(16000) * 0.1, torch.randn(9999) * 0.1
    batch = torch.zeros(2, 16000)
    batch[0], batch[1, :9999] = a, b
    mel, lens = fe(batch, torch.tensor([16000, 9999]))
    assert lens.tolist() == [100, 62]
    ma, _ = fe(a)
    mb, _ = fe(b)
    assert torch.allclose(mel[0], ma[0], atol=1e-5)
    assert torch.allclose(mel[1, :, :62], mb[0], atol=1e-5)
    assert torch.all(mel[1, :, 62:] == math.log(fe.cfg.log_floor))


def test_sine_peaks_in_the_right_bin():
    cfg = MelConfig()
    fe = MelFrontend(cfg)
    t = torch.arange(16000) / 16000
    mel, _ = fe(0.5 * torch.sin(2 * math.pi * 1000 * t))
    fb = mel_filterbank(cfg)
    freqs = torch.linspace(0, 8000, cfg.n_fft // 2 + 1)
    centre = (fb * freqs).sum(1) / fb.sum(1)
    peak = mel[0, :, 50].argmax().item()
    assert abs(centre[peak].item() - 1000) < 60


def test_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    for cfg in (MelConfig(), MelConfig.dasheng_acoustic(), MelConfig.dasheng_semantic()):
        ours = mel_filterbank(cfg).numpy()
        ref = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                  fmax=cfg.fmax, htk=cfg.mel_scale == "htk",
                                  norm="slaney" if cfg.norm == "slaney" else None)
        assert np.allclose(ours, ref, atol=1e-6)


def test_dasheng_acoustic_variant_has_128_bins_and_patches():
    fe = MelFrontend(MelConfig.dasheng_acoustic())
    mel, lens = fe(torch.randn(1, 16000) * 0.1)
    assert mel.shape == (1, 128, 100)
    assert frames_to_tokens(int(lens[0]), 4) == 25


def test_gradient_flows_through_compute():
    fe = MelFrontend()
    wav = (torch.randn(1, 3200) * 0.1).requires_grad_()
    mel, _ = fe.compute(wav)
    mel.sum().backward()
    assert wav.grad is not None and torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0


def test_frame_helpers_and_mask():
    assert samples_to_frames(16000) == 100 and frames_to_samples(100) == 16000
    assert frames_to_tokens(101, 4) == 26 and tokens_to_frames(26, 4) == 104
    assert frames_to_tokens(torch.tensor([100, 101]), 4).tolist() == [25, 26]
    m = lengths_to_mask(torch.tensor([3, 1]), 4)
    assert m.tolist() == [[True, True, True, False], [True, False, False, False]]


def test_bad_mel_config_fails():
    with pytest.raises(ConfigError, match="win_length"):
        MelConfig(n_fft=256, win_length=400)
    with pytest.raises(ConfigError, match="fmax"):
        MelConfig(fmax=9000.0)


def test_too_short_input_raises_clearly():
    with pytest.raises(ValueError, match="shorter than one hop"):
        MelFrontend()(torch.randn(1, 100))
