"""Quick reconstruction WER of N test utterances of a corpus, by both Whisper judges, for the full
decoder (8 steps) and, with a semantic prior, the prior's mel alone (μ → vocoder):

    python3 docs/experiments/quick_recon.py MODEL N [CORPUS]      # CORPUS default /work/corpora/c4
    python3 docs/experiments/quick_recon.py MODEL 16 c4n --spread --prior-only

The first N utterances, or with ``--spread`` N spread evenly over the split; ``--prior-only``
skips the flow decode. Each reconstruction is decoded once and transcribed by Whisper tiny.en and base.
"""
import argparse

import torch

from dsatok import DSATokenizer
from dsatok.data.batches import load_cut_audio
from dsatok.data.manifests import load_cuts
from dsatok.eval.asr import load_asr
from dsatok.judges.text import wer

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model")
ap.add_argument("n", type=int)
ap.add_argument("corpus", nargs="?", default="/work/corpora/c4")
ap.add_argument("--spread", action="store_true", help="N utterances spread over the split, not the first N")
ap.add_argument("--prior-only", action="store_true", help="only the prior's mel (μ), no flow decode")
a = ap.parse_args()
torch.set_num_threads(1)
m = DSATokenizer.from_pretrained(a.model)
judges = {name: load_asr(name) for name in ("tiny", "base")}
cuts = list(load_cuts(a.corpus, "test"))
cuts = cuts[:: max(1, len(cuts) // a.n)][: a.n] if a.spread else cuts[: a.n]
variants = ([] if a.prior_only else [dict(steps=8, prior_only=False)]) + ([dict(prior_only=True)] if m.decoder.cfg.prior else [])
for kw in variants:
    refs, hyps = [], {k: [] for k in judges}
    for c in cuts:
        (y,) = m.reconstruct(torch.from_numpy(load_cut_audio(c)), **kw)
        refs.append(c.supervisions[0].text)
        for k, asr in judges.items():
            hyps[k].append(asr.transcribe(y.numpy()))
    print(kw, " ".join(f"WER {k} {wer(refs, h):.3f}" for k, h in hyps.items()), "|", hyps["tiny"][0], "|",
          hyps["tiny"][1], flush=True)
