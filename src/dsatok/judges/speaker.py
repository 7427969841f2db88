"""Speaker-embedding back ends (for SIM, corpus voice selection and speaker probes).

``ResemblyzerEncoder``: GE2E d-vectors (256-d) whose weights ship inside the ``resemblyzer``
wheel, so it works offline. Embeddings are L2-normalised; similarity is their dot product.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = ["SpeakerEncoder", "ResemblyzerEncoder", "WavLMSVEncoder", "load_speaker_encoder", "cosine"]


class SpeakerEncoder(Protocol):
    """Anything that maps a waveform to a unit-norm speaker embedding."""

    name: str

    def embed(self, wav: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
        """``wav [N]`` float32 -> embedding ``[D]`` with unit L2 norm."""
        ...


def _ensure_pkg_resources() -> None:
    # webrtcvad (imported by resemblyzer) imports pkg_resources only for its version string;
    # setuptools >= 81 removed it. Provide a minimal stand-in when it is missing.
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        mod = types.ModuleType("pkg_resources")

        class _Dist:
            version = "0"

        mod.get_distribution = lambda name: _Dist()  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = mod


class ResemblyzerEncoder:
    """Resemblyzer GE2E encoder on the CPU. ``embed`` accepts 16 kHz mono float samples."""

    name = "resemblyzer-ge2e-0.1.4"

    def __init__(self, device: str = "cpu") -> None:
        _ensure_pkg_resources()
        try:
            from resemblyzer import VoiceEncoder, preprocess_wav
        except ImportError as e:
            raise RuntimeError(f"resemblyzer is not installed ({e}); run: pip install 'dsatok[eval]'") from None
        self._preprocess = preprocess_wav
        self._enc = VoiceEncoder(device, verbose=False)

    def embed(self, wav: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
        x = self._preprocess(np.asarray(wav, dtype=np.float32), source_sr=sample_rate)
        if x.size < 1600:  # VAD removed nearly everything: embed the raw signal instead
            x = np.asarray(wav, dtype=np.float32)
        e = self._enc.embed_utterance(x)
        return (e / max(np.linalg.norm(e), 1e-8)).astype(np.float32)

    def embed_file(self, path: str | Path) -> np.ndarray:
        from ..audio import load

        return self.embed(load(path, 16000), 16000)


class WavLMSVEncoder:
    """transformers ``WavLMForXVector`` (e.g. microsoft/wavlm-base-plus-sv) read from a local directory."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        import torch
        from transformers import WavLMForXVector

        p = Path(path)
        if not (p / "config.json").is_file():
            raise FileNotFoundError(f"{p}: not a transformers model directory (no config.json)")
        self.model = WavLMForXVector.from_pretrained(str(p), local_files_only=True).to(device).eval()
        self.device = device
        self.name = f"wavlm-sv:{p.name}"
        self._torch = torch

    @property
    def dim(self) -> int:
        return int(self.model.config.xvector_output_dim)

    def embed(self, wav: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
        from ..audio import _to_mono_resampled

        x = _to_mono_resampled(np.asarray(wav, dtype=np.float32)[:, None], sample_rate, 16000, "<array>")
        x = (x - x.mean()) / (x.std() + 1e-7)
        with self._torch.no_grad():
            e = self.model(self._torch.from_numpy(x)[None].to(self.device)).embeddings[0].cpu().numpy()
        return (e / max(np.linalg.norm(e), 1e-8)).astype(np.float32)


def load_speaker_encoder(spec: str = "resemblyzer") -> "SpeakerEncoder":
    """``"resemblyzer"`` (offline default) or a local WavLM-SV directory."""
    if spec in ("", "resemblyzer"):
        return ResemblyzerEncoder()
    return WavLMSVEncoder(spec)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-8))
