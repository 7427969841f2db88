"""``dsatok demo OUT``: the README's main job until a bundled model exists.

Builds (or resumes) a small offline corpus, measures it (speaker separability, ASR floor), and
writes one recombination example: content source, voice source and the corpus's true target
(content's text in the voice's settings) as WAVs plus a PNG of their log-mel spectrograms.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build a small corpus, measure it, and show a recombination example")
    p.add_argument("out", nargs="?", default="dsatok-demo", help="output directory (default ./dsatok-demo)")
    p.add_argument("--hours", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--wer-limit", type=int, default=40)
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..audio import MelFrontend, load, save
    from ..data.corpus import BuildOptions, build_corpus
    from ..eval.corpus_report import corpus_report
    from ..eval.plots import plot_mels

    out = Path(a.out)
    corpus = out / "corpus"
    meta = build_corpus(corpus, BuildOptions(hours=a.hours, seed=a.seed, jobs=a.jobs))
    rep = corpus_report(corpus, wer_limit=a.wer_limit)
    pairs = [json.loads(x) for x in (corpus / "recomb/pairs.jsonl").read_text().splitlines()]
    if not pairs:
        print("no recombination pairs in the corpus")
        return 1
    p = pairs[0]
    fe = MelFrontend()
    mels = {}
    for key, label in (("content_path", "content source S"), ("voice_path", "voice source A"),
                       ("target_path", "true target: S's text, A's voice")):
        wav = load(corpus / p[key])
        name = key.replace("_path", "")
        save(out / f"{name}.wav", wav)
        mels[f"{label}  ({Path(p[key]).stem})"] = fe(torch.from_numpy(wav))[0][0].numpy()
    plot_mels(mels, out / "mels.png", title=f'"{p["text"]}"')
    summary = {"corpus": meta["counts"], "recomb_pairs": meta["recomb_pairs"],
               "speaker_accuracy_test_among_all": rep["speaker_accuracy_test_among_all"],
               "wer_clean_test": rep["wer_clean_test"], "example": {k: p[k] for k in ("content", "voice", "text")},
               "outputs": [str(out / f) for f in ("content.wav", "voice.wav", "target.wav", "mels.png")]}
    print(json.dumps(summary, indent=1))
    return 0
