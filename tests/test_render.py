"""The mel renderer: stage 1's render head and the renderability probe (dsatok eval render)."""

import types

import pytest
import torch

from dsatok.eval.render_probe import RenderItem, RenderProbeConfig, train_render_probe
from dsatok.models.semantic import SemanticConfig
from dsatok.nn.render import MelRenderer, voice_stats
from dsatok.train.semantic import SemanticStageConfig, SemanticTask


def test_renderer_shapes_and_masked_voice_stats():
    net = MelRenderer(8, n_mels=10, dim=16, blocks=2, up=4)
    x, v = torch.randn(2, 7, 8), torch.randn(2, 20)
    assert net(x, v).shape == (2, 10, 28)
    ids = MelRenderer(0, n_mels=10, dim=16, blocks=1, up=2, embedding=5)
    assert ids(torch.randint(0, 5, (3, 4)), torch.randn(3, 20)).shape == (3, 10, 8)
    mel = torch.zeros(1, 10, 6)
    mel[..., 3:] = 100.0  # padded frames must not count
    st = voice_stats(mel, torch.tensor([[True] * 3 + [False] * 3]))
    assert torch.allclose(st[0, :10], torch.zeros(10)) and st[0, 10:].max() < 1e-2


def _stage(weight: float) -> SemanticStageConfig:
    return SemanticStageConfig(model=SemanticConfig(dim=32, layers=1, heads=2, fsq_levels=(4, 4, 4)),
                               render_weight=weight, render_dim=16, render_blocks=1)


def test_render_head_loss_reaches_the_encoder_through_fsq():
    torch.manual_seed(0)
    batch = types.SimpleNamespace(wav=torch.randn(2, 16000) * 0.1, wav_lens=torch.tensor([16000, 11000]),
                                  texts=["hello there", "hi"])
    off = SemanticTask(_stage(0.0))
    assert off.build_model().render is None
    task = SemanticTask(_stage(1.0))
    model = task.build_model()
    assert model.render is not None and model.render.up == 4  # 100 Hz mel over 25 Hz tokens
    _, logs = task.training_step(model, batch, 0)
    assert logs["render_l1"] > 0
    *_, q = model(batch.wav, batch.wav_lens, aux=True)
    _, _, _, lens = model(batch.wav, batch.wav_lens)
    task._render_loss(model, q, lens, batch).backward()  # the render term alone
    g = sum(float(p.grad.abs().sum()) for p in model.tokenizer.encoder.parameters() if p.grad is not None)
    assert g > 0
    with torch.no_grad():
        assert "render_l1" in task.eval_step(model.eval(), batch)


def test_distillation_from_the_frozen_front_end_reaches_the_encoder_through_fsq():
    torch.manual_seed(0)
    batch = types.SimpleNamespace(wav=torch.randn(2, 16000) * 0.1, wav_lens=torch.tensor([16000, 11000]),
                                  texts=["hello there", "hi"])
    task = SemanticTask(SemanticStageConfig(model=SemanticConfig(dim=32, layers=1, heads=2, fsq_levels=(4, 4, 4)),
                                            distill_weight=1.0))
    model = task.build_model()
    assert model.render is None and model.distill.out_features == 100  # the conformer's log-mel
    _, logs = task.training_step(model, batch, 0)
    assert 0 < logs["distill"] <= 2
    *_, q = model(batch.wav, batch.wav_lens, aux=True)
    _, _, _, lens = model(batch.wav, batch.wav_lens)
    task._distill_loss(model, q, lens, batch).backward()  # the distillation term alone
    g = sum(float(p.grad.abs().sum()) for p in model.tokenizer.encoder.parameters() if p.grad is not None)
    assert g > 0 and model.distill.weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert "distill" in task.eval_step(model.eval(), batch)
    assert SemanticTask(_stage(0.0)).build_model().distill is None


def _items(informative: bool, n: int = 24) -> list[RenderItem]:
    g = torch.Generator().manual_seed(1)
    proj = torch.randn(6, 12, generator=g)
    out = []
    for _ in range(n):
        x = torch.randn(20, 6, generator=g)
        mel = (x @ proj).T.repeat_interleave(2, dim=1)  # [12, 40]
        feat = x if informative else torch.randn(20, 6, generator=g)
        out.append(RenderItem(feat, mel, "", ""))
    return out


def test_probe_renders_from_informative_features_and_not_from_noise():
    cfg = RenderProbeConfig(steps=150, batch=8, crop_tokens=10, dim=32, blocks=2, lr=3e-3)
    _, good = train_render_probe(_items(True), 6, 0, 2, cfg, progress=False)
    _, bad = train_render_probe(_items(False), 6, 0, 2, cfg, progress=False)
    assert good["train_l1_last"] < 0.6 * bad["train_l1_last"]


def test_cli_render_refuses_unknown_inputs(capsys):
    from dsatok.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["eval", "render", "--corpus", "x", "--inputs", "codes,words", "-o", "/tmp/x.json"])
    assert "unknown 'words'" in str(e.value)


def test_render_probe_report_on_a_tiny_corpus_scores_every_judge(tiny_corpus, tmp_path):
    from stub_evaluators import ConstantAsr, LoudnessAsr, SpectrumSpeaker

    from dsatok.eval.render_probe import render_probe
    from dsatok.eval.tables import Evaluators
    from dsatok.models.semantic import SemanticTokenizer
    from dsatok.models.vocoder import load_vocoder

    torch.manual_seed(0)
    SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2, fsq_levels=(4, 4))).save_pretrained(tmp_path / "sem")
    ev = Evaluators(LoudnessAsr(), SpectrumSpeaker(), [], [("const", ConstantAsr())])
    cfg = RenderProbeConfig(steps=3, batch=2, crop_tokens=20, dim=16, blocks=1)
    rep = render_probe(tmp_path / "sem", tiny_corpus, ["codes", "table", "continuous"], ev, load_vocoder("griffinlim:2"),
                       cfg, limit=2, train_limit=4, progress=False)
    assert rep["codebook"] == 16 and rep["bitrate"] == 100.0  # 4 bits at 25 Hz
    for kind in ("codes", "table", "continuous"):
        row = rep["inputs"][kind]
        assert row["n"] == 2 and row["train_items"] == 4 and "wer_const" in row and row["mel_l1"] > 0
        spk = row["by_speaker"]  # per-voice rows add up to the whole test set
        assert sum(r["n"] for r in spk.values()) == 2 and all({"wer", "wer_const", "words"} <= set(r) for r in spk.values())
    with pytest.raises(ValueError, match="need a DSA model directory"):
        render_probe(tmp_path / "sem", tiny_corpus, ["acoustic"], ev, load_vocoder("griffinlim:2"), cfg, progress=False)
