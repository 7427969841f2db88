"""Typed training configuration, filled from YAML/JSON plus ``--set key=value`` overrides."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal, TypeVar

from ..config import ConfigError, apply_overrides, from_dict

__all__ = ["OptimConfig", "DataConfig", "TrainConfig", "load_config", "load_stage_config", "PRESETS"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine / linear / constant decay."""

    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    weight_decay: float = 0.01
    warmup_steps: int = 500
    decay: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0  # 0: off

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Duration-bucketed dynamic batches from a dsatok corpus (sizes in 100 Hz mel frames)."""

    corpus: str = ""
    pack: str = ""  # training pack (dsatok corpus pack): used instead of corpus when set
    train_split: str = "train"
    dev_split: str = "dev"
    max_frames: int = 6000  # frames of audio per batch (paper: 30000)
    num_buckets: int = 8
    min_duration: float = 0.5
    max_duration: float = 20.0
    num_workers: int = 1
    shuffle: bool = True
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if self.max_frames <= 0:
            raise ConfigError(f"data.max_frames must be > 0, got {self.max_frames}")
        if self.max_frames / 100 < self.max_duration:
            raise ConfigError(f"data.max_frames {self.max_frames} cannot hold one cut of data.max_duration "
                              f"{self.max_duration} s (needs >= {int(self.max_duration * 100)})")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Loop, checkpointing and logging settings common to every stage."""

    run_dir: str = "runs/default"
    seed: int = 0
    max_steps: int = 1000
    grad_accum: int = 1
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    ema_decay: float = 0.0  # 0: no EMA
    ckpt_every: int = 200
    keep_last: int = 3
    eval_every: int = 200
    eval_batches: int = 20
    log_every: int = 10
    best_metric: str = "loss"
    best_mode: Literal["min", "max"] = "min"
    time_limit_s: float = 0.0  # stop after this many seconds of this process (checkpoint + final export); 0: none
    # stop (checkpoint + final export) at this step while the LR schedule still runs to max_steps: a
    # step-matched segment of a longer run (e.g. ablations fine-tuned for equal steps); 0: none
    stop_step: int = 0
    optim: OptimConfig = OptimConfig()
    data: DataConfig = DataConfig()

    def __post_init__(self) -> None:
        for k in ("max_steps", "grad_accum", "ckpt_every", "keep_last", "eval_every", "log_every"):
            if getattr(self, k) <= 0:
                raise ConfigError(f"{k} must be > 0, got {getattr(self, k)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


# Presets: partial dicts merged over a stage's defaults (paper: seed appendix C.1).
PRESETS: dict[str, dict] = {
    "tiny": {},
    "paper": {"max_steps": 400_000, "ema_decay": 0.9999,
              "optim": {"lr": 7.5e-5, "warmup_steps": 32_000, "decay": "linear"},
              "data": {"max_frames": 30_000}},
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                preset: dict | None = None) -> T:
    """Build ``cls`` from defaults, a preset dict, a YAML/JSON file and ``key=value`` overrides (in order)."""
    data = dataclasses.asdict(cls())  # type: ignore[call-overload]
    if preset:
        data = _merge(data, preset)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        text = p.read_text()
        try:
            if p.suffix in (".yaml", ".yml"):
                import yaml

                loaded = yaml.safe_load(text) or {}
            else:
                loaded = json.loads(text)
        except Exception as e:
            raise ConfigError(f"{p}: cannot parse ({str(e).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
        data = _merge(data, loaded)
    try:
        cfg = from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None
    return apply_overrides(cfg, list(overrides))


def load_stage_config(cls: type[T], presets: dict[str, dict], preset: str, corpus: str = "",
                      path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """A stage's config (``train`` section inside): ``preset`` of ``presets``, then ``path``, then
    ``train.data.corpus=corpus`` (when given) and ``overrides``."""
    if preset not in presets:
        raise ConfigError(f"unknown preset '{preset}' (choose from {sorted(presets)})")
    ov = ([f"train.data.corpus={corpus}"] if corpus else []) + list(overrides)
    return load_config(cls, path, ov, presets[preset])
