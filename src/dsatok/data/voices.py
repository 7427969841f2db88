"""Voices of Debian's speech synthesisers and how to make each speak a sentence.

A :class:`Voice` is one engine setting (engine, voice name, pitch, sox pitch shift, gender).
:func:`candidate_voices` lists every setting we try; a third-party speaker encoder then decides
which of them are really different speakers (``dsatok corpus voices``), and the chosen inventory
ships as ``dsatok/resources/voices.json``. :func:`synthesize` renders a sentence with a voice to
16 kHz mono 16-bit FLAC (silence trimmed, peak-normalised to -3 dBFS), atomically.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Literal

from ..files import atomic_write_json

__all__ = [
    "Voice",
    "SynthesisError",
    "candidate_voices",
    "load_inventory",
    "load_voice_centroids",
    "encode_centroid",
    "decode_centroid",
    "save_inventory",
    "synthesize",
    "engines_available",
    "ENGINE_BINARIES",
]

Engine = Literal["espeak", "festival", "flite", "pico", "kokoro", "hibari"]
NEURAL_ENGINES = ("kokoro", "hibari")  # Python engines (dsatok.data.kokoro), no binary
ENGINE_BINARIES: dict[str, str] = {"espeak": "espeak-ng", "festival": "text2wave", "flite": "flite", "pico": "pico2wave"}
_TIMEOUT_S = 120


class SynthesisError(RuntimeError):
    """A synthesiser failed; the message is one line naming the voice and the reason."""


@dataclasses.dataclass(frozen=True)
class Voice:
    """One synthesiser setting.

    Attributes:
        engine: which synthesiser.
        name: the engine's voice name (espeak ``en-us+m3`` / ``mb-us1``, festival ``kal_diphone``,
            flite ``slt``, pico ``en-US``; kokoro a style expression such as ``jf_alpha/jm_kumo@0.9``
            and hibari ``heart``, see :mod:`dsatok.data.kokoro`).
        gender: ``M`` or ``F`` (of the source voice).
        pitch: espeak ``-p`` (0–99, default 50); ignored by other engines.
        shift_cents: sox pitch shift applied after synthesis (0 = none).
        accent: free-text accent label (``us``, ``gb``, ``de``...), for probing tasks.
    """

    engine: Engine
    name: str
    gender: Literal["M", "F"]
    pitch: int = 50
    shift_cents: int = 0
    accent: str = "us"

    @property
    def id(self) -> str:
        """Filesystem-safe unique id, e.g. ``espeak_en-us_m3`` or ``flite_slt_s+300``."""
        base = f"{self.engine}_{self.name}".replace("+", "_")
        if self.engine == "espeak" and self.pitch != 50:
            base += f"_p{self.pitch}"
        if self.engine in NEURAL_ENGINES and self.accent == "gb":  # the accent picks the G2P lexicon
            base += "_gb"
        if self.shift_cents:
            base += f"_s{self.shift_cents:+d}"
        return re.sub(r"[^A-Za-z0-9_+.-]", "-", base)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Voice":
        return cls(**d)


def candidate_voices() -> list[Voice]:
    """Every synthesiser setting we consider, most natural first (the selection keeps early ones)."""
    v: list[Voice] = []
    # Most natural engines first (DistillMOS: HTS slt 3.4, pico 3.3, flite 3.2, espeak 1.7-2.5).
    v += [Voice("festival", "cmu_us_slt_arctic_hts", "F")]
    v += [Voice("pico", "en-US", "F"), Voice("pico", "en-GB", "F", accent="gb")]
    v += [Voice("flite", n, g, accent=a) for n, g, a in [("slt", "F", "us"), ("awb", "M", "sc"), ("rms", "M", "us"), ("kal16", "M", "us")]]
    v += [Voice("festival", n, "M", accent=a) for n, a in [("kal_diphone", "us"), ("rab_diphone", "gb"), ("don_diphone", "gb"), ("ked_diphone", "us")]]
    mb = [("mb-us1", "F", "us"), ("mb-us2", "M", "us"), ("mb-us3", "M", "us"), ("mb-en1", "M", "gb"),
          ("mb-af1-en", "M", "af"), ("mb-nl2-en", "M", "nl"), ("mb-fr1-en", "M", "fr"), ("mb-fr4-en", "F", "fr"),
          ("mb-de1-en", "F", "de"), ("mb-de2-en", "M", "de"), ("mb-de3-en", "F", "de"), ("mb-de4-en", "M", "de"),
          ("mb-de5-en", "F", "de"), ("mb-de6-en", "M", "de"), ("mb-gr2-en", "M", "gr"), ("mb-hu1-en", "F", "hu"),
          ("mb-pl1-en", "F", "pl"), ("mb-ro1-en", "M", "ro"), ("mb-sw1-en", "M", "sw"), ("mb-sw2-en", "F", "sw")]
    v += [Voice("espeak", n, g, accent=a) for n, g, a in mb]
    accents = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp"]
    variants = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "Andy", "Annie",
                "edward", "grandpa", "john", "linda", "robert", "steph", "klatt", "klatt2", "klatt3", "klatt4",
                "Alex", "Alicia", "Denis", "Mr_Serious", "Michael", "Gene", "Lee", "Mike", "Paul", "Quincy"]
    female = {"f1", "f2", "f3", "f4", "f5", "Annie", "linda", "steph", "Alicia", "klatt4"}
    for i, var in enumerate(variants):
        acc = accents[i % len(accents)]
        v.append(Voice("espeak", f"{acc}+{var}", "F" if var in female else "M", accent=acc.replace("en-", "")))
    # Pseudo-speakers: sox pitch shifts of the non-espeak voices (0.70-0.75 similarity to source).
    base = [x for x in v if x.engine != "espeak" or x.name.startswith("mb-")]
    for cents in (300, -300):
        v += [dataclasses.replace(x, shift_cents=cents) for x in base]
    for cents in (600, -500):
        v += [dataclasses.replace(x, shift_cents=cents) for x in base]
    plain_espeak = [x for x in v if x.engine == "espeak" and not x.name.startswith("mb-") and not x.shift_cents]
    for cents in (400, -400):
        v += [dataclasses.replace(x, shift_cents=cents) for x in plain_espeak]
    return v


#: bundled inventories by name: the classical synthesisers, the neural (Kokoro / hibari) voices, and both
BUNDLED_INVENTORIES = {"classical": ("voices.json",), "natural": ("voices_natural.json",),
                       "all": ("voices.json", "voices_natural.json")}


def _inventory_data(path: str | Path | None) -> dict:
    """An inventory's JSON; a bundled name (default ``all``) merges its files' voices and ``asr_wer``."""
    name = "all" if path is None else str(path)
    if name not in BUNDLED_INVENTORIES:
        return json.loads(Path(path).read_text())
    parts = [json.loads(resources.files("dsatok.resources").joinpath(f).read_text()) for f in BUNDLED_INVENTORIES[name]]
    if len(parts) == 1:
        return parts[0]
    wer: dict[str, float] = {}
    cents: dict[str, str] = {}
    for p in parts:
        wer.update(p.get("meta", {}).get("asr_wer") or {})
        cents.update(p.get("meta", {}).get("centroids") or {})
    return {"meta": {"merged": list(BUNDLED_INVENTORIES[name]), "asr_wer": wer, "centroids": cents},
            "voices": [v for p in parts for v in p["voices"]]}


def load_inventory(path: str | Path | None = None) -> list[Voice]:
    """The selected voices: a JSON file, or a bundled inventory by name: ``all`` (the default: the
    classical synthesisers and the natural Kokoro / hibari voices), ``classical`` or ``natural``."""
    return [Voice.from_dict(d) for d in _inventory_data(path)["voices"]]


def load_inventory_meta(path: str | Path | None = None) -> dict:
    """The ``meta`` block of a voice inventory (selection settings, per-voice ASR WER)."""
    return dict(_inventory_data(path).get("meta", {}))


def encode_centroid(c) -> str:
    """A speaker centroid ``[D]`` as an inventory stores it: unit-normalised, float16, little-endian, base64."""
    import base64

    import numpy as np

    v = np.asarray(c, dtype=np.float64)
    v = v / max(float(np.linalg.norm(v)), 1e-12)
    return base64.b64encode(v.astype("<f2").tobytes()).decode("ascii")


def decode_centroid(s: str):
    """:func:`encode_centroid`'s string back to a float32 array ``[D]``."""
    import base64
    import binascii

    import numpy as np

    try:
        return np.frombuffer(base64.b64decode(s, validate=True), dtype="<f2").astype(np.float32)
    except (binascii.Error, ValueError, TypeError) as e:
        raise ValueError(f"not a stored centroid ({e})") from None


def load_voice_centroids(path: str | Path | None = None) -> dict:
    """Per-voice speaker centroids of an inventory (``meta.centroids``, written by ``dsatok corpus
    centroids`` or ``dsatok corpus voices``): ``{voice id: unit-norm float32 array [D]}`` of
    resemblyzer embeddings; voices without one are absent."""
    out = {}
    for k, v in (load_inventory_meta(path).get("centroids") or {}).items():
        try:
            out[k] = decode_centroid(v)
        except ValueError as e:
            raise ValueError(f"{path or 'the bundled inventory'}: centroid of {k}: {e}") from None
    return out


def save_inventory(voices: list[Voice], path: str | Path, meta: dict | None = None) -> None:
    """Write a voice inventory JSON (``{"meta": ..., "voices": [...]}``)."""
    atomic_write_json(path, {"meta": meta or {}, "voices": [x.to_dict() for x in voices]})


def engines_available() -> dict[str, bool]:
    """Which engine binaries (and sox) are on PATH."""
    out = {e: shutil.which(b) is not None for e, b in ENGINE_BINARIES.items()}
    out["sox"] = shutil.which("sox") is not None
    return out


def _run(cmd: list[str], voice: Voice, stdin: str | None = None) -> None:
    try:
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except FileNotFoundError:
        raise SynthesisError(f"{voice.id}: '{cmd[0]}' is not installed (run scripts/setup.sh)") from None
    except subprocess.TimeoutExpired:
        raise SynthesisError(f"{voice.id}: {cmd[0]} timed out after {_TIMEOUT_S} s") from None
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise SynthesisError(f"{voice.id}: {cmd[0]} failed ({msg[-1] if msg else 'exit ' + str(r.returncode)})")


@functools.lru_cache(maxsize=1)
def _espeak_names() -> tuple[frozenset[str], frozenset[str]]:
    """(voice names usable with -v, variant names usable after '+'), read from espeak-ng itself."""
    voices: set[str] = set()
    variants: set[str] = set()
    for arg, dest in (("--voices", voices), ("--voices=mb", voices), ("--voices=variant", variants)):
        try:
            out = subprocess.run(["espeak-ng", arg], capture_output=True, text=True, timeout=30).stdout
        except (FileNotFoundError, subprocess.TimeoutExpired):
            continue
        for line in out.splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 5:
                dest.update({cols[1], cols[3], cols[4].split("/")[-1]})
    return frozenset(voices), frozenset(variants)


def _check_espeak_voice(voice: Voice) -> None:
    # espeak-ng silently falls back to its default voice for unknown names: refuse them here.
    known, variants = _espeak_names()
    if not known:
        return
    base, _, var = voice.name.partition("+")
    if base not in known:
        raise SynthesisError(f"{voice.id}: espeak-ng has no voice {base!r} (see 'espeak-ng --voices')")
    if var and var not in variants:
        raise SynthesisError(f"{voice.id}: espeak-ng has no variant {var!r} (see 'espeak-ng --voices=variant')")
    if base.startswith("mb-") and not Path("/usr/share/mbrola", base.split("-")[1]).exists():
        raise SynthesisError(f"{voice.id}: mbrola voice {base.split('-')[1]!r} is not installed (run scripts/setup.sh)")


def _engine_cmd(voice: Voice, text: str, raw: Path, rate: float, txt: Path) -> tuple[list[str], bool]:
    """Command rendering ``text`` to ``raw`` WAV; second item: whether rate was applied natively."""
    if voice.engine == "espeak":
        _check_espeak_voice(voice)
        return ["espeak-ng", "-v", voice.name, "-p", str(voice.pitch), "-s", str(round(175 * rate)), "-w", str(raw), text], True
    if voice.engine == "festival":
        txt.write_text(text + "\n")
        ev = f"(begin (voice_{voice.name}) (Parameter.set 'Duration_Stretch {1.0 / rate:.4f}))"
        return ["text2wave", "-eval", ev, str(txt), "-o", str(raw)], True
    if voice.engine == "flite":
        return ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1.0 / rate:.4f}", "-t", text, "-o", str(raw)], True
    if voice.engine == "pico":
        return ["pico2wave", "-l", voice.name, "-w", str(raw), text], False
    raise SynthesisError(f"{voice.id}: unknown engine {voice.engine!r}")


def synthesize(voice: Voice, text: str, out: str | Path, rate: float = 1.0) -> None:
    """Render ``text`` with ``voice`` at speaking-rate factor ``rate`` into FLAC file ``out``.

    The file appears atomically (written to a temp name, then renamed): an interrupted call
    never leaves a truncated ``out``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dsatok-tts-") as td:
        raw, txt = Path(td) / "raw.wav", Path(td) / "in.txt"
        if voice.engine in NEURAL_ENGINES:
            from .kokoro import render_wav

            render_wav(voice, text, raw, rate)
            native_rate = True
        else:
            cmd, native_rate = _engine_cmd(voice, text, raw, rate, txt)
            _run(cmd, voice)
        if not raw.exists() or raw.stat().st_size < 1000:
            raise SynthesisError(f"{voice.id}: engine produced no audio for {text[:40]!r}")
        tmp = out.with_name(f".{out.name}.part.flac")
        fx: list[str] = []
        if voice.shift_cents:
            fx += ["pitch", str(voice.shift_cents)]
        if not native_rate and abs(rate - 1.0) > 1e-3:
            fx += ["tempo", "-s", f"{rate:.4f}"]
        # trim leading/trailing silence, keep 0.15 s margins, peak-normalise, resample.
        fx += ["silence", "1", "0.02", "0.3%", "reverse", "silence", "1", "0.02", "0.3%", "reverse",
               "pad", "0.15", "0.15", "gain", "-n", "-3", "rate", "-v", "16000"]
        sox = ["sox", "-D", "-V1", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(tmp)] + fx
        _run(sox, voice)
        os.replace(tmp, out)
