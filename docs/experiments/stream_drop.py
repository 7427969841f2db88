"""Does a DSA decoder use each stream? Reconstruct test utterances with the semantic and/or the
acoustic stream dropped (CFG 0, the same noise for every variant) and print the mel L1 to the input.

    python3 docs/experiments/stream_drop.py --corpus CORPUS [--model DIR] [--limit 10] [--steps 16]

Variants: full, no_sem (e_s dropped), no_ac (e_a dropped), none (both), shuffled_sem (the
semantic tokens permuted in time). A decoder that reads its semantic tokens loses much more
without them (and with them shuffled) than one that takes its content from the acoustic tokens.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from tqdm import tqdm

from dsatok.audio import MelFrontend
from dsatok.data.manifests import load_cuts
from dsatok.models.flow_decoder import sample
from dsatok.tokenizer import DSATokenizer
from dsatok.data.batches import load_cut_audio

VARIANTS = ("full", "no_sem", "no_ac", "none", "shuffled_sem")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m = DSATokenizer.from_pretrained(a.model)
    fe = MelFrontend(m.decoder.cfg.mel)
    res: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for c in tqdm(list(load_cuts(a.corpus, a.split))[: a.limit], desc="utterances"):
        x = torch.from_numpy(load_cut_audio(c))
        mel = fe(x[None])[0]
        tok = m.encode(x)
        sem = tok[0].semantic
        t = mel.shape[-1]
        for k in VARIANTS:
            shuffled = sem[:, torch.randperm(sem.shape[1], generator=torch.Generator().manual_seed(0))]
            ctx = m.decoder_context(dataclasses.replace(tok, semantic=shuffled) if k == "shuffled_sem" else tok, t,
                                    drop_sem=torch.tensor([k in ("no_sem", "none")]),
                                    drop_ac=torch.tensor([k in ("no_ac", "none")]))
            out = sample(m.decoder, ctx, t, steps=a.steps, cfg_scale=0, generator=torch.Generator().manual_seed(0))
            res[k].append(float((out[0] - mel[0, :, : out.shape[-1]]).abs().mean()))
    for k, v in res.items():
        print(f"{k:14s} mel L1 {np.mean(v):.3f}  (n={len(v)})")


if __name__ == "__main__":
    import sys

    from dsatok import AudioError, ConfigError
    from dsatok.data.manifests import CorpusError
    from dsatok.models.io import ModelLoadError

    try:
        main()
    except (AudioError, ConfigError, CorpusError, ModelLoadError, FileNotFoundError) as e:  # bad corpus / model: one line
        sys.exit(f"stream_drop: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
