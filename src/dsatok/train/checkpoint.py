"""Atomic, verified, resumable training checkpoints.

A checkpoint is a directory ``<run>/checkpoints/step-XXXXXXXX/`` holding ``model.safetensors``,
``state.pt`` (optimizer, scheduler, EMA, RNG states, data position, step, metrics) and
``manifest.json`` with the SHA-256 of each file. It is written into a hidden temp directory and
renamed into place, so a crash never leaves a half-written checkpoint under its final name.
Loading verifies the checksums; a corrupt or truncated checkpoint is refused with a one-line
:class:`CheckpointError`, and :func:`latest_valid` falls back to the previous good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "latest_valid", "list_checkpoints",
           "rng_state", "set_rng_state", "prune"]

_NAME = re.compile(r"^step-(\d{8})$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message names its path and the problem."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA when present) RNG states."""
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Checkpoint directories sorted by step (oldest first)."""
    if not ckpt_dir.is_dir():
        return []
    return sorted((p for p in ckpt_dir.iterdir() if p.is_dir() and _NAME.match(p.name)), key=lambda p: p.name)


def save_checkpoint(ckpt_dir: Path, step: int, model_state: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Write checkpoint ``step`` atomically; returns its directory."""
    from safetensors.torch import save_file

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / f"step-{step:08d}"
    tmp = ckpt_dir / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in model_state.items()}, str(tmp / "model.safetensors"))
    torch.save(state, tmp / "state.pt")
    manifest = {"step": step, "files": {f: _sha256(tmp / f) for f in ("model.safetensors", "state.pt")}}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for f in tmp.iterdir():  # make the data durable before the rename publishes it
        with f.open("rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def verify(path: Path) -> None:
    """Raise CheckpointError unless every file of checkpoint ``path`` matches its checksum."""
    man = path / "manifest.json"
    if not man.is_file():
        raise CheckpointError(f"{path}: no manifest.json (incomplete checkpoint)")
    try:
        files = json.loads(man.read_text())["files"]
    except Exception:
        raise CheckpointError(f"{man}: unreadable manifest") from None
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f}: missing")
        if _sha256(f) != digest:
            raise CheckpointError(f"{f}: checksum mismatch (corrupt or truncated)")


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Verified ``(model_state, state)`` of checkpoint directory ``path``."""
    from safetensors.torch import load_file

    verify(path)
    try:
        return load_file(str(path / "model.safetensors")), torch.load(path / "state.pt", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot load ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def latest_valid(ckpt_dir: Path, log=print) -> Path | None:
    """Newest checkpoint that verifies; corrupt ones are reported and skipped."""
    for p in reversed(list_checkpoints(ckpt_dir)):
        try:
            verify(p)
            return p
        except CheckpointError as e:
            log(f"warning: {e}; using an earlier checkpoint")
    return None


def prune(ckpt_dir: Path, keep_last: int, protect: set[str] = frozenset()) -> None:
    """Delete all but the newest ``keep_last`` checkpoints (never those named in ``protect``)."""
    ckpts = list_checkpoints(ckpt_dir)
    for p in ckpts[: max(len(ckpts) - keep_last, 0)]:
        if p.name not in protect:
            shutil.rmtree(p, ignore_errors=True)
    for p in ckpt_dir.glob(".tmp-step-*"):
        shutil.rmtree(p, ignore_errors=True)
