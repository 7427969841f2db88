"""Per-clip ASR check of a synthesised corpus: keep a clip only when an ASR model understands it.

Neural voices (Kokoro style mixtures and swaps especially) sometimes mumble, skip or repeat words;
the per-voice WER of ``dsatok corpus voices`` cannot catch a single bad clip. ``dsatok corpus
build`` therefore transcribes every clip of the checked engines with an ASR model the caller
passes in (the CLI: the offline faster-whisper, one thread per worker) and drops the clip when
its WER exceeds ``clip_max_wer``. The verdicts are kept in ``OUT/asr_check.jsonl`` (one JSON
object per line: path, text, hyp, wer), so a resumed build neither re-synthesises rejected clips
nor re-checks accepted ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

__all__ = ["CHECK_FILE", "cached_asr", "clip_wer", "load_checks", "append_checks"]

CHECK_FILE = "asr_check.jsonl"


_ASRS: dict[str, object] = {}


def cached_asr(factory: Callable[[], object]) -> object:
    """``factory()``, built once per process (synthesis workers each keep their own model; the
    factory arrives pickled with every job, so it is keyed by its ``repr``)."""
    key = repr(factory)
    if key not in _ASRS:
        _ASRS[key] = factory()
    return _ASRS[key]


def clip_wer(path: str | Path, text: str, asr) -> tuple[float, str]:
    """(WER of ``asr``'s transcript of audio file ``path`` against ``text``, the transcript).

    ``asr``: anything with ``transcribe(wav [N] float32 16 kHz) -> str``."""
    from ..audio import load
    from ..judges.text import wer

    hyp = asr.transcribe(load(str(path)))
    return wer([text], [hyp]), hyp


def load_checks(root: str | Path) -> dict[str, dict]:
    """Verdicts recorded in ``root/asr_check.jsonl``: relative clip path -> record (last one wins;
    a truncated last line from an interrupted build is ignored)."""
    p = Path(root) / CHECK_FILE
    out: dict[str, dict] = {}
    if not p.exists():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
            out[str(rec["path"])] = rec
        except (ValueError, KeyError, TypeError):
            continue
    return out


def append_checks(root: str | Path, records: list[dict]) -> None:
    """Append verdicts (each flushed whole, so an interruption loses at most the last line)."""
    if not records:
        return
    with open(Path(root) / CHECK_FILE, "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        f.flush()
