"""Shared fixtures: a tiny synthetic corpus (espeak + mbrola voices only, built once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


def tiny_options(**kw):
    from dsatok.data.corpus import BuildOptions

    base = dict(hours=0.02, seed=7, jobs=2, test_speakers=3, dev_speakers=2, recomb_pairs=6,
                engines=("espeak", "mbrola"))
    base.update(kw)
    return BuildOptions(**base)


def tiny_voices():
    """Nine fast voices (espeak variants and mbrola), enough for 3 test / 2 dev / 4 train speakers."""
    from dsatok.data.voices import Voice

    names = [("en-us+m1", "M"), ("en-gb+f3", "F"), ("en-us+Andy", "M"), ("en-gb+klatt4", "F"),
             ("mb-us1", "F"), ("mb-us2", "M"), ("mb-en1", "M"), ("mb-de5-en", "F"), ("mb-fr1-en", "M")]
    return [Voice("espeak", n, g) for n, g in names]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    from dsatok.data.corpus import build_corpus

    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out, tiny_options(), voices=tiny_voices(), progress=False, log=lambda *a: None)
    return out
