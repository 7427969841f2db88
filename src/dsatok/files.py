"""Atomic file writes: a temporary file in the target's directory, then one rename.

A reader (or a crash) never sees a half-written file: it sees the old one or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_json", "current_umask", "read_tagged_safetensors"]


def current_umask() -> int:
    """The process's umask (read without changing it where ``/proc`` tells it; else set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for any writer (safetensors, matplotlib, ...): renamed onto
    ``path`` when the block ends normally, deleted when it raises. The temporary keeps ``path``'s
    extension (writers that pick a format from it still work); parent directories are created. The
    file gets the permissions any new file would (``0666`` less the umask), not ``mkstemp``'s 0600."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp" + p.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 (and some writers replace the file): the output follows the umask
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, p)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 1) -> Path:
    """``obj`` as JSON (one trailing newline) to ``path``, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def read_tagged_safetensors(path: str | Path, error: type[Exception], what: str) -> tuple[Any, dict]:
    """``(header, tensors)`` of a safetensors file whose metadata holds a JSON ``"dsatok"`` header.

    A missing, damaged or untagged file raises one ``error`` line naming it (``what``: e.g.
    ``"token file"``); the header is returned parsed but unchecked."""
    import json

    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {what} not found")
    try:
        with safe_open(str(p), framework="pt") as f:
            raw = (f.metadata() or {}).get("dsatok")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several error types for damaged files
        raise error(f"{p}: not a {what} ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    try:
        return json.loads(raw or ""), tensors
    except json.JSONDecodeError:
        raise error(f"{p}: not a dsatok {what} (no dsatok header)") from None


def check_tagged_header(meta: Any, where: str, error: type[Exception], what: str, fmt: str, max_version: int,
                        checks: dict[str, tuple[Any, str]]) -> dict:
    """A tagged file's JSON header: format ``fmt``, a version this code reads, and each ``checks``
    field present and accepted by its predicate (``{key: (ok, "what it must be")}``); else one
    ``error`` line naming ``where`` (``what``: e.g. ``"token file"``)."""
    if not isinstance(meta, dict):
        raise error(f"{where}: not a dsatok {what} (header is a JSON {type(meta).__name__})")
    if meta.get("format") != fmt:
        raise error(f"{where}: not a dsatok {what} (format {meta.get('format')!r})")
    v = meta.get("version", 0)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise error(f"{where}: header field 'version' must be a positive integer, got {v!r}")
    if v > max_version:
        raise error(f"{where}: {what} version {v} is newer than this dsatok (reads up to {max_version}); upgrade dsatok")
    for key, (ok, must) in checks.items():
        if key not in meta:
            raise error(f"{where}: header lacks field '{key}'")
        if not ok(meta[key]):
            raise error(f"{where}: header field '{key}' must be {must}, got {str(meta[key])[:60]!r}")
    return meta
