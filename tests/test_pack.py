"""Training packs: lossless audio, the frozen tokenizer's own tokens, batching, and stage 2 from a pack."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dsatok.models.semantic import SemanticConfig, SemanticTokenizer


@pytest.fixture(scope="module")
def sem_dir(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("sem") / "sem"
    SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2)).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def flac_pack(tiny_corpus, sem_dir, tmp_path_factory):
    from dsatok.train.pack import build_pack

    out = tmp_path_factory.mktemp("pack") / "p"
    build_pack(str(tiny_corpus), out, semantic=str(sem_dir), speaker_encoder=None, progress=False)
    return out


def test_flac_pack_is_lossless_and_holds_the_tokenizers_tokens(tiny_corpus, sem_dir, flac_pack):
    from dsatok.data.manifests import load_cuts
    from dsatok.data.batches import load_cut_audio
    from dsatok.train.pack import PackedSplit

    split = PackedSplit(flac_pack, "train")
    cuts = {c.id: c for c in load_cuts(str(tiny_corpus), "train")}
    assert set(split.ids) == set(cuts) and split.spk is None
    sem = SemanticTokenizer.from_pretrained(sem_dir)
    for i in range(3):
        ref = load_cut_audio(cuts[split.ids[i]])
        assert np.array_equal(split.wavs[i], ref)  # PCM16 corpus -> FLAC: bit exact
        idx, lens = sem.encode(torch.from_numpy(ref)[None])
        assert np.array_equal(split.sem[i], idx[0, : int(lens[0])].numpy())


def test_opus_pack_is_smaller_and_close(tiny_corpus, flac_pack, tmp_path):
    from dsatok.train.pack import PackedSplit, build_pack

    out = build_pack(str(tiny_corpus), tmp_path / "o", splits=("dev",), speaker_encoder=None, codec="opus",
                     progress=False)
    flac = PackedSplit(flac_pack, "dev")
    opus = PackedSplit(tmp_path / "o", "dev")
    flac_bytes = sum(it["audio"][1] for it in flac.meta["items"] if it["split"] == "dev")
    assert out["audio_mb"] * 2**20 < 0.5 * flac_bytes
    for a, b in zip(flac.wavs, opus.wavs):
        assert len(a) == len(b)
        spec = lambda x: np.abs(np.fft.rfft(x[: 16000 * (len(x) // 16000)].reshape(-1, 400), axis=1)) + 1e-4  # noqa: E731
        assert np.mean(np.abs(np.log(spec(a)) - np.log(spec(b)))) < 1.0  # lossy, yet the same sound
    with pytest.raises(Exception, match="no train utterance"):
        PackedSplit(tmp_path / "o", "train")


def test_pack_sampler_budget_order_and_resume(flac_pack):
    from dsatok.data.batches import ResumableBatches
    from dsatok.train.pack import PackedSplit, PackSampler, _PackDataset

    split = PackedSplit(flac_pack, "train")
    s = PackSampler(split.durations(), max_frames=1500, seed=3)
    frames = s.frames
    e0 = list(s)
    assert all(sum(frames[i] for i in b) <= 1500 or len(b) == 1 for b in e0)
    assert e0 == list(s)  # a function of (seed, epoch)
    s.set_epoch(1)
    assert list(s) != e0
    rb = ResumableBatches(PackSampler(split.durations(), 1500, seed=3), _PackDataset(split))
    it = iter(rb)
    seen = [next(it).ids for _ in range(5)]
    st = rb.state_dict()
    nxt = next(it).ids
    rb2 = ResumableBatches(PackSampler(split.durations(), 1500, seed=3), _PackDataset(split))
    rb2.load_state_dict(st)
    assert next(iter(rb2)).ids == nxt and seen


def test_stage2_trains_from_a_pack_without_the_semantic_tokenizer(flac_pack, sem_dir, tmp_path, monkeypatch):
    from dsatok.config import apply_overrides
    from dsatok.models.flow_decoder import DecoderConfig
    from dsatok.models.acoustic import AcousticConfig
    from dsatok.train import acoustic as stage2
    from dsatok.train.pack import pack_batches

    torch.set_num_threads(1)
    ac = AcousticConfig(enc_dims=(16, 32, 32, 32), latent_dim=16, fsq_levels=(4,) * 4)
    dec = DecoderConfig(dim=32, blocks=2, heads=2, ac_latent_dim=16, ac_dec_dims=(32, 32, 32, 32), sem_codebook_size=1000)
    cfg = stage2.AcousticStageConfig(acoustic=ac, decoder=dec, semantic=str(sem_dir), speaker_loss=False)
    cfg = apply_overrides(cfg, [f"train.run_dir={tmp_path / 'run'}", "train.max_steps=4", "train.eval_every=2",
                                "train.eval_batches=1", "train.ckpt_every=2", f"train.data.pack={flac_pack}",
                                "train.data.max_frames=2500", "train.data.max_duration=10"])

    def no_load(*a, **k):  # the frozen tokenizer must not be run: its tokens are in the pack
        raise AssertionError("semantic tokenizer loaded")

    monkeypatch.setattr(stage2.SemanticTokenizer, "from_pretrained", no_load)
    model = stage2.AcousticTask(cfg).build_model()
    assert model.semantic is None
    batches, _, _ = pack_batches(cfg.train.data)
    b = next(iter(batches))
    assert b.sem is not None and b.sem.shape[0] == len(b)
    assert torch.equal(model.semantic_tokens(b), b.sem)
    out = stage2.run("", config=None, overrides=[f"train.run_dir={tmp_path / 'run'}", "train.max_steps=4",
                                                 "train.eval_every=2", "train.eval_batches=1", "train.ckpt_every=2",
                                                 f"train.data.pack={flac_pack}", "train.data.max_frames=2500",
                                                 "train.data.max_duration=10", "speaker_loss=false",
                                                 f"semantic={sem_dir}", "decoder.dim=32", "decoder.blocks=2",
                                                 "decoder.heads=2", "decoder.sem_codebook_size=1000"], progress=False)
    assert out["step"] == 4
    final = tmp_path / "run" / "final"
    # the semantic tokenizer travels into the export by copy
    assert json.loads((final / "semantic" / "config.json").read_text()) == json.loads((sem_dir / "config.json").read_text())
    assert (final / "decoder" / "model.safetensors").is_file()


def test_stage2_init_from_an_export(flac_pack, tmp_path):
    from safetensors.torch import load_file

    from dsatok.config import ConfigError
    from dsatok.train import acoustic as stage2

    ov = [f"train.data.pack={flac_pack}", "train.data.max_frames=2500", "train.data.max_duration=10",
          "speaker_loss=false", "decoder.dim=32", "decoder.blocks=2", "decoder.heads=2", "decoder.sem_codebook_size=1000",
          "train.max_steps=2", "train.eval_every=2", "train.eval_batches=1"]
    stage2.run("", overrides=ov + [f"train.run_dir={tmp_path / 'a'}"], progress=False)
    src = tmp_path / "a" / "final"
    cfg = stage2.load_stage_config(stage2.AcousticStageConfig, stage2.ACOUSTIC_PRESETS, "tiny", "",
                                   None, ov + [f"init_from={src}"])
    m = stage2.AcousticTask(cfg).build_model()
    ref = load_file(str(src / "decoder" / "model.safetensors"))
    assert all(torch.equal(v, ref[k]) for k, v in m.decoder.state_dict().items())
    bad = stage2.load_stage_config(stage2.AcousticStageConfig, stage2.ACOUSTIC_PRESETS, "tiny", "", None,
                                   ov[:-6] + ["decoder.dim=64", "decoder.heads=2", "decoder.blocks=2",
                                              "decoder.sem_codebook_size=1000", f"init_from={src}"])
    with pytest.raises(ConfigError, match="does not fit"):
        stage2.AcousticTask(bad).build_model()
    # a tokenizer export has no speaker pool: the pool starts fresh, a single-stream decoder loads
    (src / "speaker_pool.safetensors").unlink()
    single = stage2.load_stage_config(stage2.AcousticStageConfig, stage2.ACOUSTIC_PRESETS, "tiny", "", None,
                                      ov + [f"init_from={src}", "decoder.use_semantic=false"])
    m = stage2.AcousticTask(single).build_model()
    assert all(torch.equal(v, ref[k]) for k, v in m.decoder.state_dict().items())
    (src / "acoustic" / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="missing acoustic"):
        stage2.AcousticTask(cfg).build_model()


def test_stage2_freeze_acoustic_trains_the_decoder_only(flac_pack, tmp_path):
    from safetensors.torch import load_file

    from dsatok.train import acoustic as stage2

    ov = [f"train.data.pack={flac_pack}", "train.data.max_frames=2500", "train.data.max_duration=10",
          "speaker_loss=false", "decoder.dim=32", "decoder.blocks=2", "decoder.heads=2", "decoder.sem_codebook_size=1000",
          "train.max_steps=2", "train.eval_every=2", "train.eval_batches=1", "train.ema_decay=0"]
    stage2.run("", overrides=ov + [f"train.run_dir={tmp_path / 'a'}"], progress=False)
    src = tmp_path / "a" / "final"
    stage2.run("", overrides=ov + [f"train.run_dir={tmp_path / 'b'}", f"init_from={src}", "freeze_acoustic=true",
                                   "train.optim.lr=1e-2", "train.optim.warmup_steps=0"], progress=False)
    out = tmp_path / "b" / "final"
    for part, same in (("acoustic", True), ("decoder", False)):
        a, b = (load_file(str(d / part / "model.safetensors")) for d in (src, out))
        assert all(torch.equal(a[k], b[k]) for k in a) == same, part
    cfg = stage2.load_stage_config(stage2.AcousticStageConfig, stage2.ACOUSTIC_PRESETS, "tiny", "", None,
                                   ov + [f"init_from={src}", "freeze_acoustic=true"])
    m = stage2.AcousticTask(cfg).build_model().train()
    assert not any(p.requires_grad for p in m.acoustic.parameters()) and not m.acoustic.training
    assert all(p.requires_grad for p in m.decoder.parameters()) and m.decoder.training


def test_single_stream_stage2_never_runs_the_semantic_tokenizer():
    from types import SimpleNamespace

    from dsatok.config import ConfigError
    from dsatok.models.acoustic import AcousticConfig, AcousticTokenizer
    from dsatok.models.flow_decoder import DecoderConfig, FlowDecoder
    from dsatok.train.acoustic import Stage2Model

    ac = AcousticTokenizer(AcousticConfig(enc_dims=(8, 16, 16, 16), latent_dim=16))
    dec = dict(dim=32, blocks=1, heads=2, ac_latent_dim=16, ac_dec_dims=(16, 16, 16, 16), sem_embed_dim=16)
    batch = SimpleNamespace(wav=torch.zeros(3, 1600), wav_lens=torch.full((3,), 1600))
    single = Stage2Model(None, ac, FlowDecoder(DecoderConfig(use_semantic=False, **dec)), 16)
    tokens = single.semantic_tokens(batch)
    assert tokens.shape == (3, 1) and int(tokens.abs().sum()) == 0
    full = Stage2Model(None, ac, FlowDecoder(DecoderConfig(**dec)), 16)
    with pytest.raises(ConfigError, match="no semantic tokenizer"):
        full.semantic_tokens(batch)


def test_prior_preset_trains_on_a_warm_dit_and_logs_each_streams_effect(flac_pack, sem_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    from dsatok.config import ConfigError
    from dsatok.train import acoustic as stage2

    ov = [f"train.data.pack={flac_pack}", "train.data.max_frames=2500", "train.data.max_duration=10",
          "speaker_loss=false", "decoder.dim=32", "decoder.blocks=2", "decoder.heads=2", "decoder.sem_codebook_size=1000",
          "train.max_steps=2", "train.eval_every=2", "train.eval_batches=1"]
    stage2.run("", overrides=ov + [f"train.run_dir={tmp_path / 'a'}"], progress=False)
    src = tmp_path / "a" / "final"
    prior = ov + ["decoder.sem_levels=[8,5,5,5]", "decoder.prior_dim=32", "decoder.prior_token_blocks=1",
                  "decoder.prior_mel_blocks=1", f"init_from={src}", 'init_parts=["acoustic","decoder_dit"]']
    cfg = stage2.load_stage_config(stage2.AcousticStageConfig, stage2.ACOUSTIC_PRESETS, "prior", "", None, prior)
    m = stage2.AcousticTask(cfg).build_model()
    ref = load_file(str(src / "decoder" / "model.safetensors"))
    own = m.decoder.state_dict()
    assert all(torch.equal(own[k], v) for k, v in ref.items() if k.startswith("blocks."))
    assert m.decoder.cfg.prior and m.prior_ctc is not None
    with pytest.raises(ConfigError, match="exclude each other"):
        stage2.load_stage_config(stage2.AcousticStageConfig, stage2.ACOUSTIC_PRESETS, "prior", "", None,
                                 prior + ['init_parts=["decoder","decoder_dit"]'])
    stage2.run("", preset="prior", overrides=prior + [f"train.run_dir={tmp_path / 'b'}", "train.max_steps=2",
                                                      "train.eval_every=2", "train.ema_decay=0", "crop_seconds=0.6"],
               progress=False)  # with crops: the cropped items skip the prior's CTC
    rows = [json.loads(x) for x in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert all("prior" in r and r["prior"] > 0 for r in rows if "flow" in r)
    ev = [v for r in rows for v in r.values() if isinstance(v, dict) and "sens_sem" in v]
    assert ev and all(e["sens_sem"] > 0 and "sens_sem_mu" in e and "prior" in e for e in ev), rows
    assert (tmp_path / "b" / "final" / "decoder" / "model.safetensors").is_file()
    # a pack-trained run names no semantic tokenizer: export says so, and takes the pack's with --semantic
    from dsatok.cli.main import main
    from dsatok.tokenizer import DSATokenizer

    ck = sorted((tmp_path / "b" / "checkpoints").iterdir())[-1]
    assert main(["export", str(ck), "-o", str(tmp_path / "m"), "--vocoder", "griffinlim:2"]) == 2
    assert "--semantic DIR" in capsys.readouterr().err and not (tmp_path / "m").exists()
    assert main(["export", str(ck), "-o", str(tmp_path / "m"), "--vocoder", "griffinlim:2", "--semantic", str(sem_dir),
                 "--steps", "4", "--prior-only"]) == 0
    m = DSATokenizer.from_pretrained(tmp_path / "m")
    assert m.decoder.cfg.prior and m.decode_options.prior_only and m.decode_options.steps == 4
    # the stored default is the prior alone; --no-prior-only runs the flow instead, per call
    import soundfile as sf

    wav = tmp_path / "x.wav"
    sf.write(str(wav), (0.1 * torch.randn(16000)).numpy(), 16000)
    outs = {}
    for flag in ([], ["--prior-only"], ["--no-prior-only"]):
        o = tmp_path / f"o{len(outs)}.wav"
        assert main(["reconstruct", str(wav), "-o", str(o), "--model", str(tmp_path / "m"), *flag]) == 0
        outs[" ".join(flag)] = sf.read(str(o))[0]
    assert (outs[""] == outs["--prior-only"]).all() and not (outs[""] == outs["--no-prior-only"]).all()


def test_prior_only_fine_tune_adds_voice_attention_and_leaves_the_dit(flac_pack, tmp_path):
    """flow_weight=0 from an exported renderer-prior decoder: the export loads into a decoder whose
    prior has voice attention (fresh layers), the prior and its attention train, the DiT does not."""
    from safetensors.torch import load_file

    from dsatok.config import ConfigError
    from dsatok.train import acoustic as stage2

    ov = [f"train.data.pack={flac_pack}", "train.data.max_frames=2500", "train.data.max_duration=10",
          "speaker_loss=false", "decoder.dim=32", "decoder.blocks=2", "decoder.heads=2", "decoder.sem_codebook_size=1000",
          "decoder.sem_levels=[8,5,5,5]", "decoder.prior_dim=32", "decoder.prior_mel_blocks=2", "train.max_steps=2",
          "train.eval_every=2", "train.eval_batches=1", "train.ema_decay=0"]
    stage2.run("", preset="prior_render", overrides=ov + [f"train.run_dir={tmp_path / 'a'}"], progress=False)
    src = tmp_path / "a" / "final"
    ft = ov + [f"init_from={src}", 'init_parts=["acoustic","decoder"]', "freeze_acoustic=true", "flow_weight=0",
               "decoder.prior_voice_attn=2", "train.optim.lr=1e-2", "train.optim.warmup_steps=0"]
    stage2.run("", preset="prior_render", overrides=ft + [f"train.run_dir={tmp_path / 'b'}"], progress=False)
    a, b = (load_file(str(d / "decoder" / "model.safetensors")) for d in (src, tmp_path / "b" / "final"))
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("blocks.", "in_proj.", "out.", "time.")))
    assert not torch.equal(a["prior.net.out.weight"], b["prior.net.out.weight"])
    assert any(k.startswith("prior.attn.") and b[k].abs().sum() > 0 for k in b if k.endswith("out.weight"))
    rows = [json.loads(x) for x in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert all("flow" not in r and r["prior"] > 0 for r in rows if "lr" in r)  # no flow loss in training
    assert any("flow" in str(r.get("dev", "")) or "loss" in r.get("dev", {}) for r in rows)  # dev still measures it
    with pytest.raises(ConfigError, match="flow_weight"):
        stage2.load_stage_config(stage2.AcousticStageConfig, stage2.ACOUSTIC_PRESETS, "prior_render", "", None,
                                 ft + ["flow_weight=-1"])
    with pytest.raises(ConfigError, match="needs decoder.prior=true"):  # no prior: nothing would train
        stage2.load_stage_config(stage2.AcousticStageConfig, stage2.ACOUSTIC_PRESETS, "tiny", "", None,
                                 ov[:8] + ["flow_weight=0"])


def test_crops_cut_long_items_on_token_boundaries_with_their_tokens():
    from dsatok.data.batches import AudioBatch
    from dsatok.train.acoustic import AcousticStageConfig, crop_batch

    from dsatok.config import ConfigError

    wav = torch.zeros(3, 6400)
    wav[0] = torch.arange(6400) / 6400
    wav[1, :1300] = 1.0
    sem = torch.zeros(3, 10, dtype=torch.long)
    sem[0] = torch.arange(10)
    sem[1, :3] = 7
    b = AudioBatch(wav, torch.tensor([6400, 1300, 3000]), ["a", "b", "c"], ["x", "y", "z"], ["s"] * 3, [{}] * 3, sem)
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(20):
        out, cropped = crop_batch(b, 2000, 640, g)
        assert cropped.tolist() == [True, False, True]
        assert out.wav_lens.tolist() == [1920, 1300, 1920] and out.wav.shape == (3, 1920)
        s0 = int(round(float(out.wav[0, 0]) * 6400))
        assert s0 % 640 == 0 and torch.equal(out.sem[0], torch.arange(s0 // 640, s0 // 640 + 3))
        assert torch.equal(out.wav[0], wav[0, s0 : s0 + 1920])
        assert torch.equal(out.wav[1, :1300], wav[1, :1300]) and torch.equal(out.sem[1, :3], sem[1, :3])
        starts.add(s0)
    assert len(starts) > 3  # random windows
    same, none = crop_batch(b, 7000, 640)
    assert same is b and not none.any()
    with pytest.raises(ConfigError, match="crop_seconds"):
        AcousticStageConfig(crop_seconds=0.05)
