"""DashengTokenizer: one continuous 25 Hz latent for understanding and generation.

``unified = semantic + LayerNorm(W · mel_patch)``: a frozen semantic encoder gives ``semantic
[B, T, D]``; a 128-bin log-mel cut into patches of 4 frames goes through **one** linear
projection (``Conv2d`` with kernel = stride = ``(128, 4)``) and a LayerNorm and is *added*.
A Vocos-style decoder (transposed conv ×2 → ConvNeXt → iSTFT, hop 320 at 16 kHz) maps the
latent back to a waveform.

Semantic back ends:

- ``vit``: a Dasheng-compatible audio ViT (64-bin mel patches of 4 frames, 1008-frame windows),
  loadable from a local directory of original Dasheng weights (:func:`load_dasheng_weights`);
- ``dsa``: our own frozen stage-1 semantic encoder (the continuous output before FSQ), stored in
  ``semantic/`` beside the Dasheng weights.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import MelFrontend, batch_and_lengths, lengths_to_mask
from ..config import ConfigError, MelConfig
from .io import ModelLoadError, load_model_config, load_weights, save_model
from .vocoder import VocoderConfig, VocosVocoder

__all__ = ["DashengConfig", "DashengViTConfig", "DashengViT", "DashengTokenizer", "DashengLatents",
           "load_dasheng_weights", "DASHENG_PRESETS"]

KIND = "dsatok-dasheng"
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
_DECODER_MEL_DICT = {"n_fft": 1280, "win_length": 1280, "hop_length": 320}


def _decoder_default() -> VocoderConfig:
    return VocoderConfig(mel=DECODER_MEL, dim=256, intermediate=768, layers=8, in_dim=768, upsample=2, n_fft=1280)


@dataclasses.dataclass(frozen=True)
class DashengConfig:
    backend: Literal["vit", "dsa"] = "vit"
    vit: DashengViTConfig = DashengViTConfig()
    dim: int = 768  # latent width: vit.embed_dim, or the DSA semantic encoder's output width
    #: False: the seed's semantic-only ablation (no acoustic injection; unified = semantic)
    inject_acoustic: bool = True
    decoder: VocoderConfig = dataclasses.field(default_factory=_decoder_default)

    def __post_init__(self) -> None:
        if self.backend not in ("vit", "dsa"):
            raise ConfigError(f"dasheng.backend must be 'vit' or 'dsa', got '{self.backend}'")
        if self.backend == "vit" and self.dim != self.vit.embed_dim:
            raise ConfigError(f"dasheng.dim ({self.dim}) must equal vit.embed_dim ({self.vit.embed_dim})")
        if self.decoder.in_dim != self.dim:
            raise ConfigError(f"dasheng.decoder.in_dim ({self.decoder.in_dim}) must equal dim ({self.dim})")
        if self.decoder.mel.hop_length * self.decoder.upsample != PATCH_FRAMES * 160:
            raise ConfigError("dasheng.decoder must map 25 Hz latents to 16 kHz (hop × upsample = 640)")


DASHENG_PRESETS: dict[str, dict] = {
    "tiny": {"vit": {"embed_dim": 192, "depth": 4, "heads": 3}, "dim": 192,
             "decoder": {"mel": _DECODER_MEL_DICT, "in_dim": 192, "dim": 256, "intermediate": 768, "layers": 8,
                         "upsample": 2, "n_fft": 1280}},
    "base": {},
}


@dataclasses.dataclass
class DashengLatents:
    """``semantic``, ``acoustic`` and ``unified`` [B, T, D] at 25 Hz; ``lengths`` [B] valid frames."""

    semantic: torch.Tensor
    acoustic: torch.Tensor
    unified: torch.Tensor
    lengths: torch.Tensor

    def __getitem__(self, key: str) -> torch.Tensor:  # dict-style access like the original API
        return {"semantic": self.semantic, "acoustic": self.acoustic, "unified": self.unified,
                "semantic_emb": self.semantic, "acoustic_emb": self.acoustic, "unified_emb": self.unified}[key]


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


class DashengTokenizer(nn.Module):
    """``encode(wav [B, N], lens) -> DashengLatents`` (25 Hz) and ``decode(unified [B, T, D]) -> wav [B, T * 640]``."""

    def __init__(self, cfg: DashengConfig, semantic: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.backend == "vit":
            self.semantic = DashengViT(cfg.vit)
        else:
            if semantic is None:
                raise ConfigError("dasheng backend 'dsa' needs a stage-1 semantic tokenizer")
            self._dsa = [semantic.requires_grad_(False).eval()]  # kept out of the state dict
            self.semantic = None
        self.acoustic_mel = MelFrontend(ACOUSTIC_MEL)
        if cfg.inject_acoustic:
            self.acoustic_proj = nn.Conv2d(1, cfg.dim, kernel_size=(ACOUSTIC_MEL.n_mels, PATCH_FRAMES),
                                           stride=(ACOUSTIC_MEL.n_mels, PATCH_FRAMES))
            self.acoustic_norm = nn.LayerNorm(cfg.dim)
        self.decoder = VocosVocoder(cfg.decoder)
        if self.semantic is not None:
            self.semantic.requires_grad_(False)

    sample_rate = 16000
    frame_rate = 25.0

    @property
    def dsa_semantic(self) -> nn.Module | None:
        return self._dsa[0] if self.cfg.backend == "dsa" else None

    def train(self, mode: bool = True) -> "DashengTokenizer":
        super().train(mode)
        if self.semantic is not None:
            self.semantic.eval()  # frozen: BatchNorm statistics never move
        return self

    @torch.no_grad()
    def semantic_features(self, wav: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen semantic embedding ``[B, T, D]`` and valid frames ``[B]``."""
        if self.semantic is not None:
            return self.semantic(wav, lens)
        sem = self._dsa[0].to(wav.device)  # kept outside the module tree: follow the input's device
        return sem.encoder(wav, lens)

    def acoustic_features(self, wav: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """``LN(W · mel_patch)``: ``[B, T, D]`` with ``T = frames // 4`` (zeros without injection)."""
        mel, _ = self.acoustic_mel(wav, lens)
        if not self.cfg.inject_acoustic:
            return mel.new_zeros(mel.shape[0], mel.shape[-1] // PATCH_FRAMES, self.cfg.dim)
        h = self.acoustic_proj(mel[:, None])[:, :, 0].transpose(1, 2)
        return self.acoustic_norm(h)

    def encode(self, wav: torch.Tensor, lens: torch.Tensor | None = None) -> DashengLatents:
        wav, lens = batch_and_lengths(wav, lens)
        sem, s_lens = self.semantic_features(wav, lens)
        ac = self.acoustic_features(wav, lens)
        t = min(sem.shape[1], ac.shape[1])
        sem, ac = sem[:, :t], ac[:, :t]
        out_lens = torch.minimum(s_lens.clamp(max=t), torch.div(lens, 640, rounding_mode="floor"))
        mask = lengths_to_mask(out_lens, t)[..., None]
        ac = ac * mask
        return DashengLatents(sem * mask, ac, (sem + ac) * mask, out_lens)

    def decode(self, unified: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> wav [B, T * 640]`` (chunked for long inputs)."""
        return self.decoder.synthesize(unified.transpose(1, 2), chunk_frames=250)

    def save_pretrained(self, out_dir: str | Path) -> Path:
        out = save_model(self, self.cfg, KIND, out_dir)
        if self.cfg.backend == "dsa":
            self._dsa[0].save_pretrained(Path(out_dir) / "semantic")
        return out

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> "DashengTokenizer":
        cfg, _ = load_model_config(DashengConfig, model_dir, KIND)
        sem = None
        if cfg.backend == "dsa":
            from .semantic import SemanticTokenizer

            sem = SemanticTokenizer.from_pretrained(Path(model_dir) / "semantic")
        return load_weights(cls(cfg, sem), model_dir).requires_grad_(False)
