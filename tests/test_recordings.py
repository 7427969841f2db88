"""`dsatok eval recon --list FILE`: reconstruction of a user's own path<TAB>text recordings."""

import json

import pytest


def _write_list(tiny_corpus, tmp_path, n=2):
    from dsatok.data.manifests import load_cuts

    cuts = list(load_cuts(tiny_corpus, "test"))[:n]
    lines = ["path\ttext", "# my recordings"]
    for c in cuts:
        src = c.recording.sources[0].source
        dst = tmp_path / "audio" / f"{c.id}.flac"
        dst.parent.mkdir(exist_ok=True)
        dst.write_bytes(open(src, "rb").read())
        lines.append(f"audio/{dst.name}\t{c.supervisions[0].text}")
    f = tmp_path / "mine.tsv"
    f.write_text("\n".join(lines) + "\n\n")
    return f, cuts


def test_list_file_is_read_and_bad_lines_are_named(tiny_corpus, tmp_path):
    from dsatok.data.manifests import CorpusError
    from dsatok.eval.recordings import iter_recordings, read_recording_list

    f, cuts = _write_list(tiny_corpus, tmp_path)
    items = read_recording_list(f)
    assert [i[0] for i in items] == [c.id for c in cuts] and items[0][2] == cuts[0].supervisions[0].text
    rid, wav, text = next(iter_recordings(items))
    assert wav.dtype.name == "float32" and wav.ndim == 1 and wav.size > 8000
    assert len(read_recording_list(f, limit=1)) == 1
    for body, msg in (("a.flac no tab\n", ":1: expected path<TAB>text"), ("gone.flac\thello\n", "gone.flac not found"),
                      ("\n# nothing\n", "no path<TAB>text lines")):
        bad = tmp_path / "bad.tsv"
        bad.write_text(body)
        with pytest.raises(CorpusError, match=msg) as e:
            read_recording_list(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(CorpusError, match="list file not found"):
        read_recording_list(tmp_path / "none.tsv")


def test_eval_recon_list_reports_wer_sim_and_the_clean_input_floor(tiny_corpus, tmp_path, monkeypatch):
    from stub_evaluators import LoudnessAsr, SpectrumSpeaker
    from test_tokenizer import tiny_model

    import dsatok.eval.tables as T
    from dsatok.cli.main import main
    from dsatok.tokenizer import DSATokenizer

    monkeypatch.setattr(DSATokenizer, "from_pretrained", classmethod(lambda cls, *a, **k: tiny_model(0)))
    monkeypatch.setattr(T, "load_evaluators", lambda *a, **k: T.Evaluators(LoudnessAsr(), SpectrumSpeaker(), []))
    f, cuts = _write_list(tiny_corpus, tmp_path)
    out = tmp_path / "rep"
    assert main(["eval", "recon", "--list", str(f), "--steps", "2", "--mos", "", "-o", str(out), "--quiet"]) == 0
    rep = json.loads((out / "report.json").read_text())
    rows = {r["system"]: r for r in rep["table"]}
    assert set(rows) - {"codec2_1200"} == {"model", "vocoder_copy_synthesis", "clean_input"}  # codec2: pycodec2
    assert rows["model"]["n"] == 2 and "wer" in rows["clean_input"] and "sim" in rows["model"]
    assert rep["settings"]["split"] == "list" and rep["settings"]["corpus"] == str(f)
    assert [it["id"] for it in rep["per_utterance"]["model"]] == [c.id for c in cuts]
    with pytest.raises(SystemExit):  # --corpus and --list exclude each other
        main(["eval", "recon", "--list", str(f), "--corpus", str(tiny_corpus), "-o", str(out)])
