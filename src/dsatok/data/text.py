"""Offline English sentence source for the synthetic corpus.

Sentences come from the fortune files of Debian's ``fortunes`` / ``fortunes-min`` packages
(``/usr/share/games/fortunes``): quotations, proverbs and prose in plain English. Each entry is
split into sentences, normalised to what every synthesiser reads the same way (letters, spaces,
apostrophes and simple punctuation; no digits, acronyms or abbreviations) and kept when it has
5–25 words. The normalised sentence is exactly the text given to the engine and the transcript.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["FORTUNE_DIRS", "fortune_entries", "split_sentences", "normalize_sentence", "load_sentences"]

FORTUNE_DIRS = ("/usr/share/games/fortunes",)
_SKIP_FILES = {"art", "ascii-art", "translate-me", "perl"}
_ABBREV = re.compile(r"\b(mr|mrs|ms|dr|st|jr|sr|vs|etc|eg|ie|prof|gen|col|capt|lt|sgt|rev|inc|ltd|co|no|vol|ch|ft|oz|lb)\b\.?", re.I)
_ALLOWED = re.compile(r"^[A-Za-z' ,.?!;:-]+$")
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def fortune_entries(dirs: Iterable[str | Path] = FORTUNE_DIRS) -> Iterator[str]:
    """Yield fortune entries (``%``-separated blocks) from every plain fortune file, in order."""
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.suffix or f.name in _SKIP_FILES or not f.is_file():
                continue
            try:
                text = f.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for block in text.split("\n%\n"):
                lines = [ln for ln in block.splitlines() if not re.match(r"^\s*(--|—)", ln)]
                yield " ".join(ln.strip() for ln in lines)


def split_sentences(entry: str) -> list[str]:
    """Split a text block into sentences at ``.``, ``!`` or ``?`` followed by a capital."""
    entry = re.sub(r"\s+", " ", entry).strip()
    return [s.strip() for s in _SENT_SPLIT.split(entry) if s.strip()]


def normalize_sentence(s: str, min_words: int = 5, max_words: int = 25) -> str | None:
    """Return the engine-ready form of sentence ``s``, or None when it is unsuitable.

    Unsuitable: digits, symbols, acronyms (two capitals in a word), abbreviations, a word count
    outside ``[min_words, max_words]``, or no final ``.``, ``!`` or ``?``.
    """
    s = s.replace("\u2019", "'").replace("`", "'")
    s = re.sub(r"[\"\u201c\u201d]", "", s)
    s = re.sub(r"''+", "", s)
    s = re.sub(r"\s+", " ", s).strip().strip("'").strip()
    s = re.sub(r"\s+([,.?!;:])", r"\1", s)
    if not s or s[-1] not in ".!?" or not _ALLOWED.match(s):
        return None
    if _ABBREV.search(s) or "--" in s or ".." in s or " -" in s or "- " in s:
        return None
    words = s.split()
    if not min_words <= len(words) <= max_words:
        return None
    for w in words:
        core = w.strip(",.?!;:'-")
        if not core or sum(c.isupper() for c in core) > 1 or (len(core) == 1 and core not in "aAI"):
            return None
        if core.startswith("'") or core.endswith("'") or not core[0].isalpha():
            return None
    if not s[0].isupper():
        return None
    return s


def load_sentences(dirs: Iterable[str | Path] = FORTUNE_DIRS, min_words: int = 5, max_words: int = 25) -> list[str]:
    """All distinct usable sentences (case-insensitive dedup), in a stable sorted order."""
    seen: dict[str, str] = {}
    for entry in fortune_entries(dirs):
        for sent in split_sentences(entry):
            n = normalize_sentence(sent, min_words, max_words)
            if n is not None:
                seen.setdefault(n.lower(), n)
    return sorted(seen.values())
