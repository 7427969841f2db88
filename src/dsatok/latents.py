"""``Latents``: DashengTokenizer's continuous 25 Hz latents, and their versioned file format.

A latent file is a safetensors file (no pickle) holding ``latent [B, T, D]`` (float32),
``lengths [B]`` and ``num_samples [B]``, with a JSON header in its metadata: format name and
version, which latent it holds (``part``: unified, semantic or acoustic), the fingerprint of the
model that wrote it, frame rate, sample rate and width. Decoding refuses a latent of another
model, and any part but ``unified`` (the decoder's input).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch

from .files import atomic_path

__all__ = ["Latents", "LatentFileError", "LATENT_FORMAT", "LATENT_VERSION", "LATENT_EXT", "LATENT_PARTS"]

LATENT_FORMAT = "dsatok-latents"
LATENT_VERSION = 1
LATENT_EXT = ".dslat"
#: the latents a DashengTokenizer encodes (``unified = semantic + acoustic``)
LATENT_PARTS = ("unified", "semantic", "acoustic")
_RATE_RANGE = (4000, 192000)


class LatentFileError(ValueError):
    """Latents (a file or a :class:`Latents` object) that cannot be read, are malformed or do not
    fit the model (one line: the file or argument, and the problem)."""


def _check_header(meta: Any, where: str) -> dict:
    from .files import check_tagged_header

    checks = {"part": (lambda x: x in LATENT_PARTS, f"one of {', '.join(LATENT_PARTS)}"),
              "fingerprint": (lambda x: isinstance(x, str) and x != "", "a non-empty string"),
              "frame_rate": (lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                             and x > 0, "a positive number"),
              "sample_rate": (lambda x: isinstance(x, int) and not isinstance(x, bool)
                              and _RATE_RANGE[0] <= x <= _RATE_RANGE[1], f"an integer in {_RATE_RANGE[0]}-{_RATE_RANGE[1]} Hz"),
              "dim": (lambda x: isinstance(x, int) and not isinstance(x, bool) and x > 0, "a positive integer")}
    return check_tagged_header(meta, where, LatentFileError, "latent file", LATENT_FORMAT, LATENT_VERSION, checks)


@dataclasses.dataclass
class Latents:
    """``latent [B, T, D]`` float at ``frame_rate`` Hz, valid up to ``lengths [B]``; ``num_samples [B]``
    the source audio's length at ``sample_rate``; ``part`` which latent; ``fingerprint`` of the model."""

    latent: torch.Tensor
    lengths: torch.Tensor
    num_samples: torch.Tensor
    part: str
    fingerprint: str
    frame_rate: float
    sample_rate: int

    def header(self) -> dict:
        return {"format": LATENT_FORMAT, "version": LATENT_VERSION, "part": self.part, "fingerprint": self.fingerprint,
                "frame_rate": float(self.frame_rate), "sample_rate": self.sample_rate,
                "dim": int(self.latent.shape[-1]) if isinstance(self.latent, torch.Tensor) and self.latent.dim() == 3 else 0}

    def validate(self, where: str = "latents") -> "Latents":
        """Check the structure alone (no model needed) and return ``self``; else one :class:`LatentFileError`."""
        x = self.latent
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 3:
            got = f"shape {tuple(x.shape)}, {str(x.dtype).replace('torch.', '')}" if isinstance(x, torch.Tensor) \
                else type(x).__name__
            raise LatentFileError(f"{where}: latent must be a float tensor [B, T, D], got {got}")
        b, t, _ = x.shape
        if b < 1 or t < 1:
            raise LatentFileError(f"{where}: empty latent (shape {tuple(x.shape)})")
        for k in ("lengths", "num_samples"):
            v = getattr(self, k)
            if not isinstance(v, torch.Tensor) or v.is_floating_point() or v.dtype == torch.bool or v.dim() != 1:
                raise LatentFileError(f"{where}: {k} must be an integer tensor [B]")
            if v.shape[0] != b:
                raise LatentFileError(f"{where}: batch sizes differ (latent has {b} items, {k} {v.shape[0]})")
        _check_header(self.header(), where)
        lo, hi = int(self.lengths.min()), int(self.lengths.max())
        if lo < 1 or hi > t:
            raise LatentFileError(f"{where}: lengths must lie in [1, {t}], got [{lo}, {hi}]")
        if int(self.num_samples.min()) < 1:
            raise LatentFileError(f"{where}: num_samples must be positive, got {int(self.num_samples.min())}")
        cover = ((self.lengths.double() + 1) * (self.sample_rate / self.frame_rate)).floor().long()
        if bool((self.num_samples > cover).any()):
            i = int((self.num_samples > cover).nonzero()[0])
            raise LatentFileError(f"{where}: num_samples {int(self.num_samples[i])} of item {i} is longer than its "
                                  f"{int(self.lengths[i])} frames cover ({int(cover[i])})")
        if not bool(torch.isfinite(x).all()):
            raise LatentFileError(f"{where}: latent holds NaN or infinite values")
        return self

    def __len__(self) -> int:
        return int(self.latent.shape[0])

    def __getitem__(self, i: int) -> "Latents":
        """Item ``i`` alone, trimmed to its length (batch of one)."""
        n = int(self.lengths[i])
        return dataclasses.replace(self, latent=self.latent[i : i + 1, :n], lengths=self.lengths[i : i + 1],
                                   num_samples=self.num_samples[i : i + 1])

    def save(self, path: str | Path) -> Path:
        """Write a versioned latent file (atomically); malformed latents are refused."""
        from safetensors.torch import save_file

        p = Path(path)
        self.validate(str(p))
        tensors = {"latent": self.latent.detach().float().contiguous().cpu(),
                   "lengths": self.lengths.detach().to(torch.int64).contiguous().cpu(),
                   "num_samples": self.num_samples.detach().to(torch.int64).contiguous().cpu()}
        with atomic_path(p) as tmp:
            save_file(tensors, str(tmp), metadata={"dsatok": json.dumps(self.header())})
        return p

    @classmethod
    def load(cls, path: str | Path) -> "Latents":
        """Read a latent file; another format or a newer version is refused with one line."""
        from .files import read_tagged_safetensors

        p = Path(path)
        meta, tensors = read_tagged_safetensors(p, LatentFileError, "latent file")
        meta = _check_header(meta, str(p))
        missing = {"latent", "lengths", "num_samples"} - set(tensors)
        if missing:
            raise LatentFileError(f"{p}: latent file lacks {sorted(missing)}")
        lat = cls(latent=tensors["latent"], lengths=tensors["lengths"], num_samples=tensors["num_samples"],
                  part=meta["part"], fingerprint=meta["fingerprint"], frame_rate=float(meta["frame_rate"]),
                  sample_rate=int(meta["sample_rate"])).validate(str(p))
        if lat.latent.shape[-1] != meta["dim"]:
            raise LatentFileError(f"{p}: header says dim {meta['dim']}, the latent is {lat.latent.shape[-1]} wide")
        return lat if lat.latent.dtype == torch.float32 else dataclasses.replace(lat, latent=lat.latent.float())
