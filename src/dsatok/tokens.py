"""``Tokens``: the result of :meth:`DSATokenizer.encode`, and its versioned file format.

A token file is a safetensors file (no pickle) holding the index tensors, with a JSON header in
its metadata: format name and version, the model fingerprint, frame rates and codebook sizes.
Decoding refuses tokens whose fingerprint differs from the model's.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch

from .files import atomic_path

__all__ = ["Tokens", "TokenFileError", "TOKEN_FORMAT", "TOKEN_VERSION"]

TOKEN_FORMAT = "dsatok-tokens"
TOKEN_VERSION = 1


class TokenFileError(ValueError):
    """Tokens (a file or a :class:`Tokens` object) that cannot be read, are malformed or do not fit
    the model (one line: the file or argument, and the problem)."""


_INDEX_FIELDS = ("semantic", "acoustic", "semantic_lengths", "acoustic_lengths", "num_samples")
_NDIM = {"semantic": 2, "acoustic": 3, "semantic_lengths": 1, "acoustic_lengths": 1, "num_samples": 1}
_SHAPES = {"semantic": "[B, T_s]", "acoustic": "[B, L, T_a]", "semantic_lengths": "[B]", "acoustic_lengths": "[B]",
           "num_samples": "[B]"}
#: sample rates a token header may declare (Hz, inclusive; the same range as audio input)
_RATE_RANGE = (4000, 192000)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_header(meta: Any, where: str) -> dict:
    """A token file's JSON header, every field present and of the right type, else one line."""
    from .files import check_tagged_header

    checks = {"fingerprint": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
              "frame_rates": (lambda v: isinstance(v, list) and len(v) == 2 and all(_is_number(x) and x > 0 for x in v),
                              "a list of two positive numbers"),
              "codebook_sizes": (lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(x) and x > 1 for x in v),
                                 "a list of two integers > 1"),
              "sample_rate": (lambda v: _is_int(v) and _RATE_RANGE[0] <= v <= _RATE_RANGE[1],
                              f"an integer in {_RATE_RANGE[0]}-{_RATE_RANGE[1]} Hz")}
    return check_tagged_header(meta, where, TokenFileError, "token file", TOKEN_FORMAT, TOKEN_VERSION, checks)


@dataclasses.dataclass
class Tokens:
    """Semantic and acoustic token streams of a batch of utterances.

    - ``semantic [B, T_s]`` int64 indices at ``frame_rates[0]`` Hz, valid up to ``semantic_lengths [B]``;
    - ``acoustic [B, L, T_a]`` int64 indices (``L`` stacked FSQ layers) at ``frame_rates[1]`` Hz,
      valid up to ``acoustic_lengths [B]``;
    - ``num_samples [B]``: length of the source audio at ``sample_rate`` (decoding restores it);
    - ``fingerprint``: of the tokenizer that made them (decoding checks it).
    """

    semantic: torch.Tensor
    acoustic: torch.Tensor
    semantic_lengths: torch.Tensor
    acoustic_lengths: torch.Tensor
    num_samples: torch.Tensor
    frame_rates: tuple[float, float]
    codebook_sizes: tuple[int, int]
    sample_rate: int
    fingerprint: str

    def validate(self, where: str = "tokens") -> "Tokens":
        """Check the structure alone (no model needed) and return ``self``; else one
        :class:`TokenFileError` naming ``where`` and the problem.

        Every index field is an integer tensor of its documented shape with one batch size
        ``B >= 1``; lengths lie in ``[1, T]`` of their arrays (zero-length items are refused);
        indices within their lengths lie in ``[0, codebook_sizes)``; ``num_samples`` is positive and
        not longer than the semantic tokens cover (plus one token).
        """
        for k in _INDEX_FIELDS:
            v = getattr(self, k)
            if not isinstance(v, torch.Tensor):
                raise TokenFileError(f"{where}: {k} must be a torch tensor, got {type(v).__name__}")
            if v.is_floating_point() or v.is_complex() or v.dtype == torch.bool:
                raise TokenFileError(f"{where}: {k} must hold integer indices, got {str(v.dtype).replace('torch.', '')}")
            if v.dim() != _NDIM[k]:
                raise TokenFileError(f"{where}: {k} must be {_SHAPES[k]}, got shape {tuple(v.shape)}")
        b = self.semantic.shape[0]
        if b < 1:
            raise TokenFileError(f"{where}: empty batch (0 items)")
        for k in _INDEX_FIELDS[1:]:
            if getattr(self, k).shape[0] != b:
                raise TokenFileError(f"{where}: batch sizes differ (semantic has {b} items, {k} "
                                     f"{getattr(self, k).shape[0]})")
        meta = {"format": TOKEN_FORMAT, "version": TOKEN_VERSION, "fingerprint": self.fingerprint,
                "frame_rates": list(self.frame_rates) if isinstance(self.frame_rates, (tuple, list)) else self.frame_rates,
                "codebook_sizes": (list(self.codebook_sizes) if isinstance(self.codebook_sizes, (tuple, list))
                                   else self.codebook_sizes), "sample_rate": self.sample_rate}
        check_header(meta, where)
        if self.acoustic.shape[1] < 1:
            raise TokenFileError(f"{where}: acoustic has 0 layers")
        for k, arr, t in (("semantic_lengths", self.semantic, self.semantic.shape[1]),
                          ("acoustic_lengths", self.acoustic, self.acoustic.shape[-1])):
            lens = getattr(self, k)
            lo, hi = int(lens.min()), int(lens.max())
            if lo < 1:
                raise TokenFileError(f"{where}: {k} must be >= 1 (zero-length tokens), got {lo}")
            if hi > t:
                raise TokenFileError(f"{where}: {k} {hi} is beyond the array's {t} frames")
        for k, arr, lens, size in (("semantic", self.semantic, self.semantic_lengths, self.codebook_sizes[0]),
                                   ("acoustic", self.acoustic, self.acoustic_lengths, self.codebook_sizes[1])):
            valid = torch.arange(arr.shape[-1], device=arr.device)[None] < lens.to(arr.device)[:, None]
            vals = (arr if arr.dim() == 2 else arr.transpose(1, 2))[valid]
            lo, hi = int(vals.min()), int(vals.max())
            if lo < 0 or hi >= size:
                raise TokenFileError(f"{where}: {k} indices must lie in [0, {size}), got [{lo}, {hi}]")
        n = self.num_samples
        if int(n.min()) < 1:
            raise TokenFileError(f"{where}: num_samples must be positive, got {int(n.min())}")
        per_token = self.sample_rate / float(self.frame_rates[0])
        cover = ((self.semantic_lengths.double() + 1) * per_token).floor().long()
        if bool((n > cover).any()):
            i = int((n > cover).nonzero()[0])
            raise TokenFileError(f"{where}: num_samples {int(n[i])} of item {i} is longer than its "
                                 f"{int(self.semantic_lengths[i])} semantic tokens cover ({int(cover[i])})")
        return self

    def __len__(self) -> int:
        return int(self.semantic.shape[0])

    def __getitem__(self, i: int) -> "Tokens":
        """Item ``i`` alone, trimmed to its own lengths (batch of one)."""
        s, a = int(self.semantic_lengths[i]), int(self.acoustic_lengths[i])
        return dataclasses.replace(self, semantic=self.semantic[i : i + 1, :s], acoustic=self.acoustic[i : i + 1, :, :a],
                                   semantic_lengths=self.semantic_lengths[i : i + 1],
                                   acoustic_lengths=self.acoustic_lengths[i : i + 1],
                                   num_samples=self.num_samples[i : i + 1])

    def split(self) -> list["Tokens"]:
        return [self[i] for i in range(len(self))]

    @property
    def duration(self) -> list[float]:
        """Seconds of audio per item."""
        return [int(n) / self.sample_rate for n in self.num_samples]

    # ------------------------------------------------------------------ file format
    def save(self, path: str | Path) -> Path:
        """Write a versioned token file (atomically: temp file + rename); malformed tokens are refused."""
        from safetensors.torch import save_file

        p = Path(path)
        self.validate(str(p))
        meta = {"format": TOKEN_FORMAT, "version": TOKEN_VERSION, "fingerprint": self.fingerprint,
                "frame_rates": list(self.frame_rates), "codebook_sizes": list(self.codebook_sizes),
                "sample_rate": self.sample_rate}
        tensors = {"semantic": self.semantic, "acoustic": self.acoustic, "semantic_lengths": self.semantic_lengths,
                   "acoustic_lengths": self.acoustic_lengths, "num_samples": self.num_samples}
        with atomic_path(p) as tmp:
            save_file({k: v.detach().to(torch.int32).contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                      metadata={"dsatok": json.dumps(meta)})
        return p

    @classmethod
    def load(cls, path: str | Path) -> "Tokens":
        """Read a token file; a file of another format or a newer version is refused with one line."""
        from .files import read_tagged_safetensors

        p = Path(path)
        meta, tensors = read_tagged_safetensors(p, TokenFileError, "token file")
        meta = check_header(meta, str(p))
        need = set(_INDEX_FIELDS)
        if not need <= set(tensors):
            raise TokenFileError(f"{p}: token file lacks {sorted(need - set(tensors))}")
        for k in _INDEX_FIELDS:  # before .long(): float indices would be truncated silently
            if tensors[k].is_floating_point() or tensors[k].dtype == torch.bool:
                raise TokenFileError(f"{p}: {k} must hold integer indices, got {str(tensors[k].dtype).replace('torch.', '')}")
        return cls(semantic=tensors["semantic"].long(), acoustic=tensors["acoustic"].long(),
                   semantic_lengths=tensors["semantic_lengths"].long(),
                   acoustic_lengths=tensors["acoustic_lengths"].long(), num_samples=tensors["num_samples"].long(),
                   frame_rates=(float(meta["frame_rates"][0]), float(meta["frame_rates"][1])),
                   codebook_sizes=(int(meta["codebook_sizes"][0]), int(meta["codebook_sizes"][1])),
                   sample_rate=int(meta["sample_rate"]), fingerprint=str(meta["fingerprint"])).validate(str(p))
