"""Latent speech enhancement (DashengTokenizer latent) and the semantic-only Dasheng ablation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dsatok.config import from_dict
from dsatok.dasheng_tokenizer import DASHENG_PRESETS, DashengConfig, DashengTokenizer
from dsatok.models.enhancer import EnhancerConfig, LatentEnhancer
from dsatok.models.io import ModelLoadError
from dsatok.data.noise import mix_noise
from dsatok.train.enhance import flow_matching_loss


def _toy_pair(g: torch.Generator, b: int = 16, t: int = 12, d: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    clean = torch.randn(b, t, d, generator=g)
    noisy = 2 * clean + 1 + 0.05 * torch.randn(b, t, d, generator=g)  # a degradation that can be undone
    return clean, noisy


def _train_on_toy_pairs(enh: LatentEnhancer, steps: int = 200) -> None:
    opt = torch.optim.Adam(enh.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        clean, noisy = _toy_pair(g)
        loss = flow_matching_loss(enh, clean, noisy, torch.full((16,), 12))
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_flow_matching_enhancer_moves_latents_towards_the_clean_ones():
    """Toy degradation with a known inverse (scale, offset, a little noise): the conditional flow
    must learn to sample the clean latent given the degraded one, frame by frame."""
    torch.manual_seed(0)
    enh = LatentEnhancer(EnhancerConfig(latent_dim=8, dim=64, depth=2, heads=4, ff_mult=2))
    _train_on_toy_pairs(enh)
    clean, noisy = _toy_pair(torch.Generator().manual_seed(123))
    out = enh.enhance(noisy, steps=16, seed=0)
    before = float(((noisy - clean) ** 2).mean())
    after = float(((out - clean) ** 2).mean())
    assert after < 0.1 * before, (before, after)  # the input is ≈ 2.0 away


def test_noisy_prior_enhancer_starts_at_the_noisy_latent_and_learns_the_correction():
    """``prior="noisy"``: untrained (zero output layer) it returns the noisy latent plus σ·ε; after
    training on the toy degradation it lands near the clean latent, closer than the noisy one."""
    torch.manual_seed(0)
    cfg = EnhancerConfig(latent_dim=8, dim=64, depth=2, heads=4, ff_mult=2, prior="noisy", prior_sigma=0.1)
    enh = LatentEnhancer(cfg)
    enh.set_stats(torch.full((8,), 1.0), torch.full((8,), 2.0))  # prior noise is σ in standardised units
    clean, noisy = _toy_pair(torch.Generator().manual_seed(123))
    untrained = enh.enhance(noisy, steps=4, seed=0)
    assert float((untrained - noisy).abs().max()) < 6 * 0.1 * 2.0  # σ·ε, de-standardised
    assert float((untrained - noisy).abs().mean()) > 0.01  # and the noise is there
    _train_on_toy_pairs(enh)
    out = enh.enhance(noisy, steps=16, seed=0)
    before = float(((noisy - clean) ** 2).mean())
    after = float(((out - clean) ** 2).mean())
    assert after < 0.1 * before, (before, after)
    with pytest.raises(Exception, match="prior"):
        EnhancerConfig(prior="uniform")
    with pytest.raises(Exception, match="prior_sigma"):
        EnhancerConfig(prior_sigma=-1.0)


def test_t_zero_prob_trains_the_one_step_regression_point():
    """``t_zero_prob=1`` with a σ = 0 noisy prior: every example sits at t = 0 on x_0 = the noisy
    latent, so the loss no longer depends on the random draw; one Euler step then returns the
    regression estimate, here close to the clean latent."""
    torch.manual_seed(0)
    cfg = EnhancerConfig(latent_dim=8, dim=64, depth=2, heads=4, ff_mult=2, prior="noisy", prior_sigma=0.0,
                         t_zero_prob=1.0)
    enh = LatentEnhancer(cfg)
    for p in enh.out.parameters():
        torch.nn.init.normal_(p, std=0.1)
    clean, noisy = _toy_pair(torch.Generator().manual_seed(5))
    lens = torch.full((16,), 12)
    a = flow_matching_loss(enh, clean, noisy, lens, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, flow_matching_loss(enh, clean, noisy, lens, generator=torch.Generator().manual_seed(2)))
    enh.cfg = dataclasses.replace(cfg, t_zero_prob=0.0)  # uniform t: the draw matters again
    assert not torch.equal(a, flow_matching_loss(enh, clean, noisy, lens, generator=torch.Generator().manual_seed(2)))
    enh.cfg = cfg
    _train_on_toy_pairs(enh)
    clean, noisy = _toy_pair(torch.Generator().manual_seed(123))
    out = enh.enhance(noisy, steps=1, seed=0)
    assert float(((out - clean) ** 2).mean()) < 0.1 * float(((noisy - clean) ** 2).mean())
    with pytest.raises(Exception, match="t_zero_prob"):
        EnhancerConfig(t_zero_prob=1.5)


def test_enhancer_masks_padding_is_seeded_and_round_trips(tmp_path):
    torch.manual_seed(0)
    enh = LatentEnhancer(EnhancerConfig(latent_dim=8, dim=32, depth=1, heads=2, ff_mult=2, default_steps=4)).eval()
    for p in enh.out.parameters():  # non-zero output layer so the test sees the network
        torch.nn.init.normal_(p, std=0.1)
    enh.set_stats(torch.full((8,), 0.5), torch.full((8,), 2.0))
    noisy = torch.randn(2, 10, 8)
    lens = torch.tensor([10, 6])
    a = enh.enhance(noisy, lens, steps=4, seed=3)
    assert float(a[1, 6:].abs().max()) == 0.0 and float(a[1, :6].abs().max()) > 0
    assert torch.equal(a, enh.enhance(noisy, lens, seed=3))  # no steps given: the config's default_steps
    assert not torch.equal(a, enh.enhance(noisy, lens, steps=3, seed=3))
    assert not torch.equal(a, enh.enhance(noisy, lens, steps=4, seed=4))
    # the standardised latent distance counts valid frames only
    far = noisy.clone()
    far[1, 6:] += 100.0
    assert enh.latent_mse(far, noisy, lens) == 0.0 and enh.latent_mse(far, noisy) > 0
    assert enh.latent_mse(a, noisy, lens) == pytest.approx(
        float((((a - noisy) / enh.std) ** 2)[torch.arange(10)[None] < lens[:, None]].mean()), rel=1e-5)
    # a warm start at the very end of the path returns (almost) the noisy latent itself
    warm = enh.enhance(noisy, lens, steps=1, seed=3, start=0.999)
    assert torch.allclose(warm[0], noisy[0], atol=0.05) and not torch.allclose(a[0], noisy[0], atol=0.05)
    with pytest.raises(ValueError, match="start"):
        enh.enhance(noisy, lens, start=1.0)
    enh.save_pretrained(tmp_path / "e")
    back = LatentEnhancer.from_pretrained(tmp_path / "e")
    assert torch.equal(back.std, enh.std)
    assert torch.allclose(back.enhance(noisy, lens, seed=3), a, atol=1e-6)
    other = DashengTokenizer(from_dict(DashengConfig, DASHENG_PRESETS["tiny"])).save_pretrained(tmp_path / "o")
    with pytest.raises(ModelLoadError, match="expected 'dsatok-latent-enhancer'"):
        LatentEnhancer.from_pretrained(other)


def test_mixed_noise_has_the_requested_snr_and_keeps_padding_silent():
    rng = np.random.default_rng(0)
    wav = np.zeros((3, 16000), np.float32)
    lens = np.array([16000, 12000, 8000])
    for i, n in enumerate(lens):
        wav[i, :n] = 0.1 * np.sin(2 * np.pi * (200 + 50 * i) * np.arange(n) / 16000)
    kinds, snrs = ["white", "pink", "babble"], [0.0, 5.0, 10.0]
    out = mix_noise(wav, lens, kinds, snrs, rng)
    for i, n in enumerate(lens):
        noise = out[i, :n].astype(np.float64) - wav[i, :n]
        snr = 10 * np.log10(np.mean(wav[i, :n].astype(np.float64) ** 2) / np.mean(noise**2))
        assert abs(snr - snrs[i]) < 0.05, (kinds[i], snr)
        assert float(np.abs(out[i, n:]).max(initial=0)) == 0.0
    # babble is speech of the other items: correlated with them, not with white noise
    babble = out[2, :8000] - wav[2, :8000]
    others = wav[0, :8000] / np.std(wav[0, :8000]) + wav[1, :8000] / np.std(wav[1, :8000])
    assert np.corrcoef(babble, others)[0, 1] > 0.99


def test_semantic_only_dasheng_has_no_injection():
    torch.manual_seed(0)
    m = DashengTokenizer(from_dict(DashengConfig, {**DASHENG_PRESETS["tiny"], "inject_acoustic": False})).eval()
    assert not any(k.startswith("acoustic_proj") for k in m.state_dict())
    z = m.encode(torch.randn(2, 16000) * 0.1)
    assert torch.equal(z.unified, z.semantic) and float(z.acoustic.abs().max()) == 0.0


def test_enhance_stage_trains_on_a_dasheng_tokenizer_and_exports(tiny_corpus, tmp_path):
    from dsatok.models.enhancer import SpeechEnhancer
    from dsatok.models.semantic import SemanticConfig, SemanticTokenizer
    from dsatok.train.enhance import run

    torch.manual_seed(0)
    sem = SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2)).eval()
    dec = {**DASHENG_PRESETS["tiny"]["decoder"], "in_dim": 32, "dim": 64, "intermediate": 128, "layers": 2}
    DashengTokenizer(from_dict(DashengConfig, {"backend": "dsa", "dim": 32, "decoder": dec}), sem).save_pretrained(
        tmp_path / "tok")
    data = ["train.data.max_frames=2500", "train.data.max_duration=10", "train.data.num_buckets=2",
            "train.data.num_workers=0"]
    out = run(str(tiny_corpus), "tiny", str(tmp_path / "tok"),
              overrides=[f"train.run_dir={tmp_path / 'run'}", "train.max_steps=3", "train.eval_every=3",
                         "train.eval_batches=1", "train.log_every=1", "model.dim=32", "model.depth=1",
                         "model.heads=2", "stats_batches=2"] + data, progress=False)
    assert out["step"] == 3
    dev = out["dev"]
    assert np.isfinite(dev["fm_loss"]) and dev["latent_mse_noisy"] > 0 and dev["latent_mse_enhanced"] > 0 and dev["latent_mse_enhanced_1step"] > 0
    se = SpeechEnhancer.from_pretrained(tmp_path / "run" / "final")
    assert float(se.enhancer.std.min()) > 0 and not torch.allclose(se.enhancer.std, torch.ones(32))
    wav = torch.randn(16000) * 0.1
    y = se.enhance(wav, steps=2)
    assert y.shape == (25 * 640,) and torch.isfinite(y).all()


def _tiny_enhancer(tmp_path):
    from dsatok.models.enhancer import SpeechEnhancer
    from dsatok.models.semantic import SemanticConfig, SemanticTokenizer

    torch.manual_seed(0)
    sem = SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2)).eval()
    dec = {**DASHENG_PRESETS["tiny"]["decoder"], "in_dim": 32, "dim": 64, "intermediate": 128, "layers": 2}
    tok = DashengTokenizer(from_dict(DashengConfig, {"backend": "dsa", "dim": 32, "decoder": dec}), sem).eval()
    enh = LatentEnhancer(EnhancerConfig(latent_dim=32, dim=32, depth=1, heads=2, ff_mult=2)).eval()
    SpeechEnhancer(tok, enh).save_pretrained(tmp_path / "enh")
    return tmp_path / "enh"


def test_enhancement_report_scores_outputs_against_the_clean_speech(tiny_corpus, tmp_path):
    from stub_evaluators import LoudnessAsr, SpectrumSpeaker

    from dsatok.data.manifests import load_cuts
    from dsatok.eval.dasheng import enhancement_items, evaluate_enhancement
    from dsatok.eval.tables import Evaluators
    from dsatok.models.enhancer import SpeechEnhancer

    cuts = list(load_cuts(str(tiny_corpus), "test"))[:3]
    items = enhancement_items(cuts, seed=0)
    assert [i[3] for i in items] == ["white", "pink", "brown"] and {i[4] for i in items} == {-5.0}  # the first SNR of -5...15
    for _, x, noisy, _, snr in items:
        n = noisy.astype(np.float64) - x
        assert abs(10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(n**2)) - snr) < 0.1
    se = SpeechEnhancer.from_pretrained(_tiny_enhancer(tmp_path))
    rep = evaluate_enhancement(se, tiny_corpus, Evaluators(LoudnessAsr(), SpectrumSpeaker(), []), limit=3, steps=2, progress=False)
    rows = {r["system"]: r for r in rep["table"]}
    assert set(rows) == {"noisy_input", "tokenizer_passthrough", "enhanced", "clean_resynthesis"}
    assert 0 < rows["noisy_input"]["stoi"] < 1 and rows["noisy_input"]["mel_l1"] > 0
    assert rows["enhanced"]["mel_l1"] != rows["noisy_input"]["mel_l1"] and rows["enhanced"]["rtf"] > 0
    assert [g["group"] for g in rep["groups"]] == ["snr=-5", "noise=brown", "noise=pink", "noise=white"]
    g = rep["groups"][0]  # the per-group means are those of the per-utterance rows of each system
    for name in ("noisy_input", "tokenizer_passthrough", "enhanced"):
        assert g[f"{name}_stoi"] == pytest.approx(np.mean([r["stoi"] for r in rep["per_utterance"][name]]), abs=1e-4)
    # other SNRs (the issue's -5...15 dB range) cycle over the utterances after the noise kinds
    items = enhancement_items(cuts, seed=0, noises=("white",), snrs=(-5.0, 15.0))
    assert [i[4] for i in items] == [-5.0, 15.0, -5.0]
    for _, x, noisy, _, snr in items:
        n = noisy.astype(np.float64) - x
        assert abs(10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(n**2)) - snr) < 0.1
    rep = evaluate_enhancement(se, tiny_corpus, Evaluators(LoudnessAsr(), SpectrumSpeaker(), []), limit=3, steps=2,
                               snrs=(-5.0, 15.0), start=0.5, progress=False)
    assert rep["groups"][0]["group"] == "snr=-5" and rep["start"] == 0.5  # 3 items < 5 noise kinds: one SNR
    warm = {r["system"]: r for r in rep["table"]}["enhanced"]
    assert warm["mel_l1"] != rows["enhanced"]["mel_l1"]  # the warm start reaches the sampler


def test_bad_enhance_eval_flags_are_usage_errors(tmp_path):
    import subprocess
    import sys

    for flags, msg in ((["--snrs", "a,b"], "argument --snrs: expected a comma list of finite numbers, got 'a,b'"),
                       (["--snrs", "nan"], "argument --snrs: expected a comma list of finite numbers, got 'nan'"),
                       (["--start", "1"], "argument --start: must be in [0, 1), got 1.0")):
        r = subprocess.run([sys.executable, "-m", "dsatok", "eval", "enhance", "--model", str(tmp_path), "--corpus",
                            str(tmp_path), "-o", str(tmp_path / "r"), *flags], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].endswith(msg), (flags, r.stderr)
    assert not (tmp_path / "r").exists()


def test_enhance_cli_skips_a_bad_file_and_finishes_the_rest(tiny_corpus, tmp_path, capsys):
    import soundfile as sf

    from dsatok.cli.main import main

    model = _tiny_enhancer(tmp_path)
    good = sorted(f for f in tiny_corpus.rglob("*") if f.suffix in (".wav", ".flac"))[0]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    rc = main(["enhance", str(good), str(bad), "-o", str(tmp_path / "out"), "--model", str(model), "--steps", "2",
               "--quiet"])
    assert rc == 1
    assert "bad.wav" in capsys.readouterr().err
    y, sr = sf.read(tmp_path / "out" / (good.stem + ".wav"))
    assert sr == 16000 and len(y) > 0 and np.abs(y).max() > 0
    assert not (tmp_path / "out" / "bad.wav").exists()


def test_dasheng_reconstruction_report_has_a_semantic_latent_row_only_with_injection(tiny_corpus):
    from stub_evaluators import LoudnessAsr, SpectrumSpeaker

    from dsatok.eval.dasheng import evaluate_dasheng_reconstruction
    from dsatok.eval.tables import Evaluators

    torch.manual_seed(0)
    uni = DashengTokenizer(from_dict(DashengConfig, DASHENG_PRESETS["tiny"])).eval()
    sem_only = DashengTokenizer(from_dict(DashengConfig, {**DASHENG_PRESETS["tiny"], "inject_acoustic": False})).eval()
    rep = evaluate_dasheng_reconstruction({"uni": uni, "semonly": sem_only}, tiny_corpus,
                                          Evaluators(LoudnessAsr(), SpectrumSpeaker(), []), limit=2, progress=False)
    rows = {r["system"]: r for r in rep["table"]}
    assert list(rows) == ["uni", "uni/semantic-latent", "semonly", "clean_input"]
    assert rows["uni"]["rtf"] > 0 and rows["semonly"]["rtf"] > 0 and "rtf" not in rows["uni/semantic-latent"]
    # different latents into the same decoder: different audio
    assert rows["uni"]["mel_l1"] != rows["uni/semantic-latent"]["mel_l1"]
    assert "mel_l1" not in rows["clean_input"] and rows["clean_input"]["n"] == 2


def test_dasheng_reconstruction_scores_every_judge_and_a_revocoded_row(tiny_corpus):
    from stub_evaluators import ConstantAsr, LoudnessAsr, SpectrumSpeaker

    from dsatok.eval.dasheng import evaluate_dasheng_reconstruction
    from dsatok.eval.tables import Evaluators
    from dsatok.models.vocoder import load_vocoder

    torch.manual_seed(0)
    sem_only = DashengTokenizer(from_dict(DashengConfig, {**DASHENG_PRESETS["tiny"], "inject_acoustic": False})).eval()
    ev = Evaluators(LoudnessAsr(), SpectrumSpeaker(), [], [("const", ConstantAsr())])
    rep = evaluate_dasheng_reconstruction({"s": sem_only}, tiny_corpus, ev, limit=2, revocoder=load_vocoder("griffinlim:4"),
                                          progress=False)
    rows = {r["system"]: r for r in rep["table"]}
    assert list(rows) == ["s", "s/revocoded", "clean_input"]
    assert all("wer_const" in r for r in rows.values())
    assert rows["s/revocoded"]["mel_l1"] != rows["s"]["mel_l1"]


def test_bench_dasheng_times_each_case_in_its_own_process(tmp_path):
    import soundfile as sf

    from dsatok.eval.bench import bench_dasheng

    enh_dir = _tiny_enhancer(tmp_path)
    wav = tmp_path / "x.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(32000) / 10)).astype(np.float32), 16000)
    rep = bench_dasheng(str(enh_dir / "tokenizer"), str(wav), threads=1, enhancer=str(enh_dir), steps=2,
                        log=lambda *a: None)
    assert list(rep["rows"]) == ["mel", "encode", "decode", "enhance"]
    for r in rep["rows"].values():
        assert r["rtf"] > 0 and r["audio_seconds"] == 2.0 and r["peak_rss_mib"] >= r["rss_before_mib"] > 0


def test_enhance_eval_snrs_default_to_the_issue_range_and_accept_a_negative_list():
    from dsatok.cli.main import build_parser

    base = ["eval", "enhance", "--model", "M", "--corpus", "C", "-o", "R"]
    assert tuple(build_parser().parse_args(base).snrs) == (-5.0, 0.0, 5.0, 10.0, 15.0)
    assert tuple(build_parser().parse_args([*base, "--snrs=-5,15"]).snrs) == (-5.0, 15.0)
