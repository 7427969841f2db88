"""Quick reconstruction WER of the first N test utterances of a corpus, by both Whisper judges,
for the full decoder (8 steps) and, with a semantic prior, the prior's mel alone:

    python3 docs/experiments/quick_recon.py MODEL N [CORPUS]      # CORPUS default /work/corpora/c4

Each reconstruction is decoded once and transcribed by Whisper tiny.en and base.
"""
import sys

import torch

from dsatok import DSATokenizer
from dsatok.data.batches import load_cut_audio
from dsatok.data.manifests import load_cuts
from dsatok.eval.asr import load_asr
from dsatok.judges.text import wer

torch.set_num_threads(1)
m = DSATokenizer.from_pretrained(sys.argv[1])
judges = {name: load_asr(name) for name in ("tiny", "base")}
corpus = sys.argv[3] if len(sys.argv) > 3 else "/work/corpora/c4"
cuts = list(load_cuts(corpus, "test"))[: int(sys.argv[2])]
variants = [dict(steps=8)] + ([dict(prior_only=True)] if m.decoder.cfg.prior else [])
for kw in variants:
    refs, hyps = [], {k: [] for k in judges}
    for c in cuts:
        (y,) = m.reconstruct(torch.from_numpy(load_cut_audio(c)), **kw)
        refs.append(c.supervisions[0].text)
        for k, asr in judges.items():
            hyps[k].append(asr.transcribe(y.numpy()))
    print(kw, " ".join(f"WER {k} {wer(refs, h):.3f}" for k, h in hyps.items()), "|", hyps["tiny"][0], "|",
          hyps["tiny"][1], flush=True)
