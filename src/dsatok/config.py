"""Typed, frozen configuration dataclasses with a strict JSON round trip.

Every component of dsatok is configured by a frozen dataclass. Configs compose (a field may
itself be a config dataclass), serialise to plain JSON, and are rebuilt strictly: an unknown key
or a value of the wrong type raises :class:`ConfigError` with the dotted path of the offender.

No class is ever imported from a string: the caller names the dataclass to build.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

__all__ = [
    "ConfigError",
    "MelConfig",
    "from_dict",
    "to_dict",
    "load_json",
    "save_json",
    "apply_overrides",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key or value is invalid. The message is one line and names the key."""


def to_dict(cfg: Any) -> dict[str, Any]:
    """Convert a (nested) config dataclass to plain JSON-able Python values."""
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"{type(cfg).__name__} is not a config dataclass")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        out[f.name] = _plain(getattr(cfg, f.name))
    return out


def _plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v):
        return to_dict(v)
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def from_dict(cls: type[T], data: dict[str, Any], *, path: str = "") -> T:
    """Build config dataclass ``cls`` from ``data``; unknown keys and bad types fail.

    Missing keys take the dataclass default; a missing key without a default fails.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{path or cls.__name__}: expected an object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(
            f"unknown config key '{where}{unknown[0]}' for {cls.__name__} "
            f"(known: {', '.join(sorted(names))})"
        )
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            key = f"{path}.{f.name}" if path else f.name
            kwargs[f.name] = _coerce(hints[f.name], data[f.name], key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path or cls.__name__}: {e}") from None


def _coerce(tp: Any, v: Any, key: str) -> Any:
    """Check / convert JSON value ``v`` to annotation ``tp``; raise ConfigError naming ``key``."""
    origin = get_origin(tp)
    if tp is Any:
        return v
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, v, path=key)  # type: ignore[arg-type]
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if v is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, v, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"bad value for '{key}': {v!r}")
    if origin is Literal:
        if v not in get_args(tp):
            raise ConfigError(f"bad value for '{key}': {v!r} (choose from {list(get_args(tp))})")
        return v
    if origin in (tuple, list):
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"bad value for '{key}': expected a list, got {v!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(v):
                raise ConfigError(f"bad value for '{key}': expected {len(args)} items, got {len(v)}")
            items = [_coerce(a, x, f"{key}[{i}]") for i, (a, x) in enumerate(zip(args, v))]
        else:
            a = args[0] if args else Any
            items = [_coerce(a, x, f"{key}[{i}]") for i, x in enumerate(v)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(v, dict):
            raise ConfigError(f"bad value for '{key}': expected an object, got {v!r}")
        _, vt = get_args(tp) or (str, Any)
        return {str(k): _coerce(vt, x, f"{key}.{k}") for k, x in v.items()}
    if tp is bool:
        if not isinstance(v, bool):
            raise ConfigError(f"bad value for '{key}': expected true/false, got {v!r}")
        return v
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                return int(v)
            raise ConfigError(f"bad value for '{key}': expected an integer, got {v!r}")
        return v
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"bad value for '{key}': expected a number, got {v!r}")
        return float(v)
    if tp is str:
        if not isinstance(v, str):
            raise ConfigError(f"bad value for '{key}': expected a string, got {v!r}")
        return v
    return v


def save_json(cfg: Any, path: str | Path) -> None:
    """Write ``cfg`` as indented JSON (atomic: temp file + rename)."""
    from .files import atomic_write_json

    atomic_write_json(path, to_dict(cfg), indent=2)


def load_json(cls: type[T], path: str | Path) -> T:
    """Read a config of class ``cls`` from a JSON file, strictly."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def apply_overrides(cfg: T, overrides: typing.Iterable[str]) -> T:
    """Return ``cfg`` with ``key.sub=value`` overrides applied (values parsed as JSON, else str)."""
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"unknown config key '{key}'")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"unknown config key '{key}'")
        node[parts[-1]] = value
    return from_dict(type(cfg), data)


@dataclasses.dataclass(frozen=True)
class MelConfig:
    """Log-mel front end settings; the single mel definition that vocoders invert.

    Defaults: 16 kHz, hop 160 (100 frames/s), 40 ms Hann window, 100 bins, natural-log
    magnitude mel with floor 1e-5 (Vocos-style).
    """

    sample_rate: int = 16000
    n_fft: int = 640
    win_length: int = 640
    hop_length: int = 160
    n_mels: int = 100
    fmin: float = 0.0
    fmax: float | None = None
    window: Literal["hann", "hamming", "povey"] = "hann"
    power: float = 1.0
    log_floor: float = 1e-5
    mel_scale: Literal["slaney", "htk"] = "slaney"
    norm: Literal["slaney", "none"] = "slaney"

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ConfigError("mel: sample_rate, hop_length and n_mels must be positive")
        if self.win_length > self.n_fft:
            raise ConfigError(f"mel: win_length {self.win_length} > n_fft {self.n_fft}")
        top = self.fmax if self.fmax is not None else self.sample_rate / 2
        if not 0 <= self.fmin < top <= self.sample_rate / 2:
            raise ConfigError(f"mel: need 0 <= fmin < fmax <= sample_rate/2, got {self.fmin}, {top}")
        if self.log_floor <= 0:
            raise ConfigError("mel: log_floor must be > 0")

    @property
    def frame_rate(self) -> float:
        """Mel frames per second."""
        return self.sample_rate / self.hop_length

    @classmethod
    def dasheng_acoustic(cls) -> "MelConfig":
        """128-bin log-mel for the DashengTokenizer acoustic injection (patches of 4 frames)."""
        return cls(n_fft=512, win_length=512, n_mels=128, power=2.0, log_floor=1e-10)

    @classmethod
    def dasheng_semantic(cls) -> "MelConfig":
        """64-bin log-mel of the Dasheng audio ViT front end (16 kHz, hop 160, 32 ms window)."""
        return cls(n_fft=512, win_length=512, n_mels=64, power=2.0, log_floor=1e-10, mel_scale="htk",
                   norm="none")
