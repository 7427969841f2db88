"""Semantic tokenizer: shapes, bitrate, strict save/load, CTC helpers, HF local-directory back end."""

import json

import pytest
import torch

from dsatok.models.io import ModelLoadError
from dsatok.models.semantic import (SemanticConfig, SemanticTokenizer, ctc_greedy, ids_to_text, text_to_ids)


def _tiny(**kw) -> SemanticTokenizer:
    torch.manual_seed(0)
    return SemanticTokenizer(SemanticConfig(dim=32, layers=1, heads=2, **kw)).eval()


@pytest.mark.parametrize("rate,expect", [(25.0, 25), (50.0, 50), (12.5, 13)])
def test_encode_rates_and_lengths(rate, expect):
    tok = _tiny(frame_rate=rate)
    wav = torch.randn(2, 16000) * 0.1
    idx, lens = tok.encode(wav, torch.tensor([16000, 8000]))
    assert idx.shape == (2, expect) and lens[0] == expect and lens[1] < lens[0]
    assert idx.dtype == torch.long and int(idx.max()) < tok.codebook_size
    assert tok.embed(idx).shape == (2, expect, 32)
    assert abs(tok.bitrate - rate * torch.log2(torch.tensor(1000.0)).item()) < 1e-3


def test_batched_equals_single():
    tok = _tiny()
    a, b = torch.randn(16000) * 0.1, torch.randn(9600) * 0.1
    batch = torch.zeros(2, 16000)
    batch[0], batch[1, :9600] = a, b
    idx, lens = tok.encode(batch, torch.tensor([16000, 9600]))
    single, _ = tok.encode(b[None])
    assert torch.equal(idx[1, : lens[1]], single[0])


def test_save_load_strict(tmp_path):
    tok = _tiny()
    tok.save_pretrained(tmp_path / "s")
    back = SemanticTokenizer.from_pretrained(tmp_path / "s")
    wav = torch.randn(1, 8000) * 0.1
    assert torch.equal(tok.encode(wav)[0], back.encode(wav)[0])
    assert not any(p.requires_grad for p in back.parameters())
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    cfg["config"]["layers"] = 2
    (tmp_path / "s" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="do not match"):
        SemanticTokenizer.from_pretrained(tmp_path / "s")


def test_ctc_helpers():
    ids = text_to_ids("it's ok")
    assert ids_to_text(ids) == "it's ok"
    v = 29
    seq = [ids[0], ids[0], 0, ids[1], 0, 0, ids[1]]
    lp = torch.full((1, len(seq), v), -10.0)
    for i, s in enumerate(seq):
        lp[0, i, s] = 0.0
    assert ctc_greedy(lp, torch.tensor([len(seq)])) == ["itt"]


def test_hf_backend_from_local_directory(tmp_path):
    """A tiny random HuBERT saved by the test, loaded offline with layer choice and weighted sum."""
    from transformers import HubertConfig, HubertModel

    hc = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      conv_dim=(16, 16), conv_stride=(5, 64), conv_kernel=(10, 64), num_conv_pos_embeddings=16,
                      num_conv_pos_embedding_groups=2)
    HubertModel(hc).save_pretrained(tmp_path / "hubert")
    for weighted in (False, True):
        tok = SemanticTokenizer.from_encoder_dir(tmp_path / "hubert", SemanticConfig(hf_weighted=weighted, hf_layer=1,
                                                                                     finetune_top=1))
        assert tok.cfg.backend == "hubert"
        trainable = [n for n, p in tok.named_parameters() if p.requires_grad]
        assert any("layers.1." in n for n in trainable) and not any("layers.0." in n for n in trainable)
        idx, lens = tok.eval().encode(torch.randn(1, 16000) * 0.1)
        assert idx.shape[1] == 25 and lens[0] <= 25
        tok.save_pretrained(tmp_path / f"exp{weighted}")
        back = SemanticTokenizer.from_pretrained(tmp_path / f"exp{weighted}")  # no source directory needed
        w = torch.randn(1, 8000) * 0.1
        assert torch.equal(tok.encode(w)[0], back.encode(w)[0])
    with pytest.raises(ModelLoadError, match="not a transformers model directory"):
        SemanticTokenizer.from_encoder_dir(tmp_path / "nothing", SemanticConfig())


def test_parse_espeak_drops_stress_and_marks_words():
    from dsatok.data.phonemes import WORD, parse_espeak

    assert parse_espeak("D|@2 k|w|'I|k\n,oU|v|3\n") == ["D", "@2", WORD, "k", "w", "I", "k", WORD, "oU", "v", "3"]
    assert parse_espeak("b|'eI|b|i|; l|'aI|f|_! _: w|,aI|l") == ["b", "eI", "b", "i", WORD, "l", "aI", "f", WORD, "w", "aI", "l"]
    assert parse_espeak("  \n") == []


def test_phonemizer_runs_espeak_and_caches(tmp_path, monkeypatch):
    import shutil

    from dsatok.data.phonemes import Phonemizer

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    cache = tmp_path / "ph.json"
    a = Phonemizer(cache=cache)(["the cat", "a dog sat"])
    assert a[0][-3:] == ["k", "a", "t"] and a[1].count(" ") == 2
    monkeypatch.setattr("shutil.which", lambda _: None)  # from the cache: espeak-ng is not called again
    assert Phonemizer(cache=cache)(["a dog sat"]) == [a[1]]
    from dsatok.data.phonemes import PhonemizerError

    with pytest.raises(PhonemizerError, match="espeak-ng is not installed"):
        Phonemizer(cache=cache)(["something new"])


@pytest.mark.parametrize("target", ["chars", "phonemes"])
def test_stage1_trains_exports_and_evaluates(tiny_corpus, tmp_path, target):
    import shutil

    from dsatok.train.semantic_eval import evaluate_semantic
    from dsatok.train import semantic as S
    from dsatok.train.config import load_stage_config

    if target == "phonemes" and shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    torch.set_num_threads(1)
    ov = [f"train.run_dir={tmp_path / 'run'}", "train.max_steps=4", "train.eval_every=2", "train.eval_batches=1",
          "train.ckpt_every=2", "train.data.num_workers=0", "train.data.max_frames=2500", "train.data.max_duration=10",
          "train.data.num_buckets=2", "train.optim.warmup_steps=1", "model.dim=32", "model.layers=1", "model.heads=2", f"model.ctc_target={target}",
          "model.specaug_time_masks=2", "model.specaug_freq_masks=1"]
    cfg = S.resolve_phonemes(load_stage_config(S.SemanticStageConfig, S.SEMANTIC_PRESETS, "tiny", str(tiny_corpus), None, ov))
    metric = "cer" if target == "chars" else "per"
    assert cfg.train.best_metric == metric
    if target == "phonemes":
        assert {"D", "@"} <= set(cfg.model.phonemes) and cfg.model.vocab_size == len(cfg.model.phonemes) + 2
        assert (tiny_corpus / "cache" / "phonemes-en-us.json").is_file()
    from dsatok.train.data import corpus_batches
    from dsatok.train.engine import Trainer

    batches, dev = corpus_batches(cfg.train.data, seed=0)
    out = Trainer(S.SemanticTask(cfg), cfg.train, batches, dev, full_config=cfg, progress=False, log=lambda *a: None).fit()
    assert out["step"] == 4
    from stub_evaluators import LoudnessAsr

    rep = evaluate_semantic(tmp_path / "run" / "final", tiny_corpus, split="test", limit=4, progress=False,
                            reference_asr=LoudnessAsr())
    assert rep["ctc_target"] == target and rep["utterances"] == 4 and 0 < rep["codebook_usage"] <= 1
    assert rep[metric] > 0.3  # 4 steps of training: far from transcribing
    assert sum(v["utterances"] for v in rep["by_speaker"].values()) == 4
    # the stub ASR writes only "the ...": far off every reference, and it is scored per speaker too
    assert rep["reference"]["asr"] == "stub" and rep["reference"]["wer"] > 0.5
    assert all("reference_cer" in v for v in rep["by_speaker"].values())
    if target == "chars":  # the tiny corpus's test sentences are not all in its train texts
        vs = rep["vocabulary_split"]
        assert vs["train_vocabulary"] > 0 and 0 <= vs["oov_rate"] <= 1 and vs["wer_oov"] > 0.3
    else:
        assert rep["vocabulary_split"] == {}
    back = SemanticTokenizer.from_pretrained(tmp_path / "run" / "final")
    assert back.cfg.ctc_target == target and back.cfg.vocab_size == cfg.model.vocab_size
    if target == "chars":  # a mid-run checkpoint exports like RUN/final: the same tokenizer and CTC head
        from dsatok.cli.main import main

        ck = tmp_path / "run" / "checkpoints" / "step-00000004"
        assert main(["export", str(ck), "-o", str(tmp_path / "ck4")]) == 0
        for f in ("model.safetensors", "ctc_head.safetensors"):
            assert (tmp_path / "ck4" / f).is_file()
        a = SemanticTokenizer.from_pretrained(tmp_path / "ck4").state_dict()
        b = back.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(v, b[k]) for k, v in a.items())
