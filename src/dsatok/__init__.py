"""dsatok: disentangled speech tokenizers.

Public API only; submodules load lazily so that ``import dsatok`` stays light (no torch, no
training or evaluation dependencies until a name that needs them is used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "DSATokenizer", "DecodeOptions", "Tokens", "DashengTokenizer", "DashengConfig",
           "MelConfig", "ConfigError", "AudioError"]

_LAZY = {
    "DSATokenizer": ("dsatok.tokenizer", "DSATokenizer"),
    "DecodeOptions": ("dsatok.options", "DecodeOptions"),
    "Tokens": ("dsatok.tokens", "Tokens"),
    "DashengTokenizer": ("dsatok.dasheng_tokenizer", "DashengTokenizer"),
    "DashengConfig": ("dsatok.dasheng_tokenizer", "DashengConfig"),
    "MelConfig": ("dsatok.config", "MelConfig"),
    "ConfigError": ("dsatok.config", "ConfigError"),
    "AudioError": ("dsatok.audio", "AudioError"),
}

if TYPE_CHECKING:  # pragma: no cover
    from .audio import AudioError
    from .config import ConfigError, MelConfig
    from .dasheng_tokenizer import DashengConfig, DashengTokenizer
    from .options import DecodeOptions
    from .tokenizer import DSATokenizer
    from .tokens import Tokens


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'dsatok' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
