import json
import os

import pytest

from dsatok.files import atomic_write_json, atomic_write_text


def test_atomic_write_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    p = tmp_path / "sub" / "report.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"b": [1, 2]})
    assert json.loads(p.read_text()) == {"b": [1, 2]} and p.read_text().endswith("\n")
    assert [x.name for x in p.parent.iterdir()] == ["report.json"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "pairs.jsonl"
    atomic_write_text(p, "old\n")
    with pytest.raises(TypeError):
        atomic_write_json(p, {"x": object()})  # not serialisable: fails before touching the file

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(p, "new\n")
    assert p.read_text() == "old\n"
    assert [x.name for x in tmp_path.iterdir()] == ["pairs.jsonl"]


def test_atomic_path_keeps_the_extension_and_drops_a_failed_write(tmp_path):
    from dsatok.files import atomic_path

    p = tmp_path / "mel.png"
    with atomic_path(p) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp != p
        tmp.write_bytes(b"first")
    assert p.read_bytes() == b"first"
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer crashed")
    assert p.read_bytes() == b"first"
    assert [x.name for x in tmp_path.iterdir()] == ["mel.png"]
