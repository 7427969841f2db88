"""FSQ / residual FSQ with a fixed interface: ``[B, T, D] -> (quantized [B, T, D], indices [B, L, T])``.

Wraps ``vector_quantize_pytorch.FSQ`` and ``ResidualFSQ`` (straight-through gradients, implicit
codebooks), adds index ↔ code conversion and a codebook-usage monitor.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from pathlib import Path

import torch
from torch import nn

__all__ = ["Quantizer", "codebook_stats", "bitrate", "fsq_class"]

_FSQ_MODULE = "vector_quantize_pytorch.finite_scalar_quantization"


def fsq_class() -> type[nn.Module]:
    """``vector_quantize_pytorch``'s ``FSQ`` class, loaded without the package's ``__init__``.

    The package's ``__init__`` imports every quantizer and with them ``einx``, which imports
    ``torch._dynamo`` and ``sympy``: 1.5-2 s of every model load on 2 cores. The FSQ module itself
    imports ``einx`` but never uses it, so it is executed alone, with a placeholder ``einx`` if the
    real one is not imported yet, and registered under its own name (a later full import of the
    package reuses it: one FSQ class). A version whose FSQ does use ``einx`` gets the full import.
    """
    if _FSQ_MODULE in sys.modules:
        return sys.modules[_FSQ_MODULE].FSQ
    spec = importlib.util.find_spec("vector_quantize_pytorch")
    where = list(spec.submodule_search_locations or ()) if spec is not None else []
    path = Path(where[0]) / "finite_scalar_quantization.py" if where else None
    if path is None or not path.is_file() or "einx." in path.read_text(encoding="utf-8"):
        from vector_quantize_pytorch import FSQ

        return FSQ
    sub = importlib.util.spec_from_file_location(_FSQ_MODULE, path)
    mod = importlib.util.module_from_spec(sub)
    placeholder = "einx" not in sys.modules
    if placeholder:
        sys.modules["einx"] = types.ModuleType("einx", "placeholder: FSQ imports einx without using it")
    sys.modules[_FSQ_MODULE] = mod
    try:
        sub.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(_FSQ_MODULE, None)
        raise
    finally:
        if placeholder:
            sys.modules.pop("einx", None)
    return mod.FSQ


def bitrate(codebook_size: int, layers: int, frame_rate: float) -> float:
    """Bits per second of ``layers`` streams of ``codebook_size`` codes at ``frame_rate`` Hz."""
    return layers * frame_rate * math.log2(codebook_size)


class Quantizer(nn.Module):
    """``L`` stacked (residual) FSQ layers with ``levels`` per dimension, projected from/to ``dim``.

    - ``forward(x [B, T, D]) -> (quantized [B, T, D], indices [B, L, T] int64)``
    - ``decode(indices [B, L, T]) -> [B, T, D]`` equals the quantized output of ``forward``.
    """

    def __init__(self, dim: int, levels: list[int], layers: int = 1) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"quantizer layers must be >= 1, got {layers}")
        self.levels, self.layers = list(levels), layers
        self.codebook_size = int(math.prod(levels))
        if layers == 1:
            self.fsq = fsq_class()(levels=list(levels), dim=dim)
        else:
            from vector_quantize_pytorch import ResidualFSQ

            self.fsq = ResidualFSQ(dim=dim, levels=list(levels), num_quantizers=layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(x.device.type, enabled=False):
            q, idx = self.fsq(x.float())
        idx = idx.long()
        idx = idx[:, None] if self.layers == 1 else idx.permute(0, 2, 1)
        return q.to(x.dtype), idx

    def bound_penalty(self, x: torch.Tensor, limit: float = 2.0) -> torch.Tensor:
        """Mean squared excess of the pre-bound projection ``|z|`` over ``limit``.

        FSQ bounds ``z`` with tanh: once ``|z|`` is large the straight-through gradient vanishes
        and every frame falls into one code (seen when CTC sits on its all-blank plateau). Adding
        this term to the loss keeps ``z`` in tanh's responsive range.
        """
        z = self.fsq.project_in(x.float())
        return torch.relu(z.abs() - limit).pow(2).mean()

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.dim() != 3 or indices.shape[1] != self.layers:
            raise ValueError(f"expected indices [B, {self.layers}, T], got {list(indices.shape)}")
        if int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size:
            raise ValueError(f"indices must lie in [0, {self.codebook_size}), got [{int(indices.min())}, "
                             f"{int(indices.max())}]")
        if self.layers == 1:
            return self.fsq.indices_to_codes(indices[:, 0].int())
        return self.fsq.get_output_from_indices(indices.permute(0, 2, 1).int())


def codebook_stats(indices: torch.Tensor, codebook_size: int, mask: torch.Tensor | None = None) -> dict[str, float]:
    """Fraction of codes used and perplexity of ``indices [B, T]`` (valid frames per ``mask [B, T]``)."""
    flat = indices[mask] if mask is not None else indices.reshape(-1)
    if flat.numel() == 0:
        return {"usage": 0.0, "perplexity": 0.0}
    counts = torch.bincount(flat.reshape(-1).long(), minlength=codebook_size).float()
    p = counts / counts.sum()
    ent = -(p[p > 0] * p[p > 0].log()).sum()
    return {"usage": float((counts > 0).float().mean()), "perplexity": float(ent.exp())}
