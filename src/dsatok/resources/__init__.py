"""Files shipped with dsatok (bundled models, examples, voice inventory); locating them needs no torch."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BUNDLED_MODELS", "default_model_dir", "bundled_model_dir", "bundled_enhancer_dir", "resolve_model"]

#: names a ``--model`` argument may give instead of a directory -> the bundled directory under models/
BUNDLED_MODELS = {"dsa": "dsa-default", "dasheng": "dasheng-default"}


def _models() -> Path:
    return Path(__file__).resolve().parent / "models"


def default_model_dir() -> Path:
    """The bundled default model inside the package (``DSATOK_MODEL`` overrides it)."""
    env = os.environ.get("DSATOK_MODEL")
    if env:
        return Path(env)
    return _models() / "dsa-default"


def bundled_model_dir(name: str) -> Path:
    """The bundled model called ``name`` (``dsa`` or ``dasheng``); FileNotFoundError when this install
    does not hold it."""
    if name not in BUNDLED_MODELS:
        raise FileNotFoundError(f"model '{name}': not a bundled model name (choose from {', '.join(BUNDLED_MODELS)})")
    d = default_model_dir() if name == "dsa" else _models() / BUNDLED_MODELS[name]
    if not (d / "config.json").is_file():
        raise FileNotFoundError(f"model '{name}': not bundled in this install ({d} has no config.json)")
    return d


def bundled_enhancer_dir() -> Path:
    """The latent speech enhancer bundled with ``dasheng`` (its ``enhancer/`` folder)."""
    d = _models() / BUNDLED_MODELS["dasheng"] / "enhancer"
    if not (d / "config.json").is_file():
        raise FileNotFoundError(f"no bundled enhancer in this install ({d} has no config.json); give --model DIR")
    return d


def resolve_model(spec: str | os.PathLike | None) -> Path:
    """A ``--model`` value as a directory: ``None`` → the default DSA model, a bundled name (``dsa``,
    ``dasheng``) → its directory, anything else → itself (a name wins over a same-named folder; write
    ``./dsa`` for the folder)."""
    if spec is None:
        return default_model_dir()
    if str(spec) in BUNDLED_MODELS:
        return bundled_model_dir(str(spec))
    return Path(spec)
