"""Vocoders: shapes, chunked == one-shot, Griffin-Lim inverts the mel, mel-setting mismatch refused."""

import math

import pytest
import torch

from dsatok.audio import MelFrontend
from dsatok.config import MelConfig
from dsatok.models.io import ModelLoadError
from dsatok.models.vocoder import GriffinLim, VocoderConfig, VocosVocoder, load_vocoder


def _chirp(n=16000):
    t = torch.arange(n) / 16000
    return 0.3 * torch.sin(2 * math.pi * (200 + 300 * t) * t)


def test_vocos_shapes_and_upsampling():
    v = VocosVocoder(VocoderConfig(dim=32, intermediate=64, layers=2)).eval()
    assert v(torch.randn(2, 100, 50)).shape == (2, 50 * 160)
    up = VocosVocoder(VocoderConfig(dim=32, intermediate=64, layers=2, in_dim=16, upsample=4)).eval()
    assert up(torch.randn(1, 16, 25)).shape == (1, 25 * 4 * 160)


def test_chunked_equals_one_shot():
    torch.manual_seed(0)
    v = VocosVocoder(VocoderConfig(dim=32, intermediate=64, layers=2)).eval()
    mel = torch.randn(1, 100, 1300)
    with torch.no_grad():
        assert torch.allclose(v(mel), v.synthesize(mel, chunk_frames=300), atol=1e-4)


def test_griffin_lim_reconstructs_mel():
    fe = MelFrontend()
    mel, _ = fe(_chirp()[None])
    wav = GriffinLim()(mel)
    assert wav.shape == (1, 16000)
    err = (fe(wav)[0] - mel).abs().mean()
    noise = (fe(torch.randn(1, 16000) * 0.1)[0] - mel).abs().mean()
    assert err < 0.3 and err < noise / 4


def test_save_load_and_mel_mismatch(tmp_path):
    v = VocosVocoder(VocoderConfig(dim=32, intermediate=64, layers=2))
    v.save_pretrained(tmp_path / "v")
    back = load_vocoder(tmp_path / "v")
    mel = torch.randn(1, 100, 20)
    assert torch.equal(v.eval()(mel), back(mel))
    with pytest.raises(ModelLoadError, match="n_mels=100 \\(decoder 80\\)"):
        load_vocoder(tmp_path / "v", MelConfig(n_mels=80))
    assert isinstance(load_vocoder("griffinlim"), GriffinLim)


def test_phase_losses_ignore_whole_turns_and_see_real_errors():
    from dsatok.train.vocoder import phase_losses

    torch.manual_seed(0)
    true = (torch.rand(2, 9, 12) - 0.5) * 2 * math.pi
    turns = torch.randint(-3, 4, true.shape).float() * 2 * math.pi
    same = phase_losses(true + turns, true)
    assert all(float(v) < 1e-4 for v in same.values())
    off = phase_losses(true + 0.5, true)  # a constant offset: wrong phase, same delays and frequencies
    assert abs(float(off["ip"]) - 0.5) < 1e-4 and float(off["gd"]) < 1e-4 and float(off["iaf"]) < 1e-4
    ramp = phase_losses(true + 0.3 * torch.arange(12.0), true)  # a frequency shift shows in iaf only
    assert abs(float(ramp["iaf"]) - 0.3) < 1e-4 and float(ramp["gd"]) < 1e-4


def test_spectral_losses_train_the_head_towards_the_truth():
    from dsatok.train.vocoder import VocoderStageConfig, VocoderTask

    torch.manual_seed(0)
    cfg = VocoderStageConfig(model=VocoderConfig(dim=32, intermediate=64, layers=2), amp_weight=1.0,
                             phase_weight=1.0, ri_weight=1.0, consistency_weight=1.0)
    task = VocoderTask(cfg)
    gen = VocosVocoder(cfg.model)
    real = _chirp(3200)[None]
    mel, _ = task.fe(real)
    opt = torch.optim.Adam(gen.parameters(), 3e-3)
    first = None
    for _ in range(60):
        fake, loss, parts = task._spectral(gen, real, mel)
        assert fake.shape == real.shape and set(parts) == {"amp", "ip", "gd", "iaf", "ri", "consistency"}
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first
