"""LLM voice cloning: sequence format, vocabulary extension of a local Qwen3, SFT, generation."""

from __future__ import annotations

import pytest
import torch

from dsatok.lm.format import IGNORE, TokenLayout
from dsatok.lm.model import SpeechLM

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "head_dim": 16}


def _utt(g, t_s, layers=2):
    return torch.randint(0, 10, (t_s,), generator=g), torch.randint(0, 7, (layers, 2 * t_s), generator=g)


def test_layout_masks_the_prompt_and_parses_its_own_response():
    lay = TokenLayout(text_vocab=5, semantic_codes=10, acoustic_codes=7, acoustic_layers=2)
    g = torch.Generator().manual_seed(0)
    s, a, c = _utt(g, 4), _utt(g, 3), _utt(g, 5)
    ids, labels = lay.example(s, a, c)
    resp = lay.response(c)
    assert ids[-len(resp):] == resp and labels[-len(resp):] == resp
    assert all(x == IGNORE for x in labels[: -len(resp)])
    assert min(ids) >= lay.text_vocab and max(ids) < lay.size
    sem, ac, ended = lay.parse_response(resp)
    assert ended and torch.equal(sem, c[0]) and torch.equal(ac, c[1])
    sem, ac, ended = lay.parse_response(resp[:-2])  # cut mid-frame, no <eos_s>
    assert not ended and ac.shape == (2, c[1].shape[1] - 1)


def test_tiny_lm_learns_a_response_and_generation_always_ends():
    from dsatok.lm.train import examples_from, train_lm

    lay = TokenLayout(0, 10, 7, 1)
    lm = SpeechLM.tiny(lay, **TINY)
    g = torch.Generator().manual_seed(1)
    trip = {"content_tokens": _utt(g, 3, 1), "voice_tokens": _utt(g, 2, 1), "target_tokens": _utt(g, 3, 1)}
    ex = examples_from(lm, [trip] * 8, max_len=512)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = train_lm(lm, ex, ex[:2], f"{d}/lm", lr=1e-2, batch_size=8, max_steps=120, progress=False,
                       log=lambda *a: None)
        assert out["history"][-1]["dev_loss"] < 0.2
        back = SpeechLM.from_pretrained(f"{d}/lm")
    prompt = lay.prompt(trip["content_tokens"], trip["voice_tokens"])
    gen = back.generate(prompt, 100, temperature=0)
    assert not gen.hit_max and gen.ids == lay.response(trip["target_tokens"])
    short = back.generate(prompt, 3, temperature=1.0, seed=0)
    assert short.hit_max and len(short.ids) == 3


def test_local_qwen3_base_gets_speech_rows_and_keeps_text_rows(tmp_path):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    base = Qwen3ForCausalLM(Qwen3Config(vocab_size=50, tie_word_embeddings=False, **TINY))
    base.save_pretrained(str(tmp_path / "qwen"))
    lm = SpeechLM.from_base(tmp_path / "qwen", semantic_codes=10, acoustic_codes=7, acoustic_layers=1)
    assert lm.layout.text_vocab == 50 and lm.lm.get_input_embeddings().weight.shape[0] == lm.layout.size
    old = base.get_input_embeddings().weight
    new = lm.lm.get_input_embeddings().weight
    assert torch.equal(new[:50], old)
    assert float((new[50:].mean(0) - old.mean(0)).norm()) < 0.5 * float(old.std()) * new.shape[1] ** 0.5
    assert lm.lm.get_output_embeddings().weight.shape[0] == lm.layout.size
    from dsatok.models.io import ModelLoadError

    with pytest.raises(ModelLoadError, match="config.json"):
        SpeechLM.from_base(tmp_path / "nothing", 10, 7)


def test_triplets_pair_texts_with_other_voices(tiny_corpus):
    import soundfile as sf

    from dsatok.data.manifests import load_cuts
    from dsatok.lm.data import build_triplets, load_triplets

    build_triplets(tiny_corpus, "test", 2, jobs=1, progress=False, log=lambda *a: None)
    trips = load_triplets(tiny_corpus, "test")
    assert len(trips) == 2
    sups = {c.id: c.supervisions[0] for c in load_cuts(str(tiny_corpus), "test")}
    for t in trips:
        s, a = sups[t["content"]], sups[t["voice"]]
        assert t["text"] == s.text and t["voice_speaker"] == a.speaker != s.speaker
        x, sr = sf.read(str(tiny_corpus / t["target_path"]))
        assert sr > 0 and x.shape[0] > sr * 0.3 and float(abs(x).max()) > 0.01


def test_response_only_head_gives_the_transformers_loss():
    lay = TokenLayout(0, 10, 7, 1)
    lm = SpeechLM.tiny(lay, **TINY).eval()
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, lay.size, (2, 12), generator=g)
    labels = ids.clone()
    labels[:, :7] = IGNORE
    labels[1, 10:] = IGNORE
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    ref = lm.lm(input_ids=ids, labels=labels, attention_mask=mask).loss
    assert torch.allclose(lm(ids, labels, mask), ref, atol=1e-5)
    labels[0, 8] = 3  # a different target must change the loss (the labels are really used)
    assert not torch.allclose(lm(ids, labels, mask), ref, atol=1e-5)


class _CountingTokenizer:
    """Encodes any waveform to fixed-size tokens and counts the calls."""

    single_stream = False

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint, self.calls = fingerprint, 0

    def encode(self, wav):
        from types import SimpleNamespace

        self.calls += 1
        n = max(1, wav.shape[-1] // 640)
        return [SimpleNamespace(semantic=torch.arange(n)[None] % 10, acoustic=torch.zeros(1, 1, 2 * n, dtype=torch.long))]


def test_triplet_tokens_are_cached_per_tokenizer(tiny_corpus):
    from dsatok.lm.data import build_triplets, tokenize_triplets

    build_triplets(tiny_corpus, "test", 2, jobs=1, progress=False, log=lambda *a: None)
    a = _CountingTokenizer("aaaa")
    first = tokenize_triplets(a, tiny_corpus, "test", progress=False)
    assert a.calls == 6  # content, voice and target of two triplets
    a2 = _CountingTokenizer("aaaa")
    again = tokenize_triplets(a2, tiny_corpus, "test", progress=False)
    assert a2.calls == 0
    for x, y in zip(first, again):
        assert all(torch.equal(u, v) for k in ("content_tokens", "target_tokens") for u, v in zip(x[k], y[k]))
    b = _CountingTokenizer("bbbb")  # another tokenizer never reads the first one's tokens
    tokenize_triplets(b, tiny_corpus, "test", progress=False)
    assert b.calls == 6
    (tiny_corpus / "triplets" / "tokens" / "aaaa.pt").write_bytes(b"garbage")
    a3 = _CountingTokenizer("aaaa")
    tokenize_triplets(a3, tiny_corpus, "test", progress=False)
    assert a3.calls == 6


def test_lm_cli_trains_clones_and_scores_with_a_topline(tiny_corpus, tmp_path, monkeypatch, capsys):
    import json

    import soundfile as sf
    from stub_evaluators import LoudnessAsr, SpectrumSpeaker
    from test_tokenizer import tiny_model

    from dsatok.cli.main import main
    from dsatok.data.manifests import load_cuts
    from dsatok.eval import tables
    from dsatok.lm.data import build_triplets

    for split in ("train", "dev", "test"):
        build_triplets(tiny_corpus, split, 2, jobs=1, progress=False, log=lambda *a: None)
    tok_dir = tiny_model().save_pretrained(tmp_path / "tok")
    lm_dir = tmp_path / "lm"
    assert main(["lm", "train", "--corpus", str(tiny_corpus), "--model", str(tok_dir), "-o", str(lm_dir),
                 "--max-steps", "2", "--batch-size", "2", "--quiet"]) == 0
    report = json.loads((lm_dir / "train_report.json").read_text())
    assert report["steps"] == 2 and report["train_examples"] == 2
    monkeypatch.setattr(tables, "load_evaluators", lambda *a, **k: tables.Evaluators(LoudnessAsr(), SpectrumSpeaker(), []))
    out = tmp_path / "eval.json"
    capsys.readouterr()
    assert main(["lm", "eval", "--corpus", str(tiny_corpus), "--lm", str(lm_dir), "--model", str(tok_dir),
                 "--limit", "2", "--topline", "-o", str(out), "--quiet"]) == 0
    rep = json.loads(out.read_text())
    md = tmp_path / "t2.md"
    assert main(["lm", "table", f"dsa={out}", f"again={out}", "-o", str(md)]) == 0
    lines = md.read_text().splitlines()
    assert sum(line.startswith("| dsa") for line in lines) == 2 and any("again topline" in x for x in lines)
    assert main(["lm", "table", f"x={tmp_path / 'lm' / 'train_report.json'}"]) == 2
    rep = json.loads(out.read_text())
    assert rep["n"] == 2 and rep["lm_train"]["steps"] == 2 and rep["decode"]["steps"] > 0 and 0 <= rep["hit_max_fraction"] <= 1
    # the topline decodes the true targets' tokens: real audio, so transcripts and a speaker score
    assert rep["topline"]["empty"] == 0 and rep["topline"]["sim_to_voice"] is not None
    src = next(iter(load_cuts(str(tiny_corpus), "test"))).recording.sources[0].source
    wav = tmp_path / "clone.wav"
    rc = main(["lm", "clone", "--content", src, "--voice", src, "--lm", str(lm_dir), "--model", str(tok_dir),
               "-o", str(wav), "--max-new-tokens", "40"])
    # an untrained LM may emit nothing decodable: then a one-line error and no file, else a valid wav
    assert (rc == 0 and sf.read(wav)[0].size > 0) or (rc == 1 and not wav.exists())


def test_time_limit_ends_training_with_a_saved_model(tmp_path):
    from dsatok.lm.train import examples_from, train_lm

    lay = TokenLayout(0, 10, 7, 1)
    lm = SpeechLM.tiny(lay, **TINY)
    g = torch.Generator().manual_seed(2)
    trip = {"content_tokens": _utt(g, 3, 1), "voice_tokens": _utt(g, 2, 1), "target_tokens": _utt(g, 3, 1)}
    ex = examples_from(lm, [trip] * 8, max_len=512)
    out = train_lm(lm, ex, ex[:2], tmp_path / "lm", batch_size=2, max_steps=50, time_limit_s=1e-9, progress=False,
                   log=lambda *a: None)
    assert out["steps"] == 1 and out["stopped_by"] == "time_limit" and len(out["history"]) == 1
    assert SpeechLM.from_pretrained(tmp_path / "lm").layout == lay
