"""A user's own recordings as a reconstruction test set: a list file of ``path<TAB>text`` lines.

``dsatok eval recon --list FILE`` reads it instead of a corpus split: real speech, the check that
synthetic test voices cannot give. Relative paths are taken from the list file's folder; blank
lines and lines starting with ``#`` are skipped; an optional header line ``path<TAB>text`` too.
Audio is read as 16 kHz mono (any format and rate ``dsatok.audio.load`` accepts).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..data.manifests import CorpusError

__all__ = ["read_recording_list", "iter_recordings"]


def read_recording_list(path: str | Path, limit: int = 0) -> list[tuple[str, Path, str]]:
    """``(id, audio path, transcript)`` per line of ``path`` (the first ``limit`` lines; 0: all).

    Raises:
        CorpusError: the list is missing or empty, a line lacks a tab or a transcript, or names a
            file that does not exist (one line naming ``file:line``).
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: list file not found (expected path<TAB>text lines)")
    out: list[tuple[str, Path, str]] = []
    seen: dict[str, int] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        audio, tab, text = line.partition("\t")
        if i == 1 and audio.strip().lower() == "path" and text.strip().lower() == "text":
            continue
        if not tab or not audio.strip() or not text.strip():
            raise CorpusError(f"{path}:{i}: expected path<TAB>text, got {line[:60]!r}")
        p = Path(audio.strip())
        p = p if p.is_absolute() else path.parent / p
        if not p.is_file():
            raise CorpusError(f"{path}:{i}: audio file {p} not found")
        stem = p.stem
        seen[stem] = seen.get(stem, 0) + 1
        out.append((stem if seen[stem] == 1 else f"{stem}-{i}", p, text.strip()))
        if limit and len(out) >= limit:
            break
    if not out:
        raise CorpusError(f"{path}: no path<TAB>text lines")
    return out


def iter_recordings(items: list[tuple[str, Path, str]]) -> Iterator[tuple[str, np.ndarray, str]]:
    """``(id, 16 kHz mono float32 audio, transcript)`` for each listed recording, read lazily."""
    from ..audio import load

    for rid, p, text in items:
        yield rid, load(p), text
