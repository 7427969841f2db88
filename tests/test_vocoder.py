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
