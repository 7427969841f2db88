"""Weights on disk: ``config.json`` + ``model.safetensors``, loaded strictly.

``config.json`` holds ``{"kind": ..., "dsatok_version": ..., "config": {...}}``; the model is
rebuilt from the config alone, then its weights are loaded with ``strict=True``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from ..config import ConfigError, from_dict, to_dict
from ..files import atomic_path, atomic_write_json

__all__ = ["ModelLoadError", "save_model", "load_model_config", "load_weights", "model_files_digest"]

T = TypeVar("T")


class ModelLoadError(ValueError):
    """A model directory that cannot be loaded (one line naming the directory and the problem)."""


def _version() -> str:
    from .. import __version__

    return __version__


def save_model(model: nn.Module, cfg: Any, kind: str, out_dir: str | Path, extra: dict | None = None) -> Path:
    """Write ``out_dir/config.json`` and ``out_dir/model.safetensors`` (each atomically)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"kind": kind, "dsatok_version": _version(), "config": to_dict(cfg), **(extra or {})}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"kind": kind})
    atomic_write_json(out / "config.json", meta)
    return out


def read_model_meta(model_dir: str | Path, kind: str, hint: str = "") -> dict:
    """The ``config.json`` of a model directory, checked to hold a ``kind`` model (``hint`` ends the
    error when there is no config.json)."""
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelLoadError(f"{d}: not a model directory{hint}")
    p = d / "config.json"
    if not p.is_file():
        raise ModelLoadError(f"{d}: no config.json{hint}")
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{p}: not valid JSON ({e.msg})") from None
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        got = meta.get("kind") if isinstance(meta, dict) else None
        raise ModelLoadError(f"{d}: holds a '{got}' model, expected '{kind}'")
    return meta


def load_model_config(cls: type[T], model_dir: str | Path, kind: str) -> tuple[T, dict]:
    """Read and check ``config.json``: returns the typed config and the whole JSON."""
    meta = read_model_meta(model_dir, kind)
    p = Path(model_dir) / "config.json"
    try:
        cfg = from_dict(cls, meta.get("config", {}))
    except ConfigError as e:
        raise ModelLoadError(f"{p}: {e}") from None
    return cfg, meta


def load_weights(model: nn.Module, model_dir: str | Path) -> nn.Module:
    """Load ``model.safetensors`` strictly into ``model`` and return it in eval mode."""
    from safetensors.torch import load_file

    p = Path(model_dir) / "model.safetensors"
    if not p.is_file():
        raise ModelLoadError(f"{Path(model_dir)}: no model.safetensors")
    try:
        state = load_file(str(p))
    except Exception as e:  # safetensors raises several types for damaged files
        raise ModelLoadError(f"{p}: unreadable weights ({str(e).splitlines()[0]})") from None
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise ModelLoadError(f"{p}: weights do not match the config (missing {sorted(missing)[:3]}, "
                             f"unexpected {sorted(unexpected)[:3]})")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelLoadError(f"{p}: {str(e).splitlines()[-1].strip()}") from None
    return model.eval()


def model_files_digest(model_dir: str | Path) -> str:
    """Short hash of a model directory's files (sha256 of ``config.json`` and ``model.safetensors``).

    It changes with any byte of either file; a model's ``fingerprint`` (what identifies its token or
    latent space, so that files from one model are refused by another) is a different hash."""
    import hashlib

    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        with open(Path(model_dir) / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]
