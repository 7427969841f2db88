"""Signal metrics and naturalness back ends, each behind a small function or class.

* ``mel_l1`` / ``mcd``: frame-aligned distances of two waveforms of (nearly) equal length;
* ``mel_dtw``: DTW-aligned mean L1 log-mel distance, for outputs whose timing may differ from
  the reference (recombination vs the corpus's true target);
* ``pesq_wb`` / ``stoi``: wrappers of the ``pesq`` and ``pystoi`` packages;
* naturalness: ``DNSMOS`` (speechmos, ONNX, in the wheel), ``DistillMOS`` (weights in the wheel),
  ``UTMOS`` (a local directory only), chosen by :func:`load_mos`.
"""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

__all__ = ["log_mel", "mel_l1", "mcd", "mel_dtw", "pesq_wb", "stoi", "MOS", "DNSMOS", "DistillMOS", "UTMOS",
           "load_mos"]


def log_mel(wav: np.ndarray) -> np.ndarray:
    """The shared 100-bin log-mel of ``wav [N]`` (16 kHz): ``[100, T]``."""
    from ..audio import MelFrontend

    return MelFrontend()(torch.as_tensor(np.asarray(wav, dtype=np.float32)))[0][0].numpy()


def _trim(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(a.shape[-1], b.shape[-1])
    return a[..., :n], b[..., :n]


def mel_l1(ref: np.ndarray, out: np.ndarray) -> float:
    """Mean absolute log-mel difference, frame by frame."""
    a, b = _trim(log_mel(ref), log_mel(out))
    return float(np.abs(a - b).mean())


def _mcep(mel: np.ndarray, n: int = 13) -> np.ndarray:
    """Mel-cepstra ``[n - 1, T]`` (DCT-II of the log-mel, c0 dropped)."""
    from scipy.fft import dct

    return dct(mel, type=2, axis=0, norm="ortho")[1:n]


def mcd(ref: np.ndarray, out: np.ndarray) -> float:
    """Mel-cepstral distortion in dB (c1..c12 of the log-mel cepstrum) over aligned frames where the
    reference is within 60 dB of its loudest frame (digital silence would otherwise dominate).

    The cepstrum is an orthonormal DCT-II of the shared 100-bin natural-log mel, so the value grows
    with :func:`mel_l1` (vocoder copy-synthesis ~5 dB, decoder outputs with mel L1 ~1: 60–90 dB) and
    is not on the scale of published MCDs computed from SPTK mel-cepstra: compare systems with it
    only within this toolkit."""
    mr, mo = _trim(log_mel(ref), log_mel(out))
    energy = mr.max(0)
    keep = energy > energy.max() - 6.9  # 60 dB in natural-log magnitude
    a, b = _mcep(mr)[:, keep], _mcep(mo)[:, keep]
    return float((10.0 / math.log(10.0)) * math.sqrt(2.0) * np.sqrt(((a - b) ** 2).sum(0)).mean())


def _dtw_cost(a: np.ndarray, b: np.ndarray) -> float:
    """Mean L1 frame distance along the DTW path of ``a [D, Ta]`` and ``b [D, Tb]``."""
    d = np.abs(a[:, :, None] - b[:, None, :]).mean(0)  # [Ta, Tb]
    ta, tb = d.shape
    acc = np.full((ta + 1, tb + 1), np.inf)
    steps = np.zeros((ta + 1, tb + 1))
    acc[0, 0] = 0.0
    for i in range(1, ta + 1):
        for j in range(1, tb + 1):
            choices = (acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
            k = int(np.argmin(choices))
            prev = ((i - 1, j - 1), (i - 1, j), (i, j - 1))[k]
            acc[i, j] = d[i - 1, j - 1] + choices[k]
            steps[i, j] = steps[prev] + 1
    return float(acc[ta, tb] / steps[ta, tb])


def mel_dtw(ref: np.ndarray, out: np.ndarray, hop: int = 2) -> float:
    """DTW-aligned mean L1 log-mel distance (frames decimated by ``hop`` to keep it fast)."""
    return _dtw_cost(log_mel(ref)[:, ::hop], log_mel(out)[:, ::hop])


def pesq_wb(ref: np.ndarray, out: np.ndarray) -> float:
    """Wide-band PESQ (16 kHz) of ``out`` against ``ref``."""
    from pesq import pesq

    a, b = _trim(np.asarray(ref, dtype=np.float32), np.asarray(out, dtype=np.float32))
    return float(pesq(16000, a, b, "wb"))


def stoi(ref: np.ndarray, out: np.ndarray) -> float:
    from pystoi import stoi as _stoi

    a, b = _trim(np.asarray(ref, dtype=np.float64), np.asarray(out, dtype=np.float64))
    return float(_stoi(a, b, 16000, extended=False))


class MOS(Protocol):
    name: str

    def __call__(self, wav: np.ndarray) -> float:
        """``wav [N]`` at 16 kHz -> predicted MOS (1..5)."""
        ...


class DNSMOS:
    """DNSMOS P.808 overall MOS (speechmos; ONNX models inside the wheel)."""

    name = "dnsmos-p808"

    def __call__(self, wav: np.ndarray) -> float:
        from speechmos import dnsmos

        x = np.asarray(wav, dtype=np.float32)
        x = x / max(float(np.abs(x).max()), 1e-8) * 0.9
        return float(dnsmos.run(x, 16000)["p808_mos"])


class DistillMOS:
    """DistillMOS (weights inside the wheel). Its package imports torchaudio, which has no CPU build
    here and which it needs only for file loading: an empty stand-in module is registered first."""

    name = "distillmos-0.9"

    def __init__(self) -> None:
        import contextlib
        import io

        stub = None
        if "torchaudio" not in sys.modules:
            try:
                import torchaudio  # noqa: F401
            except Exception:
                stub = sys.modules["torchaudio"] = types.ModuleType("torchaudio")
        try:
            import distillmos
        finally:
            if stub is not None and sys.modules.get("torchaudio") is stub:
                del sys.modules["torchaudio"]  # others (lhotse) probe for torchaudio: leave no stub behind
        with contextlib.redirect_stdout(io.StringIO()):  # it prints where its weights came from
            self.model = distillmos.ConvTransformerSQAModel().eval()

    @torch.no_grad()
    def __call__(self, wav: np.ndarray) -> float:
        return float(self.model(torch.as_tensor(np.asarray(wav, dtype=np.float32))[None])[0])


class UTMOS:
    """UTMOS from a local TorchScript file or directory holding ``utmos.pt`` (no download)."""

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        f = p / "utmos.pt" if p.is_dir() else p
        if not f.is_file():
            raise FileNotFoundError(f"{p}: no UTMOS TorchScript model (utmos.pt)")
        self.model = torch.jit.load(str(f), map_location="cpu").eval()
        self.name = f"utmos:{f.name}"

    @torch.no_grad()
    def __call__(self, wav: np.ndarray) -> float:
        return float(self.model(torch.as_tensor(np.asarray(wav, dtype=np.float32))[None], 16000).reshape(-1)[0])


def load_mos(spec: str) -> MOS:
    """``"dnsmos"``, ``"distillmos"`` or a local UTMOS path."""
    if spec == "dnsmos":
        return DNSMOS()
    if spec == "distillmos":
        return DistillMOS()
    return UTMOS(spec)
