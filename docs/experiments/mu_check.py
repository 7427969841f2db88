"""WER of a prior decoder's mel alone (mu -> vocoder) on N test utterances spread evenly over a
corpus's test split, by Whisper tiny.en and base:

    python3 docs/experiments/mu_check.py MODEL N CORPUS
"""
import sys, torch
from dsatok import DSATokenizer
from dsatok.data.batches import load_cut_audio
from dsatok.data.manifests import load_cuts
from dsatok.eval.asr import load_asr
from dsatok.judges.text import wer
torch.set_num_threads(1)
m = DSATokenizer.from_pretrained(sys.argv[1]); n = int(sys.argv[2])
cuts = list(load_cuts(sys.argv[3], "test"))
cuts = cuts[:: max(1, len(cuts) // n)][:n]
judges = {k: load_asr(k) for k in ("tiny", "base")}
refs, hyps = [], {k: [] for k in judges}
for c in cuts:
    (y,) = m.reconstruct(torch.from_numpy(load_cut_audio(c)), prior_only=True)
    refs.append(c.supervisions[0].text)
    for k, a in judges.items():
        hyps[k].append(a.transcribe(y.numpy()))
print(sys.argv[1], n, " ".join(f"WER {k} {wer(refs, h):.3f}" for k, h in hyps.items()), "|", hyps["tiny"][:3])
