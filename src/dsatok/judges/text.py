"""Text normalisation for WER, applied identically to reference and hypothesis.

Whisper-style basic English normalisation: lower case, spelled-out symbols, punctuation removed
(apostrophes inside words kept), whitespace collapsed, a few spelling variants unified.
"""

from __future__ import annotations

import re

__all__ = ["normalize_text", "wer", "cer", "symbol_error_rate", "symbol_word_error_rate", "align_words",
           "wer_by_vocabulary"]

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


def align_words(ref: list[str], hyp: list[str]) -> tuple[list[bool], int]:
    """Levenshtein alignment of two word lists: ``(ref_correct, insertions)``.

    ``ref_correct[i]`` is True when reference word ``i`` is matched by an identical hypothesis word
    (False: substituted or deleted); ``insertions`` counts the hypothesis words matched to nothing.
    ``sum(not c) + insertions`` equals the edit distance.
    """
    n, m = len(ref), len(hyp)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    correct = [False] * n
    ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            correct[i - 1] = ref[i - 1] == hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and d[i][j] == d[i - 1][j] + 1:
            i -= 1  # deletion: correct[i] stays False
        else:
            ins += 1
            j -= 1
    return correct, ins


def wer_by_vocabulary(refs: list[str], hyps: list[str], vocabulary: set[str]) -> dict[str, float]:
    """Split the word errors by whether the reference word occurs in ``vocabulary`` (e.g. the
    training texts' words, normalised).

    Returns ``oov_rate`` (share of reference words outside the vocabulary), ``wer_in_vocab`` and
    ``wer_oov`` (substitutions + deletions of those words / their count) and ``insertion_rate``
    (inserted words / all reference words); the three error parts add up to :func:`wer`.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    n_in = n_oov = e_in = e_oov = ins = 0
    for r, h in zip(refs, hyps):
        rw, hw = normalize_text(r).split(), normalize_text(h).split()
        ok, k = align_words(rw, hw)
        ins += k
        for w, c in zip(rw, ok):
            if w in vocabulary:
                n_in += 1
                e_in += not c
            else:
                n_oov += 1
                e_oov += not c
    total = max(n_in + n_oov, 1)
    return {"oov_rate": n_oov / total, "wer_in_vocab": e_in / max(n_in, 1), "wer_oov": e_oov / max(n_oov, 1),
            "insertion_rate": ins / total}
