"""The mel refiner (GAN post-filter of the prior's mel): start, persistence, decode, training."""

import dataclasses

import pytest
import torch

from dsatok.config import ConfigError
from dsatok.models.flow_decoder import FlowDecoder
from dsatok.models.io import ModelLoadError
from dsatok.models.refiner import MelRefiner, RefinerConfig, ac_at_mel_rate

from test_prior import DEC

RCFG = RefinerConfig(dim=16, blocks=2, noise_ch=4)


def test_config_is_checked():
    with pytest.raises(ConfigError, match="kernel"):
        RefinerConfig(kernel=4)
    with pytest.raises(ConfigError, match="dilations"):
        RefinerConfig(dilations=())
    with pytest.raises(ConfigError, match="noise_ch"):
        RefinerConfig(noise_ch=-1)


def test_untrained_refiner_returns_mu_and_shapes_are_checked():
    torch.manual_seed(0)
    r = MelRefiner(dataclasses.replace(RCFG, ac_dim=8)).eval()
    mu, voice = torch.randn(2, 100, 30), torch.randn(2, 200)
    assert torch.equal(r(mu, voice), mu)  # zero-initialised output: a fresh refiner changes nothing
    assert torch.equal(r(mu, voice, torch.randn(2, 30, 8)), mu)
    with pytest.raises(ValueError, match="ac"):
        r(mu, voice, torch.randn(2, 29, 8))
    with pytest.raises(ValueError, match="voice"):
        r(mu, torch.randn(2, 100))


def test_ac_at_mel_rate_repeats_and_pads():
    ac = torch.arange(3.0)[None, :, None]  # [1, 3, 1]
    assert ac_at_mel_rate(ac, 5, 2)[0, :, 0].tolist() == [0, 0, 1, 1, 2]
    assert ac_at_mel_rate(ac, 8, 2)[0, :, 0].tolist() == [0, 0, 1, 1, 2, 2, 2, 2]


def test_round_trip_is_strict(tmp_path):
    torch.manual_seed(0)
    r = MelRefiner(RCFG)
    torch.nn.init.normal_(r.out.weight)
    r.save_pretrained(tmp_path / "r")
    back = MelRefiner.from_pretrained(tmp_path / "r")
    assert back.cfg == r.cfg and all(torch.equal(v, back.state_dict()[k]) for k, v in r.state_dict().items())
    with pytest.raises(ModelLoadError):
        FlowDecoder.from_pretrained(tmp_path / "r")  # another kind of model is refused


def _model():
    from test_tokenizer import AC

    from dsatok.models.acoustic import AcousticTokenizer
    from dsatok.models.semantic import SemanticConfig, SemanticTokenizer
    from dsatok.models.vocoder import GriffinLim
    from dsatok.tokenizer import DSATokenizer

    torch.manual_seed(0)
    sem = SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2, fsq_levels=(4, 4, 4)))
    cfg = dataclasses.replace(DEC, sem_codebook_size=64, ac_latent_dim=AC.latent_dim, prior_kind="renderer",
                              prior_dim=16, prior_mel_blocks=2)
    return DSATokenizer(sem, AcousticTokenizer(AC), FlowDecoder(cfg), GriffinLim(cfg.mel, n_iter=4))


def test_tokenizer_uses_the_refiner_in_prior_only_decodes(tmp_path):
    from test_tokenizer import AC, _wav

    from dsatok.tokenizer import DSATokenizer

    model = _model()
    tok = model.encode(_wav(0.8, 1))
    (plain,) = model.decode_mel(tok, prior_only=True)
    with pytest.raises(ModelLoadError, match="acoustic latent"):
        model.set_refiner(MelRefiner(dataclasses.replace(RCFG, ac_dim=AC.latent_dim + 1)))
    with pytest.raises(ModelLoadError, match="mel bins"):
        model.set_refiner(MelRefiner(dataclasses.replace(RCFG, n_mels=80, voice_dim=160)))
    model.set_refiner(MelRefiner(dataclasses.replace(RCFG, ac_dim=AC.latent_dim)))
    assert torch.equal(model.decode_mel(tok, prior_only=True)[0], plain)  # untrained: the prior's mel
    torch.nn.init.normal_(model.refiner.out.weight, std=0.1)
    (a,) = model.decode_mel(tok, prior_only=True, seed=0)
    (b,) = model.decode_mel(tok, prior_only=True, seed=0)
    (c,) = model.decode_mel(tok, prior_only=True, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, c)  # the seed fixes the refiner's noise
    assert not torch.allclose(a, plain)
    assert torch.equal(model.decode_mel(tok, prior_only=True, refine=False)[0], plain)
    with pytest.raises(ConfigError, match="refine"):
        model.decode_mel(tok, prior_only=True, refine="yes")
    model.save_pretrained(tmp_path / "m")
    back = DSATokenizer.from_pretrained(tmp_path / "m", vocoder="griffinlim:4")
    assert back.refiner is not None and torch.equal(back.decode_mel(tok, prior_only=True, seed=0)[0], a)
    # recombination: the voice's acoustic latent is not aligned with the output and is not read
    (v,) = model.recombine(content=_wav(0.8, 1), voice=_wav(1.4, 2), prior_only=True)
    assert torch.isfinite(v).all()
    back.set_refiner(None)
    assert torch.equal(back.decode_mel(tok, prior_only=True)[0], plain)


def test_refiner_needs_a_renderer_prior():
    from test_tokenizer import tiny_model

    with pytest.raises(ModelLoadError, match="renderer prior"):
        tiny_model().set_refiner(MelRefiner(RCFG))


def test_training_sharpens_an_over_smoothed_mel():
    """On a toy task (the 'true' mel is a smooth envelope plus a random fine structure, mu is the
    envelope), a few hundred adversarial steps give the refiner's output fine structure that mu lacks,
    while the smoothed L1 keeps its envelope near the truth."""
    from dsatok.train.gan import GANModel
    from dsatok.train.refiner import CropBatches, MelDiscriminator, RefinerStageConfig, RefinerTask, smooth_mel

    g = torch.Generator().manual_seed(0)
    items = []
    for _ in range(16):
        t = 64
        env = smooth_mel(torch.randn(1, 100, t, generator=g), 3.0)[0] * 3
        fine = torch.randn(100, t, generator=g) * 0.5
        items.append({"mu": env.half(), "mel": (env + fine).half(), "voice": torch.zeros(200),
                      "ac": torch.zeros(t, 8).half()})
    cfg = RefinerStageConfig(model=dataclasses.replace(RCFG, dim=32, blocks=2), crop_frames=48, batch_size=8,
                             disc_channels=8, env_sigma=1.5)
    task = RefinerTask(cfg)
    torch.manual_seed(0)
    model = task.build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.8, 0.99))
    it = iter(CropBatches(items, 48, 8, 0.0, 0))
    before = task.eval_step(model, next(iter(CropBatches(items, 48, 8, 0.0, 99))))
    for step in range(300):
        loss, logs = task.training_step(model, next(it), step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = task.eval_step(model, next(iter(CropBatches(items, 48, 8, 0.0, 99))))
    assert isinstance(model, GANModel) and isinstance(model.disc, MelDiscriminator)
    assert before["detail_ratio"] < 0.35 and after["detail_ratio"] > before["detail_ratio"] + 0.2, (before, after)
    assert after["env_l1"] < before["env_l1"] + 0.1


def test_train_export_and_package_from_the_cli(tiny_corpus, tmp_path):
    """``dsatok train refiner`` on a tiny corpus with a tiny tokenizer, a checkpoint exported as a
    refiner directory, packaged into a model by ``dsatok export --refiner``, which then decodes."""
    import json

    from dsatok.cli.main import main
    from dsatok.tokenizer import DSATokenizer
    from test_tokenizer import _wav

    _model().save_pretrained(tmp_path / "tok")
    run = tmp_path / "run"
    assert main(["train", "refiner", "--corpus", str(tiny_corpus), "--tokenizer", str(tmp_path / "tok"),
                 "--run-dir", str(run), "--quiet", "--set", "model.dim=16", "--set", "model.blocks=1",
                 "--set", "train.max_steps=2", "--set", "train.ckpt_every=2", "--set", "train.eval_every=2",
                 "--set", "train.eval_batches=1", "--set", "batch_size=2", "--set", "crop_frames=32",
                 "--set", "max_utterances=4", "--set", "disc_channels=4"]) == 0
    assert list(run.glob("features-*-train-4.pt")) and (run / "final" / "model.safetensors").is_file()
    ckpt = next((run / "checkpoints").iterdir())
    assert main(["export", str(ckpt), "-o", str(tmp_path / "ref")]) == 0
    assert MelRefiner.from_pretrained(tmp_path / "ref").cfg.dim == 16
    assert main(["export", str(tmp_path / "tok"), "-o", str(tmp_path / "m"), "--refiner", str(tmp_path / "ref"),
                 "--prior-only", "--vocoder", "griffinlim:4"]) == 0
    m = DSATokenizer.from_pretrained(tmp_path / "m")
    assert m.refiner is not None and m.decode_options.prior_only
    assert m.info()["refiner"] and m.info()["parameters"]["refiner"] == sum(p.numel() for p in m.refiner.parameters())
    from dsatok.cli.codec import describe_model_dir

    assert describe_model_dir(tmp_path / "m") == json.loads(json.dumps(m.info()))  # dsatok info reads configs only
    (y,) = m.reconstruct(_wav(0.8, 3))
    assert torch.isfinite(y).all()
    assert main(["export", str(tmp_path / "m"), "-o", str(tmp_path / "m2"), "--refiner", "none",
                 "--prior-only", "--vocoder", "griffinlim:4"]) == 0
    assert not (tmp_path / "m2" / "refiner").exists()
    assert json.loads((tmp_path / "m2" / "config.json").read_text())["refiner"] is False
    # a stale refiner/ left in a directory whose config says none is not loaded
    assert main(["export", str(tmp_path / "m2"), "-o", str(tmp_path / "m"), "--prior-only",
                 "--vocoder", "griffinlim:4"]) == 0
    assert (tmp_path / "m" / "refiner").is_dir() and DSATokenizer.from_pretrained(tmp_path / "m").refiner is None
    assert main(["export", str(tmp_path / "m"), "-o", str(tmp_path / "m3"), "--vocoder", "griffinlim:4"]) == 0
    assert not (tmp_path / "m3" / "refiner").exists()
