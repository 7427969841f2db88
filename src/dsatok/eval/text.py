"""Text normalisation for WER, applied identically to reference and hypothesis.

Whisper-style basic English normalisation: lower case, spelled-out symbols, punctuation removed
(apostrophes inside words kept), whitespace collapsed, a few spelling variants unified.
"""

from __future__ import annotations

import re

__all__ = ["normalize_text", "wer", "cer"]

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
