"""``Tokens``: the result of :meth:`DSATokenizer.encode`, and its versioned file format.

A token file is a safetensors file (no pickle) holding the index tensors, with a JSON header in
its metadata: format name and version, the model fingerprint, frame rates and codebook sizes.
Decoding refuses tokens whose fingerprint differs from the model's.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from .files import atomic_path

__all__ = ["Tokens", "TokenFileError", "TOKEN_FORMAT", "TOKEN_VERSION"]

TOKEN_FORMAT = "dsatok-tokens"
TOKEN_VERSION = 1


class TokenFileError(ValueError):
    """A token file that cannot be read or does not fit the model (one line: path and problem)."""


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
        """Write a versioned token file (atomically: temp file + rename)."""
        from safetensors.torch import save_file

        p = Path(path)
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
        from safetensors import safe_open

        p = Path(path)
        if not p.is_file():
            raise TokenFileError(f"{p}: token file not found")
        try:
            with safe_open(str(p), framework="pt") as f:
                raw = (f.metadata() or {}).get("dsatok")
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # safetensors raises several error types for damaged files
            raise TokenFileError(f"{p}: not a token file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        try:
            meta = json.loads(raw or "")
        except json.JSONDecodeError:
            raise TokenFileError(f"{p}: not a dsatok token file (no dsatok header)") from None
        if meta.get("format") != TOKEN_FORMAT:
            raise TokenFileError(f"{p}: not a dsatok token file (format {meta.get('format')!r})")
        if int(meta.get("version", 0)) > TOKEN_VERSION:
            raise TokenFileError(f"{p}: token file version {meta['version']} is newer than this dsatok "
                                 f"(reads up to {TOKEN_VERSION}); upgrade dsatok")
        need = {"semantic", "acoustic", "semantic_lengths", "acoustic_lengths", "num_samples"}
        if not need <= set(tensors):
            raise TokenFileError(f"{p}: token file lacks {sorted(need - set(tensors))}")
        return cls(semantic=tensors["semantic"].long(), acoustic=tensors["acoustic"].long(),
                   semantic_lengths=tensors["semantic_lengths"].long(),
                   acoustic_lengths=tensors["acoustic_lengths"].long(), num_samples=tensors["num_samples"].long(),
                   frame_rates=tuple(float(x) for x in meta["frame_rates"]),  # type: ignore[arg-type]
                   codebook_sizes=tuple(int(x) for x in meta["codebook_sizes"]),  # type: ignore[arg-type]
                   sample_rate=int(meta["sample_rate"]), fingerprint=str(meta["fingerprint"]))
