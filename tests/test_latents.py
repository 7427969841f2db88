"""DashengTokenizer latent files: the API, the versioned file format and the codec CLI."""

import dataclasses

import numpy as np
import pytest
import torch

from dsatok.config import ConfigError, from_dict
from dsatok.dasheng_tokenizer import DASHENG_PRESETS, DashengConfig, DashengTokenizer
from dsatok.latents import LatentFileError, Latents


def _tiny(seed: int = 0) -> DashengTokenizer:
    torch.manual_seed(seed)
    return DashengTokenizer(from_dict(DashengConfig, DASHENG_PRESETS["tiny"])).eval()


@pytest.fixture(scope="module")
def model() -> DashengTokenizer:
    return _tiny()


def _wav(seconds: float, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * (150 + 40 * seed) * t) + 0.02 * g.standard_normal(t.shape)).astype(np.float32)


def test_latents_round_trip_a_file_and_decode_at_the_source_length(model, tmp_path):
    a, b = _wav(1.0, 0), _wav(0.55, 1)
    lat = model.encode_latents([a, b])
    assert lat.latent.shape[0] == 2 and lat.latent.shape[-1] == model.cfg.dim and lat.part == "unified"
    assert lat.lengths.tolist() == [25, 13] and lat.num_samples.tolist() == [len(a), len(b)]
    back = Latents.load(lat.save(tmp_path / "x.dslat"))
    assert torch.equal(back.latent, lat.latent) and back.fingerprint == model.fingerprint
    wa, wb = model.decode_latents(back)
    assert wa.shape == (len(a),) and wb.shape == (len(b),) and torch.isfinite(wa).all()
    one = model.encode_latents(b)  # the batch pads; item 1 alone decodes the same
    assert torch.allclose(model.decode_latents(one)[0], wb, atol=1e-4)
    sem = model.encode_latents(a, part="semantic")
    assert not torch.equal(sem.latent, lat.latent[:1, :25])
    with pytest.raises(LatentFileError, match="only the unified latent decodes"):
        model.decode_latents(sem)
    with pytest.raises(ConfigError, match="part"):
        model.encode_latents(a, part="everything")


def test_another_models_latents_are_refused(model):
    other = _tiny(1)
    assert other.fingerprint != model.fingerprint
    with pytest.raises(LatentFileError, match="made by another model"):
        model.decode_latents(other.encode_latents(_wav(0.5, 2)))


@pytest.mark.parametrize("mutate, msg", [
    (lambda l: dataclasses.replace(l, lengths=l.lengths + 100), "lengths must lie"),
    (lambda l: dataclasses.replace(l, latent=l.latent[0]), r"float tensor \[B, T, D\]"),
    (lambda l: dataclasses.replace(l, latent=l.latent.long()), "float tensor"),
    (lambda l: dataclasses.replace(l, num_samples=l.num_samples * 100), "longer than"),
    (lambda l: dataclasses.replace(l, latent=l.latent * float("nan")), "NaN"),
    (lambda l: dataclasses.replace(l, part="noise"), "part"),
    (lambda l: dataclasses.replace(l, sample_rate=1), "sample_rate"),
    (lambda l: dataclasses.replace(l, num_samples=l.num_samples[:0]), "batch sizes differ"),
])
def test_malformed_latents_are_one_line_errors(model, tmp_path, mutate, msg):
    bad = mutate(model.encode_latents(_wav(0.5, 3)))
    with pytest.raises(LatentFileError, match=msg):
        bad.save(tmp_path / "bad.dslat")
    assert not (tmp_path / "bad.dslat").exists()


def test_damaged_and_foreign_files_are_refused(model, tmp_path):
    from safetensors.torch import save_file

    f = tmp_path / "junk.dslat"
    f.write_bytes(b"not a safetensors file")
    with pytest.raises(LatentFileError, match="not a latent file"):
        Latents.load(f)
    save_file({"latent": torch.zeros(1, 2, 3)}, str(tmp_path / "plain.dslat"))
    with pytest.raises(LatentFileError, match="no dsatok header"):
        Latents.load(tmp_path / "plain.dslat")
    with pytest.raises(LatentFileError, match="not found"):
        Latents.load(tmp_path / "missing.dslat")


def test_cli_encodes_and_decodes_latents_with_a_dasheng_model(model, tmp_path, capsys):
    import soundfile as sf

    from dsatok.cli.main import main

    model.save_pretrained(tmp_path / "dash")
    sf.write(tmp_path / "a.wav", _wav(0.8, 4), 16000)
    sf.write(tmp_path / "b.wav", _wav(0.6, 5), 16000)
    assert main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--model", str(tmp_path / "dash"),
                 "-o", str(tmp_path / "lat"), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "lat").iterdir()) == ["a.dslat", "b.dslat"]
    _tiny(2).save_pretrained(tmp_path / "other")
    assert main(["encode", str(tmp_path / "b.wav"), "--model", str(tmp_path / "other"), "-o", str(tmp_path / "olat"),
                 "--quiet"]) == 0
    (tmp_path / "olat" / "b.dslat").rename(tmp_path / "lat" / "c.dslat")
    rc = main(["decode", str(tmp_path / "lat"), "--model", str(tmp_path / "dash"), "-o", str(tmp_path / "wav"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "c.dslat: made by another model" in err and err.count("\n") == 2  # one line + the count
    assert sorted(p.name for p in (tmp_path / "wav").iterdir()) == ["a.wav", "b.wav"]
    w, sr = sf.read(tmp_path / "wav" / "a.wav")
    assert sr == 16000 and len(w) == len(_wav(0.8, 4))
    # a latent given to the DSA model, and --part with it, are one-line refusals
    assert main(["decode", str(tmp_path / "lat" / "a.dslat"), "-o", str(tmp_path / "w2"), "--quiet"]) == 1
    assert "decode it with --model dasheng" in capsys.readouterr().err
    assert main(["encode", str(tmp_path / "a.wav"), "--part", "semantic", "-o", str(tmp_path / "t")]) == 2
    assert "only a DashengTokenizer" in capsys.readouterr().err
