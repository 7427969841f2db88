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
