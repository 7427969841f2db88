"""Bundled model names (``--model dsa|dasheng``), the Dasheng defaults of the API and the CLI."""

import numpy as np
import pytest
import torch

import dsatok.resources as res
from dsatok.cli.main import main
from dsatok.config import from_dict
from dsatok.dasheng_tokenizer import DASHENG_PRESETS, DashengConfig, DashengTokenizer


@pytest.fixture()
def bundle(tmp_path, monkeypatch):
    """A models/ folder holding a tiny random dasheng-default (and nothing else)."""
    torch.manual_seed(0)
    tok = DashengTokenizer(from_dict(DashengConfig, DASHENG_PRESETS["tiny"])).eval()
    tok.save_pretrained(tmp_path / "dasheng-default")
    monkeypatch.setattr(res, "_models", lambda: tmp_path)
    return tok


def _wav(path, seconds=0.6):
    import soundfile as sf

    t = np.arange(int(seconds * 16000)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000)
    return path


def test_names_resolve_and_a_missing_bundle_is_one_line(bundle, tmp_path, monkeypatch):
    assert res.resolve_model("dasheng") == tmp_path / "dasheng-default"
    assert res.resolve_model("some/dir") == res.Path("some/dir")
    assert DashengTokenizer.from_pretrained().fingerprint == bundle.fingerprint
    monkeypatch.setattr(res, "_models", lambda: tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="model 'dasheng': not bundled"):
        DashengTokenizer.from_pretrained()
    with pytest.raises(FileNotFoundError, match="no bundled enhancer"):
        res.bundled_enhancer_dir()


def test_cli_encode_decode_reconstruct_info_with_model_dasheng(bundle, tmp_path, capsys):
    wav = _wav(tmp_path / "a.wav")
    assert main(["encode", str(wav), "-o", str(tmp_path / "lat"), "--model", "dasheng", "--quiet"]) == 0
    assert (tmp_path / "lat" / "a.dslat").is_file()
    assert main(["decode", str(tmp_path / "lat" / "a.dslat"), "-o", str(tmp_path / "dec"), "--model", "dasheng",
                 "--quiet"]) == 0
    assert main(["reconstruct", str(wav), "-o", str(tmp_path / "r.wav"), "--model", "dasheng"]) == 0
    import soundfile as sf

    y, sr = sf.read(tmp_path / "r.wav")
    assert sr == 16000 and len(y) == int(0.6 * 16000) and np.isfinite(y).all()
    capsys.readouterr()
    assert main(["info", "dasheng"]) == 0
    out = capsys.readouterr().out
    assert '"kind": "dasheng"' in out and bundle.fingerprint in out


def test_cli_unbundled_name_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(res, "_models", lambda: tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["reconstruct", "x.wav", "-o", str(tmp_path / "r.wav"), "--model", "dasheng"])
    assert e.value.code == 2
    assert "model 'dasheng': not bundled" in capsys.readouterr().err


@pytest.fixture()
def bundle_with_enhancer(bundle, tmp_path):
    from dsatok.models.enhancer import EnhancerConfig, LatentEnhancer

    torch.manual_seed(1)
    LatentEnhancer(EnhancerConfig(latent_dim=bundle.cfg.dim, dim=32, depth=1, heads=2, default_steps=1)).save_pretrained(
        tmp_path / "dasheng-default" / "enhancer")
    return bundle


def test_enhance_without_model_uses_the_bundled_enhancer(bundle_with_enhancer, tmp_path):
    import soundfile as sf

    wav = _wav(tmp_path / "n.wav")
    assert main(["enhance", str(wav), "-o", str(tmp_path / "enh"), "--quiet"]) == 0
    y, sr = sf.read(tmp_path / "enh" / "n.wav")
    assert sr == 16000 and abs(len(y) - int(0.6 * 16000)) <= 640 and np.isfinite(y).all()


def test_demo_dasheng_part_writes_reconstruction_noisy_and_enhanced(bundle_with_enhancer, tmp_path):
    from dsatok.cli.demo import _dasheng, examples_dir

    content = sorted(examples_dir().glob("*.flac")) + sorted(examples_dir().glob("*.wav"))
    res_ = _dasheng(tmp_path / "demo", str(content[0]), {}, evaluate=False)
    for k in ("dasheng_reconstructed", "noisy_0db", "enhanced"):
        assert (tmp_path / "demo" / f"{k}.wav").is_file()
    assert (tmp_path / "demo" / "dasheng.png").stat().st_size > 1000
    assert res_["fingerprint"] == bundle_with_enhancer.fingerprint


def test_demo_dasheng_part_is_skipped_without_a_bundle(tmp_path, monkeypatch):
    from dsatok.cli.demo import _dasheng

    monkeypatch.setattr(res, "_models", lambda: tmp_path)
    assert "skipped" in _dasheng(tmp_path / "demo", "x.wav", {})


def test_an_enhancer_refuses_another_tokenizer(tmp_path):
    from dsatok.models.enhancer import EnhancerConfig, LatentEnhancer, SpeechEnhancer
    from dsatok.models.io import ModelLoadError

    torch.manual_seed(0)
    a = DashengTokenizer(from_dict(DashengConfig, DASHENG_PRESETS["tiny"])).eval()
    b = DashengTokenizer(from_dict(DashengConfig, DASHENG_PRESETS["tiny"])).eval()
    enh = LatentEnhancer(EnhancerConfig(latent_dim=a.cfg.dim, dim=32, depth=1, heads=2))
    SpeechEnhancer(a, enh).save_pretrained(tmp_path / "e")
    b.save_pretrained(tmp_path / "b")
    assert SpeechEnhancer.from_pretrained(tmp_path / "e").tokenizer.fingerprint == a.fingerprint
    assert SpeechEnhancer.from_pretrained(tmp_path / "e", tokenizer=tmp_path / "e" / "tokenizer")
    with pytest.raises(ModelLoadError, match="enhancer trained on the latent of tokenizer"):
        SpeechEnhancer.from_pretrained(tmp_path / "e", tokenizer=tmp_path / "b")
