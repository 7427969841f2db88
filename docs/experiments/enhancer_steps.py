"""How many ODE steps should a latent enhancer take? Mix the first test utterances with the
evaluation noises (as ``dsatok eval enhance`` does) and print the standardised latent MSE to the
clean latent of the noisy latent and of the enhancer's output at several step counts.

    python3 docs/experiments/enhancer_steps.py --model ENHANCER_DIR --corpus CORPUS [--limit 15] [--steps 1,2,4,8,16]

A narrow noisy prior (``prior=noisy``, σ ≲ 0.1) is best read out in one step; a gaussian prior
needs many (its one-step output is the blurry regression mean).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from tqdm import tqdm

from dsatok.data.manifests import load_cuts
from dsatok.eval.dasheng import enhancement_items
from dsatok.models.enhancer import SpeechEnhancer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--limit", type=int, default=15)
    ap.add_argument("--steps", default="1,2,4,8,16")
    a = ap.parse_args()
    se = SpeechEnhancer.from_pretrained(a.model)
    enh, tok = se.enhancer, se.tokenizer
    steps = [int(s) for s in a.steps.split(",")]
    res: dict[str, list[float]] = {"noisy": [], **{f"{s} steps": [] for s in steps}}
    with torch.no_grad():
        items = enhancement_items(list(load_cuts(a.corpus, "test"))[: a.limit], 0)
        for _, x, noisy, _, _ in tqdm(items, desc="utterances"):
            zc, zn = tok.encode(torch.from_numpy(x)).unified, tok.encode(torch.from_numpy(noisy)).unified
            t = min(zc.shape[1], zn.shape[1])
            zc, zn = zc[:, :t], zn[:, :t]
            res["noisy"].append(enh.latent_mse(zn, zc))
            for s in steps:
                res[f"{s} steps"].append(enh.latent_mse(enh.enhance(zn, steps=s, seed=0), zc))
    for k, v in res.items():
        print(f"{k:>9}: latent MSE {np.mean(v):.4f}")


if __name__ == "__main__":
    main()
