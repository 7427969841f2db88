"""DSATokenizer API, Tokens files and the codec CLI, on a tiny random model."""

import json

import numpy as np
import pytest
import torch

from dsatok.audio import AudioError, save
from dsatok.models.acoustic import AcousticConfig, AcousticTokenizer
from dsatok.models.flow_decoder import DecoderConfig, FlowDecoder
from dsatok.models.io import ModelLoadError
from dsatok.models.semantic import SemanticConfig, SemanticTokenizer
from dsatok.models.vocoder import GriffinLim
from dsatok.tokenizer import DSATokenizer
from dsatok.tokens import TokenFileError, Tokens

AC = AcousticConfig(enc_dims=(8, 16, 16, 16), latent_dim=16)
DEC = DecoderConfig(dim=32, blocks=2, heads=2, sem_codebook_size=1000, ac_latent_dim=16, ac_dec_dims=(16, 16, 16, 16),
                    sem_embed_dim=16)


def tiny_model(seed: int = 0) -> DSATokenizer:
    torch.manual_seed(seed)
    sem = SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2))
    dec = FlowDecoder(DEC)
    for p in dec.parameters():  # open the zero-initialised gates so every path is live
        if p.dim() > 1 and float(p.abs().sum()) == 0:
            torch.nn.init.normal_(p, std=0.05)
    return DSATokenizer(sem, AcousticTokenizer(AC), dec, GriffinLim(DEC.mel, n_iter=4))


@pytest.fixture(scope="module")
def model() -> DSATokenizer:
    return tiny_model()


def _wav(seconds: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 16000)) / 16000
    return (0.3 * torch.sin(2 * np.pi * (150 + 50 * seed) * t) + 0.05 * torch.randn(t.shape, generator=g)).float()


def test_properties(model):
    assert model.sample_rate == 16000
    assert model.frame_rates == (25.0, 50.0)
    assert model.codebook_sizes == (1000, 4 ** 8)
    assert abs(model.bitrate - (25 * np.log2(1000) + 50 * 16)) < 1e-6
    assert len(model.fingerprint) == 16 and model.fingerprint != tiny_model(seed=1).fingerprint


def test_encode_batch_equals_single_and_lengths(model):
    a, b = _wav(1.3, 0), _wav(0.72, 1)
    tok = model.encode([a, b])
    assert tok.semantic.shape == (2, 33) and tok.acoustic.shape == (2, 1, 65)
    assert tok.semantic_lengths.tolist() == [33, 18] and tok.acoustic_lengths.tolist() == [65, 36]
    assert tok.num_samples.tolist() == [a.shape[0], b.shape[0]]
    one = model.encode(b)
    assert torch.equal(one.semantic[0], tok.semantic[1, :18]) and torch.equal(one.acoustic[0], tok.acoustic[1, :, :36])


def test_single_stream_encode_never_runs_the_semantic_encoder(model, monkeypatch):
    import dataclasses

    torch.manual_seed(0)
    dec = FlowDecoder(dataclasses.replace(DEC, use_semantic=False))
    single = DSATokenizer(model.semantic, model.acoustic, dec, model.vocoder)
    assert single.single_stream
    a, b = _wav(1.3, 0), _wav(0.72, 1)
    full = model.encode([a, b])

    def boom(*_a, **_k):
        raise AssertionError("the semantic encoder ran")

    monkeypatch.setattr(model.semantic, "encode", boom)
    tok = single.encode([a, b])
    assert tok.semantic_lengths.tolist() == full.semantic_lengths.tolist()
    assert int(tok.semantic.abs().sum()) == 0
    assert torch.equal(tok.acoustic, full.acoustic)


def test_decode_lengths_and_seed(model):
    tok = model.encode([_wav(0.8, 0), _wav(0.5, 1)])
    w1 = model.decode(tok, steps=2, seed=3)
    w2 = model.decode(tok, steps=2, seed=3)
    w3 = model.decode(tok, steps=2, seed=4)
    assert [w.shape[0] for w in w1] == tok.num_samples.tolist()
    assert torch.equal(w1[0], w2[0]) and not torch.equal(w1[0], w3[0])
    assert all(torch.isfinite(w).all() for w in w1)


def test_recombine_follows_content_length(model):
    out = model.recombine(_wav(0.6, 0), _wav(1.5, 1), steps=2)
    assert len(out) == 1 and out[0].shape[0] == int(0.6 * 16000)


def test_voice_guidance_default_travels_with_the_model_and_can_be_overridden(model, tmp_path):
    import dataclasses

    tok = model.recombine_tokens(model.encode(_wav(0.6, 0)), model.encode(_wav(1.2, 1)))
    plain = model.decode_mel(tok, steps=2)[0]
    pushed = model.decode_mel(tok, steps=2, voice_cfg=2.0)[0]
    assert not torch.allclose(plain, pushed, atol=1e-4)
    m = DSATokenizer(model.semantic, model.acoustic, model.decoder, model.vocoder,
                     dataclasses.replace(model.decode_options, voice_cfg=2.0))
    m.save_pretrained(tmp_path / "mv")
    back = DSATokenizer.from_pretrained(tmp_path / "mv")
    assert back.decode_options.voice_cfg == 2.0
    assert torch.allclose(back.decode_mel(tok, steps=2)[0], pushed, atol=1e-5)
    assert torch.allclose(back.decode_mel(tok, steps=2, voice_cfg=0)[0], plain, atol=1e-5)
    content = model.decode_mel(tok, steps=2, content_cfg=2.0)[0]
    assert not torch.allclose(plain, content, atol=1e-4) and not torch.allclose(pushed, content, atol=1e-4)
    with pytest.raises(ValueError, match="voice_cfg: expected a finite number"):
        model.decode_mel(tok, steps=2, voice_cfg=float("nan"))


def test_token_file_round_trip_and_refusals(model, tmp_path):
    tok = model.encode([_wav(0.9, 0), _wav(0.4, 2)])
    p = tok.save(tmp_path / "x.dsatok")
    back = Tokens.load(p)
    for k in ("semantic", "acoustic", "semantic_lengths", "acoustic_lengths", "num_samples"):
        assert torch.equal(getattr(back, k), getattr(tok, k))
    assert back.fingerprint == model.fingerprint and back.frame_rates == model.frame_rates
    other = tiny_model(seed=1)
    with pytest.raises(TokenFileError, match="fingerprint"):
        other.decode(back, steps=1)
    (tmp_path / "bad.dsatok").write_bytes(b"not a token file")
    with pytest.raises(TokenFileError, match="bad.dsatok: not a token file"):
        Tokens.load(tmp_path / "bad.dsatok")


def test_save_load_pretrained(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    back = DSATokenizer.from_pretrained(tmp_path / "m")
    assert back.fingerprint == model.fingerprint
    w = _wav(0.7, 0)
    a, b = model.decode_mel(model.encode(w), steps=2), back.decode_mel(back.encode(w), steps=2)
    assert torch.allclose(a[0], b[0], atol=1e-5)
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["vocoder"] == "griffinlim:4" and back.vocoder.n_iter == model.vocoder.n_iter == 4
    gl64 = DSATokenizer.from_pretrained(tmp_path / "m", vocoder="griffinlim:64")
    assert gl64.vocoder.n_iter == 64
    gl64.save_pretrained(tmp_path / "m64")  # the iterations travel with the model directory
    assert DSATokenizer.from_pretrained(tmp_path / "m64").vocoder.n_iter == 64
    with pytest.raises(ModelLoadError, match="griffinlim:N"):
        DSATokenizer.from_pretrained(tmp_path / "m", vocoder="griffinlim:many")
    meta["kind"] = "something-else"
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="expected 'dsatok-tokenizer'"):
        DSATokenizer.from_pretrained(tmp_path / "m")


def test_long_input_is_chunked(model):
    w = _wav(7.3, 5)
    tok = model.encode(w, chunk_seconds=2.0, context_seconds=0.64)
    ref = model.encode(w, chunk_seconds=60.0)
    assert tok.semantic_lengths.tolist() == ref.semantic_lengths.tolist()
    assert tok.acoustic_lengths.tolist() == ref.acoustic_lengths.tolist()
    # the acoustic encoder is convolutional: with enough context, chunking changes nothing
    same = (tok.acoustic == ref.acoustic).float().mean()
    assert same > 0.99
    mel = model.decode_mel(tok, steps=1, chunk_frames=200, overlap=24)[0]
    assert mel.shape == (100, w.shape[0] // 160) and torch.isfinite(mel).all()


def test_bad_audio_is_one_line(model, tmp_path):
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        model.encode(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="silent"):
        model.encode(torch.zeros(16000))


def test_cli_encode_decode_skips_bad_files(model, tmp_path, capsys):
    from dsatok.cli.main import main

    model.save_pretrained(tmp_path / "m")
    src = tmp_path / "in"
    src.mkdir()
    save(src / "a.wav", _wav(0.6, 0).numpy())
    save(src / "b.wav", _wav(0.5, 1).numpy())
    (src / "c.wav").write_bytes(b"RIFF broken")
    rc = main(["encode", str(src), "-o", str(tmp_path / "tok"), "--model", str(tmp_path / "m"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "c.wav" in err and "1 of 3" in err
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["a.dsatok", "b.dsatok"]
    rc = main(["decode", str(tmp_path / "tok"), "-o", str(tmp_path / "wav"), "--model", str(tmp_path / "m"),
               "--steps", "1", "--quiet"])
    assert rc == 0
    import soundfile as sf

    x, sr = sf.read(tmp_path / "wav" / "a.wav")
    assert sr == 16000 and x.shape[0] == int(0.6 * 16000)
    rc = main(["info", str(tmp_path / "m")])
    info = json.loads(capsys.readouterr().out)
    assert rc == 0 and info["fingerprint"] == model.fingerprint


def test_bundled_fingerprint_matches_the_one_it_was_exported_with():
    """Token files made with the bundled model must stay decodable: a config field added later (with
    its default) must not change the fingerprint that config.json recorded at export."""
    import json as _json

    from dsatok.tokenizer import default_model_dir

    recorded = _json.loads((default_model_dir() / "config.json").read_text())["fingerprint"]
    assert DSATokenizer.from_pretrained().fingerprint == recorded


def test_one_decode_path_with_its_defaults_in_one_place(model, monkeypatch):
    import dataclasses

    from dsatok.config import ConfigError
    from dsatok.models.flow_decoder import FlowDecoder
    from dsatok.options import DecodeOptions

    tok = model.encode(_wav(0.6, 2))
    seen = []
    real = FlowDecoder.generate

    def spy(self, *a, **k):
        seen.append(a[4])
        return real(self, *a, **k)

    monkeypatch.setattr(FlowDecoder, "generate", spy)
    mel = model.decode_mel(tok, steps=2, content_cfg=0.5)[0]
    assert len(seen) == 1 and seen[0] == dataclasses.replace(model.decode_options, steps=2, content_cfg=0.5)
    opts = DecodeOptions(steps=2, content_cfg=0.5, cfg_scale=model.decode_options.cfg_scale)
    assert torch.equal(model.decode_mel(tok, opts)[0], mel)  # an options object or keywords: one path
    assert model.options(sway=None).sway is None and model.options(steps=None) == model.decode_options
    with pytest.raises(ConfigError, match="decode option stepz: unknown"):
        model.decode_mel(tok, stepz=2)
