import shutil

import numpy as np
import pytest
import soundfile as sf

from dsatok.data.manifests import CorpusError, import_lhotse, import_tsv, load_split


def _wav(p, sec=1.0, sr=22050):
    sf.write(p, (0.3 * np.sin(np.arange(int(sr * sec)) * 0.05)).astype(np.float32), sr)


def test_import_tsv_speaker_disjoint_and_skips_bad_files(tmp_path):
    rows = []
    for spk in range(6):
        for i in range(3):
            p = tmp_path / f"s{spk}_{i}.wav"
            _wav(p)
            rows.append(f"{p.name}\thello number {i} from {spk}\tspk{spk}")
    rows.append("missing.wav\tlost text\tspk0")
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    rows.append("bad.wav\tbad text\tspk1")
    tsv = tmp_path / "list.tsv"
    tsv.write_text("\n".join(rows) + "\n")
    logs = []
    meta = import_tsv(tsv, tmp_path / "out", log=logs.append)
    assert meta["skipped"] == 2 and sum("skipped" in m for m in logs) == 2
    spk = {s: {x.speaker for x in load_split(tmp_path / "out", s)[1]} for s in ("train", "dev", "test")}
    assert all(spk.values()) and not spk["train"] & spk["test"] and not spk["dev"] & spk["test"]
    assert sum(meta["counts"][s]["utterances"] for s in spk) == 18


def test_import_tsv_bad_row_names_line(tmp_path):
    tsv = tmp_path / "l.tsv"
    tsv.write_text("a.wav\tonly text\n")
    with pytest.raises(CorpusError, match=r"l\.tsv:1: expected path<TAB>text<TAB>speaker"):
        import_tsv(tsv, tmp_path / "o")


def test_import_lhotse_recipe_dir(tiny_corpus, tmp_path):
    src = tmp_path / "libri"
    src.mkdir()
    for ours, theirs in (("train", "train-clean-100"), ("dev", "dev-clean"), ("test", "test-clean")):
        for kind in ("recordings", "supervisions"):
            shutil.copy(tiny_corpus / "manifests" / f"dsatok_{kind}_{ours}.jsonl.gz",
                        src / f"librispeech_{kind}_{theirs}.jsonl.gz")
    meta = import_lhotse(src, tmp_path / "out")
    assert meta["parts"] == {"dev-clean": "dev", "test-clean": "test", "train-clean-100": "train"}
    for s in ("train", "dev", "test"):
        assert [x.id for x in load_split(tmp_path / "out", s)[1]] == [x.id for x in load_split(tiny_corpus, s)[1]]


def test_import_lhotse_overlapping_speakers_refused(tiny_corpus, tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    for part in ("train", "dev", "test"):
        for kind in ("recordings", "supervisions"):
            shutil.copy(tiny_corpus / "manifests" / f"dsatok_{kind}_test.jsonl.gz", src / f"x_{kind}_{part}.jsonl.gz")
    with pytest.raises(CorpusError, match="speaker-disjoint"):
        import_lhotse(src, tmp_path / "out")


def test_import_lhotse_empty_dir(tmp_path):
    with pytest.raises(CorpusError, match="no <prefix>_recordings_<part>"):
        import_lhotse(tmp_path, tmp_path / "o")
