"""Files shipped with dsatok (bundled model, examples, voice inventory); locating them needs no torch."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_model_dir"]


def default_model_dir() -> Path:
    """The bundled default model inside the package (``DSATOK_MODEL`` overrides it)."""
    env = os.environ.get("DSATOK_MODEL")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "models" / "dsa-default"
