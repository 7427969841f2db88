"""Text normalisation for WER, applied identically to reference and hypothesis.

Whisper-style basic English normalisation: lower case, spelled-out symbols, punctuation removed
(apostrophes inside words kept), whitespace collapsed, a few spelling variants unified.
"""

from __future__ import annotations

import re

__all__ = ["normalize_text", "wer", "cer", "symbol_error_rate", "symbol_word_error_rate"]

_SUBS = {"okay": "ok", "mr": "mister", "mrs": "missus", "dr": "doctor", "&": "and", "%": "percent"}


def normalize_text(s: str) -> str:
    """Normalise ``s`` for scoring: ``"Hello, World!"`` -> ``"hello world"``."""
    s = s.lower().replace("\u2019", "'").replace("-", " ")
    s = re.sub(r"[^\w\s']", " ", s)
    s = re.sub(r"(?<!\w)'|'(?!\w)", " ", s)
    words = [_SUBS.get(w, w) for w in s.split()]
    return " ".join(words)


def _edits(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus word error rate: total word edits / total reference words (after normalisation)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errs = words = 0
    for r, h in zip(refs, hyps):
        rw, hw = normalize_text(r).split(), normalize_text(h).split()
        errs += _edits(rw, hw)
        words += len(rw)
    return errs / max(words, 1)


def cer(refs: list[str], hyps: list[str]) -> float:
    """Corpus character error rate over normalised text (spaces count as characters)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errs = chars = 0
    for r, h in zip(refs, hyps):
        rc, hc = list(normalize_text(r)), list(normalize_text(h))
        errs += _edits(rc, hc)
        chars += len(rc)
    return errs / max(chars, 1)


def symbol_error_rate(refs: list[list[str]], hyps: list[list[str]]) -> float:
    """Corpus error rate over symbol sequences (e.g. phonemes, word boundaries included)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errs = sum(_edits(list(r), list(h)) for r, h in zip(refs, hyps))
    return errs / max(sum(len(r) for r in refs), 1)


def symbol_word_error_rate(refs: list[list[str]], hyps: list[list[str]], boundary: str = " ") -> float:
    """Word error rate where a word is the symbol run between ``boundary`` symbols (a phoneme spelling)."""

    def words(seq: list[str]) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        cur: list[str] = []
        for sym in list(seq) + [boundary]:
            if sym == boundary:
                if cur:
                    out.append(tuple(cur))
                cur = []
            else:
                cur.append(sym)
        return out

    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errs = total = 0
    for r, h in zip(refs, hyps):
        rw, hw = words(r), words(h)
        errs += _edits(rw, hw)  # type: ignore[arg-type]
        total += len(rw)
    return errs / max(total, 1)
