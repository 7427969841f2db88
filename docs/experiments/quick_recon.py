"""Quick reconstruction WER of the first N c4 test utterances: python3 quick_recon.py MODEL N tiny|base"""
import sys, torch
torch.set_num_threads(1)
from dsatok import DSATokenizer
from dsatok.eval.asr import load_asr
from dsatok.judges.text import wer
from dsatok.data.manifests import load_cuts
from dsatok.data.batches import load_cut_audio
m = DSATokenizer.from_pretrained(sys.argv[1])
asr = load_asr(sys.argv[3])
cuts = list(load_cuts("sys.argv[4] if len(sys.argv) > 4 else "/work/corpora/c4"", "test"))[: int(sys.argv[2])]
variants = [dict(steps=8), dict(prior_only=True)]
for kw in variants:
    refs, hyps = [], []
    for c in cuts:
        (y,) = m.reconstruct(torch.from_numpy(load_cut_audio(c)), **kw)
        refs.append(c.supervisions[0].text); hyps.append(asr.transcribe(y.numpy()))
    print(kw, "WER", round(wer(refs, hyps), 3), "|", hyps[0], "|", hyps[1], flush=True)
