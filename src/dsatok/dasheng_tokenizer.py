"""DashengTokenizer: one continuous 25 Hz latent for understanding and generation.

``unified = semantic + LayerNorm(W · mel_patch)``: a frozen semantic encoder gives ``semantic
[B, T, D]``; a 128-bin log-mel cut into patches of 4 frames goes through **one** linear
projection (``Conv2d`` with kernel = stride = ``(128, 4)``) and a LayerNorm and is *added*.
A Vocos-style decoder (transposed conv ×2 → ConvNeXt → iSTFT, hop 320 at 16 kHz) maps the
latent back to a waveform.

Semantic back ends:

- ``vit``: a Dasheng-compatible audio ViT (:class:`dsatok.models.dasheng.DashengViT`), loadable
  from a local directory of original Dasheng weights;
- ``dsa``: our own frozen stage-1 semantic encoder (the continuous output before FSQ), stored in
  ``semantic/`` beside the Dasheng weights.

A model directory holds ``config.json`` + ``model.safetensors`` (and ``semantic/`` for ``dsa``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from .audio import MelFrontend, batch_and_lengths, lengths_to_mask
from .config import ConfigError
from .models.dasheng import ACOUSTIC_MEL, DECODER_MEL, PATCH_FRAMES, DashengViT, DashengViTConfig
from .models.io import load_model_config, load_weights, save_model
from .models.vocoder import VocoderConfig, VocosVocoder

__all__ = ["DashengConfig", "DashengTokenizer", "DashengLatents", "DASHENG_PRESETS"]

KIND = "dsatok-dasheng"

if TYPE_CHECKING:
    from .latents import Latents
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

    # ------------------------------------------------------------------ latent files
    @property
    def fingerprint(self) -> str:
        """Identifies the latent space: a hash of the config and the encoder-side weights (the
        frozen semantic encoder and the acoustic injection; the decoder does not change it)."""
        if getattr(self, "_fingerprint", None) is None:
            import hashlib
            import json

            from .config import to_dict

            h = hashlib.sha256(json.dumps({k: v for k, v in to_dict(self.cfg).items() if k != "decoder"},
                                          sort_keys=True).encode())
            parts = [m for m in (self.semantic, self.dsa_semantic) if m is not None]
            state = {f"{i}.{k}": v for i, m in enumerate(parts) for k, v in m.state_dict().items()}
            state.update({k: v for k, v in self.state_dict().items() if k.startswith("acoustic_")})
            for k, v in sorted(state.items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    @torch.no_grad()
    def encode_latents(self, audio: object, part: str = "unified") -> "Latents":
        """Audio (a path, an array ``[N]`` / ``[B, N]`` or a list of them) → one :class:`~dsatok.latents.Latents`
        of ``part`` (``unified``, ``semantic`` or ``acoustic``), padded, with this model's fingerprint."""
        from .audio import as_waveforms
        from .latents import LATENT_PARTS, Latents

        if part not in LATENT_PARTS:
            raise ConfigError(f"encode option part: must be one of {', '.join(LATENT_PARTS)}, got {part!r}")
        dev = next(self.parameters()).device
        waves = [w.to(dev) for w in as_waveforms(audio, self.sample_rate)]
        short = [i for i, w in enumerate(waves) if w.shape[0] < 640]
        if short:
            raise ConfigError(f"audio[{short[0]}]: shorter than one latent frame (640 samples, 40 ms)")
        lens = torch.tensor([w.shape[0] for w in waves], device=dev)
        wav = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
        out = self.encode(wav, lens)
        return Latents(out[part].float().cpu(), out.lengths.cpu().long(), lens.cpu().long(), part, self.fingerprint,
                       self.frame_rate, self.sample_rate).validate("encoded latents")

    def check_latents(self, lat: "Latents", where: str = "latents") -> None:
        """Refuse latents this model cannot decode (another model's, or not the unified latent)."""
        from .latents import LatentFileError

        lat.validate(where)
        if lat.fingerprint != self.fingerprint:
            raise LatentFileError(f"{where}: made by another model (fingerprint {lat.fingerprint}, this model "
                                  f"{self.fingerprint})")
        if lat.part != "unified":
            raise LatentFileError(f"{where}: holds the {lat.part} latent; only the unified latent decodes to audio")
        if lat.latent.shape[-1] != self.cfg.dim or lat.sample_rate != self.sample_rate:
            raise LatentFileError(f"{where}: {lat.latent.shape[-1]}-wide latents at {lat.sample_rate} Hz do not fit "
                                  f"this model ({self.cfg.dim} at {self.sample_rate} Hz)")

    @torch.no_grad()
    def decode_latents(self, lat: "Latents") -> list[torch.Tensor]:
        """Unified latents → one waveform ``[N_i]`` per item, at its source length."""
        self.check_latents(lat)
        dev = next(self.parameters()).device
        out = []
        for i in range(len(lat)):
            one = lat[i]
            w = self.decode(one.latent.to(dev))[0].cpu()
            n = int(one.num_samples[0])
            out.append(torch.nn.functional.pad(w, (0, max(0, n - w.shape[0])))[:n])
        return out

    @torch.no_grad()
    def reconstruct(self, audio: object) -> list[torch.Tensor]:
        """Audio (path, array or list) → encode → decode: one waveform ``[N_i]`` per input."""
        return self.decode_latents(self.encode_latents(audio))

    def info(self) -> dict:
        """What a user needs to know of this model (``dsatok info``)."""
        params = {n: sum(p.numel() for p in m.parameters()) for n, m in
                  (("semantic", self.dsa_semantic or self.semantic), ("decoder", self.decoder)) if m is not None}
        params["acoustic_injection"] = sum(p.numel() for k, p in self.named_parameters() if k.startswith("acoustic_"))
        return {"kind": "dasheng", "fingerprint": self.fingerprint, "backend": self.cfg.backend,
                "sample_rate": self.sample_rate, "frame_rate_hz": self.frame_rate, "latent_dim": self.cfg.dim,
                "inject_acoustic": bool(getattr(self.cfg, "inject_acoustic", True)), "parameters": params}

    def save_pretrained(self, out_dir: str | Path) -> Path:
        out = save_model(self, self.cfg, KIND, out_dir)
        if self.cfg.backend == "dsa":
            self._dsa[0].save_pretrained(Path(out_dir) / "semantic")
        return out

    @classmethod
    def from_pretrained(cls, model_dir: str | Path | None = None) -> "DashengTokenizer":
        """A saved DashengTokenizer; ``None`` (or ``"dasheng"``) loads the bundled ``dasheng-default``."""
        from .resources import bundled_model_dir

        model_dir = bundled_model_dir("dasheng") if model_dir is None or str(model_dir) == "dasheng" else model_dir
        cfg, _ = load_model_config(DashengConfig, model_dir, KIND)
        sem = None
        if cfg.backend == "dsa":
            from .models.semantic import SemanticTokenizer

            sem = SemanticTokenizer.from_pretrained(Path(model_dir) / "semantic")
        return load_weights(cls(cfg, sem), model_dir).requires_grad_(False)
