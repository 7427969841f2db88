"""Dasheng parts: the audio ViT semantic encoder and its weight loader, and the mel definitions.

The public :class:`~dsatok.dasheng_tokenizer.DashengTokenizer` (one continuous 25 Hz latent,
``unified = semantic + LayerNorm(W · mel_patch)``) composes these with a Vocos-style decoder;
it lives in :mod:`dsatok.dasheng_tokenizer`, and its names stay importable from here.

- :class:`DashengViT`: a Dasheng-compatible audio ViT (64-bin mel patches of 4 frames,
  1008-frame windows), loadable from a local directory of original Dasheng weights
  (:func:`load_dasheng_weights`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import MelFrontend, lengths_to_mask
from ..config import MelConfig
from .io import ModelLoadError

__all__ = ["DashengViTConfig", "DashengViT", "load_dasheng_weights", "VIT_MEL", "ACOUSTIC_MEL", "DECODER_MEL",
           "PATCH_FRAMES"]

#: names that moved to :mod:`dsatok.dasheng_tokenizer` (still importable from here)
_MOVED = ("DashengConfig", "DashengTokenizer", "DashengLatents", "DASHENG_PRESETS", "KIND")
#: Dasheng's own front end: 64-bin HTK power mel in dB (top 120 dB), 25 ms / 10 ms at 16 kHz
VIT_MEL = MelConfig(n_fft=512, win_length=512, hop_length=160, n_mels=64, fmax=8000.0, power=2.0,
                    log_floor=1e-10, mel_scale="htk", norm="none")
#: the acoustic injection's 128-bin log-mel
ACOUSTIC_MEL = MelConfig(n_fft=512, win_length=512, hop_length=160, n_mels=128, power=1.0, log_floor=1e-5)
PATCH_FRAMES = 4  # 100 Hz mel → 25 Hz latent


@dataclasses.dataclass(frozen=True)
class DashengViTConfig:
    """Dasheng audio ViT sizes (``base``: 768 × 12, ``0.6B``: 1280 × 32, ``1.2B``: 1536 × 40)."""

    embed_dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    target_length: int = 1008  # mel frames per window (10.08 s)


#: the decoder's iSTFT framing: hop 320 at 16 kHz (50 Hz) after the ×2 transposed conv
DECODER_MEL = MelConfig(n_fft=1280, win_length=1280, hop_length=320)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        m = key_mask[:, None, None, :] if key_mask is not None else None
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    """Pre-norm ViT block with the original Dasheng parameter names."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), key_mask)
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=(64, PATCH_FRAMES), stride=(64, PATCH_FRAMES))


class _InitBN(nn.Module):
    """BatchNorm over the 64 mel bins (named like the original's ``init_bn.1``)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_module("1", nn.BatchNorm2d(64, momentum=0.01))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, 1, F, T]
        return getattr(self, "1")(x.transpose(1, 2)).transpose(1, 2)


class DashengViT(nn.Module):
    """Dasheng audio ViT: ``(wav [B, N], lens [B]) -> ([B, T, D], lens [B])`` at 25 Hz.

    Windows of ``target_length`` mel frames are encoded independently (as in the original), so
    memory grows linearly with the input length.
    """

    def __init__(self, cfg: DashengViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.front_end = MelFrontend(VIT_MEL)
        self.init_bn = _InitBN()
        self.patch_embed = _PatchEmbed(cfg.embed_dim)
        self.time_pos_embed = nn.Parameter(torch.randn(1, cfg.embed_dim, 1, cfg.target_length // PATCH_FRAMES) * 0.02)
        self.freq_pos_embed = nn.Parameter(torch.randn(1, cfg.embed_dim, 1, 1) * 0.02)
        self.blocks = nn.ModuleList(_Block(cfg.embed_dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)

    def log_mel_db(self, wav: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """64-bin power mel in dB, floored 120 dB below each item's peak: ``[B, 64, T]``."""
        mel, frames = self.front_end(wav, lens)
        db = mel * (10.0 / math.log(10.0))
        peak = db.amax(dim=(1, 2), keepdim=True)
        return torch.maximum(db, peak - 120.0), frames

    def forward(self, wav: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, frames = self.log_mel_db(wav, lens)
        x = self.init_bn(x[:, None])
        tok_lens = torch.div(frames, PATCH_FRAMES, rounding_mode="floor")
        outs = []
        for s in range(0, x.shape[-1], self.cfg.target_length):
            h = self.patch_embed.proj(x[..., s : s + self.cfg.target_length])  # [B, D, 1, t]
            t = h.shape[-1]
            if t == 0:
                continue
            h = (h + self.time_pos_embed[..., :t] + self.freq_pos_embed).flatten(2).transpose(1, 2)
            first = s // PATCH_FRAMES
            mask = lengths_to_mask((tok_lens - first).clamp(min=1), t)
            for b in self.blocks:
                h = b(h, mask)
            outs.append(self.norm(h) * mask[..., None])
        return torch.cat(outs, dim=1), tok_lens


def load_dasheng_weights(vit: DashengViT, path: str | Path) -> DashengViT:
    """Load original Dasheng encoder weights from a local directory or file (``*.safetensors``,
    ``*.bin`` / ``*.pt`` state dicts, optionally nested under ``model`` / ``state_dict`` or prefixed
    ``encoder.`` / ``model.``). Front-end buffers are ignored (the config defines them); every
    parameter of the ViT must be present with the right shape."""
    p = Path(path)
    if p.is_dir():
        cands = [p / n for n in ("model.safetensors", "pytorch_model.bin", "model.pt", "dasheng.pt")]
        found = [c for c in cands if c.is_file()] + sorted(p.glob("*.safetensors")) + sorted(p.glob("*.pt"))
        if not found:
            raise ModelLoadError(f"{p}: no Dasheng weights (model.safetensors / pytorch_model.bin / *.pt)")
        p = found[0]
    if not p.is_file():
        raise ModelLoadError(f"{p}: no such Dasheng weights file")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # damaged files raise several types
        raise ModelLoadError(f"{p}: unreadable weights ({str(e).splitlines()[0]})") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    own = vit.state_dict()
    out = {}
    for k, v in state.items():
        for pre in ("", "encoder.", "model.", "model.encoder.", "dashengmodel."):
            if k.startswith(pre) and k[len(pre):] in own:
                out[k[len(pre):]] = v
                break
    missing = sorted(set(own) - set(out))
    if missing:
        raise ModelLoadError(f"{p}: not Dasheng weights for this size (missing {missing[:3]})")
    for k, v in out.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ModelLoadError(f"{p}: {k} has shape {list(v.shape)}, this config expects {list(own[k].shape)}")
    vit.load_state_dict(out, strict=True)
    return vit


def __getattr__(name: str):  # lazy: dsatok.dasheng_tokenizer imports this module
    if name in _MOVED:
        from .. import dasheng_tokenizer

        return getattr(dasheng_tokenizer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
