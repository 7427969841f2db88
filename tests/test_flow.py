"""Acoustic tokenizer, flow decoder, sampler and the stage-2 / vocoder training tasks."""

import dataclasses

import pytest
import torch

from dsatok.models.acoustic import AcousticConfig, AcousticTokenizer
from dsatok.models.flow_decoder import DecoderConfig, FlowDecoder, sample, sway_schedule
from dsatok.models.semantic import SemanticConfig, SemanticTokenizer

AC = AcousticConfig(enc_dims=(8, 16, 16, 16), latent_dim=16)
DEC = DecoderConfig(dim=32, blocks=2, heads=2, sem_codebook_size=1000, ac_latent_dim=16, ac_dec_dims=(16, 16, 16, 16),
                    sem_embed_dim=16)


def _parts():
    """Tokenizer and decoder with the zero-initialised gates randomised, so every path is live."""
    torch.manual_seed(0)
    dec = FlowDecoder(DEC).eval()
    for p in dec.parameters():
        if p.dim() > 1 and float(p.abs().sum()) == 0:
            torch.nn.init.normal_(p, std=0.05)
    return AcousticTokenizer(AC).eval(), dec


@pytest.mark.parametrize("strides,rate", [((2, 1, 1), 50.0), ((2, 2, 1), 25.0)])
def test_acoustic_rates(strides, rate):
    ac = AcousticTokenizer(dataclasses.replace(AC, strides=strides)).eval()
    wav, wl = torch.randn(2, 16000) * 0.1, torch.tensor([16000, 8000])
    idx, lens = ac.encode(wav, wl)
    stride = 100 // int(rate)
    assert ac.frame_rate == rate and idx.shape == (2, 1, int(rate)) and lens.tolist() == [int(rate), -(-50 // stride)]
    assert abs(ac.bitrate - rate * 16) < 1e-6  # 4^8 = 16 bits per frame
    q, _, _ = ac.quantize(wav, wl)
    assert torch.allclose(ac.embed(idx)[0], q[0], atol=1e-5)


def test_context_hides_masked_acoustic_frames():
    ac, dec = _parts()
    q, _, lens = ac.quantize(torch.randn(1, 16000) * 0.1, torch.tensor([16000]))
    vis = torch.zeros(1, q.shape[1], dtype=torch.bool)
    vis[:, :20] = True
    x, t = torch.randn(1, 100, 100), torch.rand(1)
    sem = torch.randint(0, 1000, (1, 25))
    a = dec.velocity(x, t, dec.prepare(sem, torch.tensor([100]), 100, q, lens, visible=vis))
    q2 = q.clone()
    q2[:, 20:] = torch.randn_like(q2[:, 20:])
    b = dec.velocity(x, t, dec.prepare(sem, torch.tensor([100]), 100, q2, lens, visible=vis))
    assert torch.allclose(a, b, atol=1e-5)  # frames >= tau cannot leak through codes or keys
    c = dec.velocity(x, t, dec.prepare(sem, torch.tensor([100]), 100, q2, lens))
    assert not torch.allclose(a, c, atol=1e-4)


def test_sampler_different_lengths_seed_and_kv_reuse(monkeypatch):
    ac, dec = _parts()
    qa, _, la = ac.quantize(torch.randn(1, 24000) * 0.1, torch.tensor([24000]))  # voice A: 1.5 s
    sem = torch.randint(0, 1000, (1, 20))  # content S: 0.8 s -> 80 mel frames
    ctx = dec.prepare(sem, torch.tensor([80]), 80, qa, la)
    calls = {"kv": 0}
    for blk in dec.blocks:  # count cross-attention key/value computations from here on
        orig = blk.cross_att.kv
        def counting(*a, _orig=orig, **k):
            calls["kv"] += 1
            return _orig(*a, **k)
        monkeypatch.setattr(blk.cross_att, "kv", counting)
    g = lambda: torch.Generator().manual_seed(3)
    m1 = sample(dec, ctx, 80, steps=4, generator=g())
    assert calls["kv"] == 0  # keys / values were computed once, in prepare()
    assert m1.shape == (1, 100, 80) and torch.isfinite(m1).all()
    assert torch.equal(m1, sample(dec, ctx, 80, steps=4, generator=g()))
    assert not torch.equal(m1, sample(dec, ctx, 80, steps=4, generator=torch.Generator().manual_seed(4)))
    mid = sample(dec, ctx, 80, steps=4, solver="midpoint", cfg_scale=0.0, sway=None, generator=g())
    assert mid.shape == m1.shape and not torch.equal(mid, m1)
    s = sway_schedule(8, -1.0, torch.device("cpu"))
    assert s[0] == 0 and abs(float(s[-1]) - 1) < 1e-6 and (s[1:] > s[:-1]).all() and s[1] < 1 / 8


def test_guidance_is_the_documented_combination_of_four_fields():
    """One Euler step from t = 0: the update is v_c + w (v_c - v_u) + w_v (v_c - v_s) + w_c (v_c - v_a),
    each field evaluated alone."""
    ac, dec = _parts()
    qa, _, la = ac.quantize(torch.randn(2, 16000) * 0.1, torch.tensor([16000, 12000]))
    sem = torch.randint(0, 1000, (2, 16))
    ctx = dec.prepare(sem, torch.tensor([64, 50]), 64, qa, la)
    x0 = torch.randn(2, 100, 64, generator=torch.Generator().manual_seed(5))
    t = torch.zeros(2)
    vc = dec.velocity(x0, t, ctx)
    vu = dec.velocity(x0, t, dec.unconditional(ctx))
    vs = dec.velocity(x0, t, dec.dropped(ctx, acoustic=True))
    va = dec.velocity(x0, t, dec.dropped(ctx, semantic=True))
    assert not torch.allclose(vc, vs, atol=1e-4) and not torch.allclose(vc, va, atol=1e-4)  # both streams matter
    floor = torch.log(torch.tensor(dec.cfg.mel.log_floor))
    for w, wv, wc in ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 2.0, 0.0), (0.0, 0.0, 1.5), (1.0, 2.0, 1.5)):
        want = dec.denormalize(x0 + vc + w * (vc - vu) + wv * (vc - vs) + wc * (vc - va))
        want[1, :, 50:] = floor
        got = sample(dec, ctx, 64, steps=1, cfg_scale=w, voice_cfg=wv, content_cfg=wc, sway=None,
                     generator=torch.Generator().manual_seed(5))
        assert torch.allclose(got, want, atol=1e-4), (w, wv, wc)
    other = dec.prepare(torch.randint(0, 1000, (2, 16)), torch.tensor([64, 50]), 64, qa, la)  # another context
    vo = dec.velocity(x0, t, other)
    want = dec.denormalize(x0 + vc + (vc - vu) + 0.5 * (vc - vo))
    want[1, :, 50:] = floor
    got = sample(dec, ctx, 64, steps=1, cfg_scale=1.0, extra_guides=[(0.5, other)], sway=None,
                 generator=torch.Generator().manual_seed(5))
    assert torch.allclose(got, want, atol=1e-4)
    with pytest.raises(ValueError, match="extra guide weight must be a finite number"):
        sample(dec, ctx, 64, steps=1, extra_guides=[(float("inf"), other)])


def test_save_load_strict(tmp_path):
    ac, dec = _parts()
    ac.save_pretrained(tmp_path / "a")
    dec.save_pretrained(tmp_path / "d")
    assert all(torch.equal(a, b) for a, b in zip(dec.state_dict().values(),
                                                  FlowDecoder.from_pretrained(tmp_path / "d").state_dict().values()))
    w = torch.randn(1, 8000) * 0.1
    assert torch.equal(ac.encode(w)[0], AcousticTokenizer.from_pretrained(tmp_path / "a").encode(w)[0])


def test_stage2_task_trains_and_exports(tiny_corpus, tmp_path):
    from dsatok.train.acoustic import AcousticStageConfig, AcousticTask
    from dsatok.train.config import TrainConfig
    from dsatok.train.data import corpus_batches
    from dsatok.train.engine import Trainer
    from dsatok.config import apply_overrides

    torch.set_num_threads(1)
    SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2)).save_pretrained(tmp_path / "sem")
    cfg = AcousticStageConfig(acoustic=AC, decoder=DEC, semantic=str(tmp_path / "sem"), recomb_prob=0.5)
    cfg = apply_overrides(cfg, [f"train.run_dir={tmp_path / 'run'}", "train.max_steps=6", "train.eval_every=3",
                                "train.eval_batches=1", "train.ckpt_every=3", f"train.data.corpus={tiny_corpus}",
                                "train.data.num_workers=0", "train.data.max_frames=2500", "train.data.max_duration=10", "train.data.num_buckets=2",
                                "train.optim.lr=0.003", "train.optim.warmup_steps=1"])
    batches, dev = corpus_batches(cfg.train.data, seed=0)
    spk = {}
    from dsatok.data.manifests import load_cuts
    for split in ("train", "dev"):
        for c in load_cuts(str(tiny_corpus), split):
            spk[c.id] = torch.nn.functional.normalize(torch.randn(256), dim=0)
    out = Trainer(AcousticTask(cfg, spk), cfg.train, batches, dev, progress=False, log=lambda *a: None).fit()
    assert out["step"] == 6 and out["skipped_updates"] == 0
    for part in ("semantic", "acoustic", "decoder"):
        assert (tmp_path / "run" / "final" / part / "model.safetensors").is_file()
    final = FlowDecoder.from_pretrained(tmp_path / "run" / "final" / "decoder")
    from dsatok.train.engine import export_checkpoint

    export_checkpoint(AcousticTask(cfg, spk), tmp_path / "run" / "checkpoints" / "step-00000006", tmp_path / "ck")
    again = FlowDecoder.from_pretrained(tmp_path / "ck" / "decoder")
    for (k, v), (_, w) in zip(final.state_dict().items(), again.state_dict().items()):
        assert torch.equal(v, w), k  # the last checkpoint exports the same weights as final/
    import json
    logs = [json.loads(l) for l in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    logs = [l for l in logs if "loss" in l]
    assert all(l["bound"] >= 0 for l in logs)  # the acoustic FSQ's pre-bound penalty is part of the loss
    assert logs and {0.0, 1.0} >= {l["recomb"] for l in logs} and all(0 <= l["spk"] <= 2 for l in logs)


def test_stage2_rejects_mismatched_semantic(tmp_path):
    from dsatok.config import ConfigError
    from dsatok.train.acoustic import AcousticStageConfig, AcousticTask

    SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2, fsq_levels=(4, 4, 4))).save_pretrained(tmp_path / "s")
    cfg = AcousticStageConfig(acoustic=AC, decoder=DEC, semantic=str(tmp_path / "s"), speaker_loss=False)
    with pytest.raises(ConfigError, match="does not match"):
        AcousticTask(cfg).build_model()


def test_gan_losses_reach_the_right_parameters():
    from dsatok.train.gan import Discriminators, gan_losses

    torch.manual_seed(0)
    disc = Discriminators(4, 4)
    gen_param = torch.nn.Parameter(torch.randn(1, 4000) * 0.1)
    losses = gan_losses(disc, torch.randn(1, 4000) * 0.1, gen_param * 1.0)
    losses["g_adv"].backward(retain_graph=True)
    assert gen_param.grad.abs().sum() > 0 and all(p.grad is None for p in disc.parameters())
    gen_param.grad = None
    losses["d_loss"].backward()
    assert gen_param.grad is None and any(p.grad is not None for p in disc.parameters())


def test_single_stream_baseline_ignores_semantic_tokens():
    torch.manual_seed(0)
    ac = AcousticTokenizer(AC).eval()
    dec = FlowDecoder(dataclasses.replace(DEC, use_semantic=False)).eval()
    for p in dec.parameters():
        if p.dim() > 1 and float(p.abs().sum()) == 0:
            torch.nn.init.normal_(p, std=0.05)
    wav = torch.randn(1, 16000) * 0.1
    q, _, lens = ac.quantize(wav, torch.tensor([16000]))
    outs = []
    for seed in (0, 1):
        sem = torch.randint(0, 1000, (1, 25), generator=torch.Generator().manual_seed(seed))
        ctx = dec.prepare(sem, torch.tensor([100]), 100, q, lens)
        outs.append(sample(dec, ctx, 100, steps=2, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(outs[0], outs[1])
    # the full model does listen to them
    _, full = _parts()
    a = [sample(full, full.prepare(torch.full((1, 25), v), torch.tensor([100]), 100, q, lens), 100, steps=2,
                generator=torch.Generator().manual_seed(0)) for v in (3, 700)]
    assert not torch.allclose(a[0], a[1])


def test_shared_adanorm_spends_time_conditioning_once_and_still_depends_on_t(tmp_path):
    per_block = FlowDecoder(DEC)
    torch.manual_seed(0)
    shared = FlowDecoder(dataclasses.replace(DEC, adanorm="shared")).eval()
    assert not any(".mod." in k for k in shared.state_dict()) and "time_mod.weight" in shared.state_dict()
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    d = DEC.dim
    # per block: three (D -> 3D) projections replaced by three 3D offsets; once: one D -> 9D projection
    assert n(per_block) - n(shared) == DEC.blocks * (3 * (d * 3 * d + 3 * d) - 9 * d) - (d * 9 * d + 9 * d)
    torch.nn.init.normal_(shared.time_mod.weight, std=0.05)
    torch.nn.init.normal_(shared.out.weight, std=0.05)
    x = torch.randn(1, DEC.mel.n_mels, 50)
    ctx = shared.prepare(torch.zeros(1, 13, dtype=torch.long), torch.tensor([50]), 50, torch.randn(1, 25, 16),
                         torch.tensor([25]))
    with torch.no_grad():
        v0, v1 = shared.velocity(x, torch.tensor([0.1]), ctx), shared.velocity(x, torch.tensor([0.9]), ctx)
    assert float((v0 - v1).abs().max()) > 1e-4
    shared.save_pretrained(tmp_path / "s")
    back = FlowDecoder.from_pretrained(tmp_path / "s")
    with torch.no_grad():
        assert torch.equal(back.velocity(x, torch.tensor([0.1]), ctx), v0)
    with pytest.raises(Exception, match="adanorm"):
        DecoderConfig(adanorm="global")
