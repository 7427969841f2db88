"""Vocoders: shapes, chunked == one-shot, Griffin-Lim inverts the mel, mel-setting mismatch refused."""

import dataclasses
import json
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
    assert isinstance(load_vocoder("griffinlim"), GriffinLim) and load_vocoder("GL").n_iter == 32
    assert load_vocoder("griffinlim:100").n_iter == 100
    with pytest.raises(Exception, match="N >= 1"):
        load_vocoder("griffinlim:0")


def test_phase_losses_ignore_whole_turns_and_see_real_errors():
    from dsatok.train.spectral import phase_losses

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
    from dsatok.train.spectral import SpectralLossConfig, spectral_losses

    torch.manual_seed(0)
    cfg = SpectralLossConfig(amp_weight=1.0, ip_weight=1.0, gd_weight=1.0, iaf_weight=1.0, ri_weight=1.0,
                             consistency_weight=1.0, mrstft_weight=1.0)
    gen = VocosVocoder(VocoderConfig(dim=32, intermediate=64, layers=2))
    real = _chirp(3200)[None]
    mel, _ = MelFrontend()(real)
    fake, off, parts = spectral_losses(gen, mel, real, SpectralLossConfig())
    assert parts == {} and float(off) == 0 and fake.shape == real.shape
    opt = torch.optim.Adam(gen.parameters(), 3e-3)
    first = None
    for _ in range(60):
        fake, loss, parts = spectral_losses(gen, mel, real, cfg)
        assert fake.shape == real.shape and set(parts) == {"amp", "ip", "gd", "iaf", "ri", "consistency", "mrstft"}
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first


def test_mrstft_loss_is_zero_on_identity_and_grows_with_noise():
    from dsatok.train.spectral import mrstft_loss

    x = _chirp(4000)[None]
    assert float(mrstft_loss(x, x, (256, 512))) < 1e-6
    small = float(mrstft_loss(x + 0.01 * torch.randn_like(x), x, (256, 512)))
    assert 0 < small < float(mrstft_loss(x + 0.1 * torch.randn_like(x), x, (256, 512)))


def test_integrated_phase_chunked_equals_one_shot_and_sums_advances():
    from dsatok.models.vocoder import integrate_phase

    adv = torch.full((1, 3, 5), 0.5 * math.pi)
    ph = integrate_phase(adv)
    assert torch.allclose(torch.cos(ph[0, 0]), torch.cos(0.5 * math.pi * torch.arange(1, 6.0)), atol=1e-5)
    assert float(ph.min()) >= 0 and float(ph.max()) < 2 * math.pi
    torch.manual_seed(0)
    v = VocosVocoder(VocoderConfig(dim=32, intermediate=64, layers=2, phase="integrated")).eval()
    mel = torch.randn(1, 100, 1300)
    with torch.no_grad():
        one = v(mel)
        assert torch.allclose(one, v.synthesize(mel, chunk_frames=300), atol=1e-3)
    with pytest.raises(Exception, match="phase"):
        VocoderConfig(phase="learned")


def test_griffinlim_phase_starts_as_the_fallback_and_keeps_its_corrections(tmp_path):
    from dsatok.config import ConfigError

    fe = MelFrontend()
    mel, _ = fe(_chirp()[None])
    v = VocosVocoder(VocoderConfig(dim=32, intermediate=64, layers=2, phase="griffinlim", gl_iterations=8)).eval()
    with torch.no_grad():  # zero-initialised head: exactly the pseudo-inverse Griffin-Lim
        assert torch.allclose(v(mel), GriffinLim(n_iter=8)(mel), atol=1e-4)
        torch.nn.init.normal_(v.head.weight, std=0.02)
        long = torch.randn(1, 100, 1300)
        lm = v.log_magnitude(long)
        assert not torch.allclose(lm, v.pinv_log_mag(long), atol=1e-3)
        wav = v.synthesize(long, chunk_frames=300)
    assert wav.shape == (1, 1300 * 160) and torch.isfinite(wav).all()
    v.save_pretrained(tmp_path / "v")
    back = load_vocoder(tmp_path / "v")
    assert back.cfg.phase == "griffinlim" and back.cfg.gl_iterations == 8
    with torch.no_grad():
        assert torch.equal(back.log_magnitude(long), lm)
    with pytest.raises(ConfigError, match="griffinlim"):
        VocoderConfig(phase="griffinlim", n_fft=1280)
    # latent input (the Dasheng decoder's path): the head predicts the whole log magnitude
    up = VocosVocoder(VocoderConfig(dim=32, intermediate=64, layers=2, in_dim=16, upsample=2, phase="griffinlim",
                                    gl_iterations=4)).eval()
    lat = torch.randn(1, 16, 700)
    with torch.no_grad():
        assert up(lat).shape == up.synthesize(lat, chunk_frames=200).shape == (1, 1400 * 160)


def test_vocoder_stage_trains_magnitudes_and_starts_from_an_export(tiny_corpus, tmp_path):
    from dsatok.config import ConfigError
    from dsatok.train.vocoder import VocoderStageConfig, VocoderTask, run

    small = ["model.dim=32", "model.intermediate=64", "model.layers=2", "model.phase=griffinlim",
             "model.gl_iterations=4", "train.eval_batches=1", "train.log_every=1", "train.optim.lr=3e-3",
             "train.optim.warmup_steps=0", "train.data.max_frames=2500", "train.data.max_duration=10",
             "train.data.num_buckets=2", "train.data.num_workers=0"]
    out = run(str(tiny_corpus), overrides=small + [f"train.run_dir={tmp_path / 'a'}", "train.max_steps=30",
                                                   "train.eval_every=30", "train.ckpt_every=30"], progress=False)
    logs = [json.loads(x) for x in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    steps = [x for x in logs if "mag_l1" in x]
    assert out["step"] == 30 and "d_loss" not in steps[-1]  # magnitudes only: no discriminator
    first, last = (sum(x["mag_l1"] for x in part) / len(part) for part in (steps[:5], steps[-5:]))
    assert last < first
    trained = VocosVocoder.from_pretrained(tmp_path / "a" / "final")
    mel = torch.randn(1, 100, 40)
    with torch.no_grad():
        assert not torch.allclose(trained.log_magnitude(mel), trained.pinv_log_mag(mel), atol=1e-3)
    # `dsatok export RUN/checkpoints/step-N` writes a vocoder run's checkpoint as a vocoder directory
    from dsatok.cli.main import main

    assert main(["export", str(tmp_path / "a" / "checkpoints" / "step-00000030"), "-o", str(tmp_path / "ck")]) == 0
    ck = VocosVocoder.from_pretrained(tmp_path / "ck")
    assert ck.cfg == trained.cfg
    assert all(torch.equal(p, q) for p, q in zip(trained.state_dict().values(), ck.state_dict().values()))
    # init_from: the stage's model starts from the export's generator; another architecture is refused
    task = VocoderTask(VocoderStageConfig(model=trained.cfg, init_from=str(tmp_path / "a" / "final")))
    gen = task.build_model().gen
    assert all(torch.equal(p, q) for p, q in zip(trained.state_dict().values(), gen.state_dict().values()))
    other = dataclasses.replace(trained.cfg, layers=3)
    with pytest.raises(ConfigError, match="config differs"):
        VocoderTask(VocoderStageConfig(model=other, init_from=str(tmp_path / "a" / "final"))).build_model()


def test_griffin_lim_from_the_true_phase_beats_a_random_start():
    from dsatok.models.vocoder import griffin_lim

    x = _chirp(8000)[None]
    win = torch.hann_window(640)
    spec = torch.stft(x, 640, 160, 640, window=win, center=True, return_complex=True)[..., :50]
    mag, true = spec.abs(), torch.exp(1j * torch.angle(spec))
    exact = griffin_lim(mag, 640, 160, win, 0, start=true)  # no iteration: the inverse STFT itself
    assert (exact - x).abs().max() < 1e-3
    def err(w):
        again = torch.stft(w, 640, 160, 640, window=win, center=True, return_complex=True)[..., :50]
        return float((again.abs() - mag).abs().mean())
    assert err(griffin_lim(mag, 640, 160, win, 4, start=true)) < err(griffin_lim(mag, 640, 160, win, 4))


def test_refine_head_starts_as_griffin_lim_and_learns_a_correction(tiny_corpus, tmp_path):
    from dsatok.config import ConfigError
    from dsatok.models.vocoder import griffin_lim, pinv_magnitude
    from dsatok.train.vocoder import run

    fe = MelFrontend()
    mel, _ = fe(_chirp(32000)[None])
    v = VocosVocoder(VocoderConfig(dim=32, intermediate=64, layers=2, phase="refine", gl_iterations=8)).eval()
    with torch.no_grad():  # zero-initialised head: the Griffin-Lim spectrum, computed independently here
        mag = pinv_magnitude(v.pinv, mel, 1.0).clamp_min(1e-5)
        gl = griffin_lim(mag, 640, 160, v.window, 8, start=torch.ones_like(mag).to(torch.cfloat))
        spec = torch.stft(gl, 640, 160, 640, window=v.window, center=True, return_complex=True)[..., : mag.shape[-1]]
        ref = torch.istft(mag * spec / spec.abs().clamp_min(1e-8), 640, 160, 640, window=v.window, length=gl.shape[-1])
        assert (v(mel) - ref).abs().max() < 1e-4
        torch.nn.init.normal_(v.head.weight, std=0.02)  # a non-zero correction: chunks still join
        one = v(mel)
        assert not torch.allclose(one, ref, atol=1e-3)
        assert (v.synthesize(mel, chunk_frames=60) - one).norm() < 1e-3 * one.norm()
    with pytest.raises(ConfigError, match="mel as input"):
        VocoderConfig(phase="refine", in_dim=16, upsample=2)
    # it learns: on one clip, a few steps of the supervised losses beat the Griffin-Lim it starts as
    from dsatok.train.spectral import mrstft_loss

    torch.manual_seed(0)
    learner = VocosVocoder(VocoderConfig(dim=32, intermediate=64, layers=2, phase="refine", gl_iterations=8))
    opt = torch.optim.Adam(learner.parameters(), 2e-3)
    target = _chirp(32000)[None]
    losses = []
    for _ in range(40):
        loss = mrstft_loss(learner(mel), target, (320, 640, 1280))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.9 * losses[0]
    # the vocoder stage trains it with supervised losses only and the export reloads with its settings
    small = ["model.dim=32", "model.intermediate=64", "model.layers=2", "model.phase=refine",
             "model.gl_iterations=4", "mel_weight=1", "spectral.mrstft_weight=1", "gan_start=1000000",
             "train.eval_batches=1", "train.log_every=1", "train.optim.lr=3e-3", "train.optim.warmup_steps=0",
             "train.data.max_frames=2500", "train.data.max_duration=10", "train.data.num_buckets=2",
             "train.data.num_workers=0", f"train.run_dir={tmp_path / 'r'}", "train.max_steps=10",
             "train.eval_every=10", "train.ckpt_every=10"]
    run(str(tiny_corpus), overrides=small, progress=False)
    logs = [json.loads(x) for x in (tmp_path / "r" / "train_log.jsonl").read_text().splitlines()]
    steps = [x for x in logs if "mrstft" in x]
    assert len(steps) == 10 and "d_loss" not in steps[-1]
    assert all(math.isfinite(x["mrstft"]) and math.isfinite(x["mel_l1"]) for x in steps)
    back = load_vocoder(tmp_path / "r" / "final")
    assert back.cfg.phase == "refine" and back.cfg.gl_iterations == 4
    with torch.no_grad():
        assert not torch.allclose(back.head_output(mel)[1], v.griffin_lim_features(mel)[1], atol=1e-3)


def test_export_sets_the_griffin_lim_iterations_of_a_vocoder(tmp_path):
    from dsatok.cli.main import main
    from dsatok.config import ConfigError
    from dsatok.models.vocoder import with_gl_iterations

    refine = VocosVocoder(VocoderConfig(dim=32, intermediate=64, layers=2, phase="refine", gl_iterations=4))
    more = with_gl_iterations(refine, 50)
    assert more.cfg.gl_iterations == 50 and refine.cfg.gl_iterations == 4  # a copy: the original keeps its count
    assert more.head.weight is refine.head.weight  # ... and shares its weights
    assert with_gl_iterations(GriffinLim(), 7).n_iter == 7
    with pytest.raises(ConfigError, match="phase 'direct'"):
        with_gl_iterations(VocosVocoder(VocoderConfig(dim=32, intermediate=64, layers=2)), 50)
    # a stage-2 export assembled with a refine vocoder at another count keeps the weights
    from dsatok.tokenizer import DSATokenizer, default_model_dir

    refine.save_pretrained(tmp_path / "v")
    out = tmp_path / "m"
    assert main(["export", str(default_model_dir()), "--vocoder", str(tmp_path / "v"), "--gl-iterations", "9",
                 "-o", str(out)]) == 0
    m = DSATokenizer.from_pretrained(out)
    assert m.vocoder.cfg.gl_iterations == 9 and m.vocoder.cfg.phase == "refine"
    assert all(torch.equal(p, q) for p, q in zip(refine.state_dict().values(), m.vocoder.state_dict().values()))
    assert main(["export", str(default_model_dir()), "--gl-iterations", "0", "-o", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_griffin_lim_heads_use_the_mels_window_when_it_is_shorter_than_n_fft():
    """A mel with ``win_length < n_fft``: the untrained Griffin-Lim-based heads equal the fallback,
    which inverts the mel's own (zero-padded) window; Vocos's direct head keeps a full-width Hann."""
    mel_cfg = MelConfig(win_length=400)
    mel, _ = MelFrontend(mel_cfg)(_chirp()[None])
    gl = GriffinLim(mel_cfg, n_iter=8)
    head = VocosVocoder(VocoderConfig(mel=mel_cfg, dim=32, intermediate=64, layers=2, phase="griffinlim",
                                      gl_iterations=8)).eval()
    refine = VocosVocoder(VocoderConfig(mel=mel_cfg, dim=32, intermediate=64, layers=2, phase="refine",
                                        gl_iterations=8)).eval()
    assert torch.equal(head.window, gl.window) and torch.equal(refine.window, gl.window)
    assert int((gl.window == 0).sum()) >= 240  # the 400-sample Hann is padded to 640
    with torch.no_grad():
        assert torch.allclose(head(mel), gl(mel), atol=1e-4)
    direct = VocosVocoder(VocoderConfig(mel=mel_cfg, dim=32, intermediate=64, layers=2))
    assert torch.equal(direct.window, torch.hann_window(640))
