"""Phoneme transcripts from espeak-ng, for a phoneme CTC target in stage 1.

``espeak-ng -q -x --sep=| -v VOICE TEXT`` prints espeak's ASCII phoneme mnemonics, phonemes joined
by ``|`` and words by spaces (clause breaks start new lines). Stress marks (``'`` ``,``), pauses
(``_``, ``_:``, ``_!``) and the ``;`` modifier are dropped, so a transcript is a list of phoneme
symbols with ``" "`` between words: ``"the cat" -> ["D", "@2", " ", "k", "a", "t"]``.

Calls are memoised per text and, with ``cache``, kept in a JSON file (written atomically), so a
corpus is phonemised once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..files import atomic_write_json

__all__ = ["Phonemizer", "PhonemizerError", "parse_espeak", "WORD"]

WORD = " "  # the word-boundary symbol in a transcript
SEP = "|"  # espeak's phoneme separator (``_`` would collide with its pause symbols)
_MARKS = "',%="  # espeak -x stress / syllable marks (dropped)
_FORMAT = 2  # cache format: bump when the parsing changes


class PhonemizerError(RuntimeError):
    """espeak-ng is missing or failed on a text."""


def parse_espeak(out: str) -> list[str]:
    """espeak-ng ``-x --sep=|`` output -> phoneme symbols with :data:`WORD` between words."""
    syms: list[str] = []
    for word in out.split():
        phones = [p.strip(_MARKS) for p in word.split(SEP)]
        phones = [p for p in phones if p and not p.startswith("_") and p != ";"]
        if not phones:
            continue
        if syms:
            syms.append(WORD)
        syms.extend(phones)
    return syms


class Phonemizer:
    """``texts -> [[symbol, ...], ...]`` through espeak-ng, memoised (and cached on disk with ``cache``)."""

    def __init__(self, voice: str = "en-us", cache: str | Path | None = None, jobs: int = 4) -> None:
        self.voice = voice
        self.jobs = max(1, jobs)
        self.cache = Path(cache) if cache else None
        self._memo: dict[str, list[str]] = {}
        if self.cache is not None and self.cache.is_file():
            try:
                data = json.loads(self.cache.read_text())
                if data.get("voice") == voice and data.get("format") == _FORMAT:
                    self._memo = {k: list(v) for k, v in data.get("phonemes", {}).items()}
            except (OSError, ValueError):
                self._memo = {}  # a damaged cache is rebuilt

    def _one(self, text: str) -> list[str]:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise PhonemizerError("espeak-ng is not installed (bash scripts/setup.sh installs it)")
        try:
            r = subprocess.run([exe, "-q", "-x", f"--sep={SEP}", "-v", self.voice, text], capture_output=True,
                               text=True, timeout=60, check=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            raise PhonemizerError(f"espeak-ng failed on {text[:60]!r}: {e}") from None
        return parse_espeak(r.stdout)

    def __call__(self, texts: list[str]) -> list[list[str]]:
        todo = sorted({t for t in texts if t not in self._memo})
        if todo:
            with ThreadPoolExecutor(self.jobs) as ex:
                for t, p in zip(todo, ex.map(self._one, todo)):
                    self._memo[t] = p
            self._save()
        return [self._memo[t] for t in texts]

    def _save(self) -> None:
        if self.cache is None:
            return
        atomic_write_json(self.cache, {"voice": self.voice, "format": _FORMAT, "phonemes": self._memo}, indent=None)
