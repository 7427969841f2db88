"""Decode options (:class:`DecodeOptions`) and the checks of every per-call option, in one light
module (no torch), so that ``dsatok info`` and argument checks need no model code."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Literal

__all__ = ["DecodeOptions", "SOLVERS", "MAX_STEPS", "MAX_GUIDANCE", "SWAY_MAX", "check_int", "check_number"]


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """Sampler defaults stored with a model (each can be overridden per call)."""

    steps: int = 16
    cfg_scale: float = 2.0
    solver: Literal["euler", "midpoint"] = "euler"
    sway: float | None = -1.0
    voice_cfg: float = 0.0  # extra guidance towards the acoustic tokens (see flow_decoder.sample)
    content_cfg: float = 0.0  # extra guidance towards the semantic tokens
    #: decode the semantic prior's mel estimate alone (no flow steps; only for decoders with a prior)
    prior_only: bool = False
    #: with ``prior_only``, pass the prior's mel through the model's mel refiner when it has one
    refine: bool = True

    def __post_init__(self) -> None:
        """Refuse a bad option with one :class:`~dsatok.config.ConfigError` naming it (here, once,
        whether the options come from a model's config.json, the CLI or a ``decode`` call)."""
        check_int("steps", self.steps, 1, MAX_STEPS)
        for name in ("cfg_scale", "voice_cfg", "content_cfg"):
            check_number(name, getattr(self, name), -MAX_GUIDANCE, MAX_GUIDANCE)
        if self.solver not in SOLVERS:
            raise _option_error("solver", f"unknown solver {self.solver!r} (choose {' or '.join(SOLVERS)})")
        if self.sway is not None:
            check_number("sway", self.sway, -1.0, SWAY_MAX)
        for name in ("prior_only", "refine"):
            if not isinstance(getattr(self, name), bool):
                raise _option_error(name, f"expected true or false, got {getattr(self, name)!r}")


#: ODE solvers the sampler knows
SOLVERS = ("euler", "midpoint")
#: bounds of the per-call options (a larger value is a mistake, not a setting)
MAX_STEPS = 1000
MAX_GUIDANCE = 100.0
#: sway coefficients that keep the time grid monotonic (d/du >= 0 at u = 0 and u = 1)
SWAY_MAX = 1.0 / (math.pi / 2 - 1.0)


def _option_error(name: str, problem: str) -> Exception:
    """``name`` is an option of ``decode`` unless it says otherwise (``"encode option ..."``)."""
    from .config import ConfigError

    return ConfigError(f"{name if ' option ' in name else 'decode option ' + name}: {problem}")


def check_int(name: str, v: Any, lo: int, hi: int | None = None) -> int:
    """``v`` as an int in ``[lo, hi]`` (``bool`` and floats refused), else a one-line ConfigError."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise _option_error(name, f"expected an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        raise _option_error(name, f"must lie in [{lo}, {hi if hi is not None else 'inf'}], got {v}")
    return int(v)


def check_number(name: str, v: Any, lo: float, hi: float) -> float:
    """``v`` as a finite float in ``[lo, hi]``, else a one-line ConfigError."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise _option_error(name, f"expected a finite number, got {v!r}")
    if not lo <= v <= hi:
        raise _option_error(name, f"must lie in [{lo:g}, {hi:g}], got {v}")
    return float(v)
