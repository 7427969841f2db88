"""Post-filters of the prior's mel μ: do they buy voice (SIM) without losing words?

For N test utterances spread over a corpus's test split (reconstruction: each utterance's own
tokens), the model's μ is vocoded as it is and after each post-filter, then scored by WER (Whisper
tiny.en and base), SIM (resemblyzer, to the input) and mel L1 to the true mel:

- ``--gv``: the deterministic ones: sharpening (μ's envelope + a × its detail, a = 1.5, 2) and
  global-variance matching of each mel bin's spread over time, to the utterance's own (an oracle)
  or to the prior's predicted voice statistics;
- each REFINER directory (``dsatok train refiner``): the refiner's output (seed 0), blends
  μ + λ (refined − μ) for ``--blend`` λ, and for refiners that read the aligned acoustic latent,
  the same without it (``--no-ac``: what recombination gets).

    python3 docs/experiments/refiner_sweep.py N CORPUS [REFINER ...] [--model M] [--gv] [--blend 0.3,0.6] [--no-ac]
"""
import argparse

import numpy as np
import torch

from dsatok import DSATokenizer
from dsatok.data.batches import load_cut_audio
from dsatok.data.manifests import load_cuts, spread
from dsatok.eval.asr import load_asr
from dsatok.judges.speaker import cosine, load_speaker_encoder
from dsatok.judges.text import wer
from dsatok.models.refiner import MelRefiner, ac_at_mel_rate
from dsatok.train.refiner import smooth_mel

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("n", type=int)
ap.add_argument("corpus")
ap.add_argument("refiners", nargs="*")
ap.add_argument("--model", default=None, help="DSA-Tokenizer directory (default: the bundled one)")
ap.add_argument("--gv", action="store_true", help="also the deterministic post-filters")
ap.add_argument("--blend", default="", help="comma-separated blend weights for each refiner")
ap.add_argument("--no-ac", action="store_true", help="refiners with an acoustic input: also without it")
a = ap.parse_args()
torch.set_num_threads(1)
m = DSATokenizer.from_pretrained(a.model)
refiners = {p: MelRefiner.from_pretrained(p) for p in a.refiners}
blends = [float(x) for x in a.blend.split(",") if x]
judges = {name: load_asr(name) for name in ("tiny", "base")}
spk = load_speaker_encoder()
cuts = spread(list(load_cuts(a.corpus, "test")), a.n)
rows: dict[str, dict] = {}
texts = []
for c in cuts:
    wav = torch.from_numpy(load_cut_audio(c))
    texts.append(c.supervisions[0].text)
    e_in = spk.embed(wav.numpy())
    with torch.no_grad():
        toks = m.encode(wav)
        mel, _ = m.acoustic.mel(wav[None], torch.tensor([wav.shape[0]]))
        t = mel.shape[-1]
        ctx = m.decoder_context(toks, t)
        mu, true = ctx.mu, m.decoder.normalize(mel)
        v = {"mu": mu}
        if a.gv:
            env = smooth_mel(mu, 1.0)
            for s in (1.5, 2.0):
                v[f"sharpen x{s}"] = env + s * (mu - env)
            mm, ms = mu.mean(-1, keepdim=True), mu.std(-1, keepdim=True).clamp_min(1e-3)
            v["GV to the true spread (oracle)"] = mm + (mu - mm) * true.std(-1, keepdim=True) / ms
            n = mu.shape[1]
            v["GV to the predicted spread"] = mm + (mu - mm) * ctx.voice[:, n:, None].abs() / ms
        ac = ac_at_mel_rate(m.acoustic.embed(toks[0].acoustic), t, m.acoustic.cfg.stride)
        for p, r in refiners.items():
            y = r(mu, ctx.voice, ac if r.cfg.ac_dim else None, generator=torch.Generator().manual_seed(0))
            v[p] = y
            for lam in blends:
                v[f"{p} blend {lam}"] = mu + lam * (y - mu)
            if a.no_ac and r.cfg.ac_dim:
                v[f"{p} without ac"] = r(mu, ctx.voice, None, generator=torch.Generator().manual_seed(0))
    for k, x in v.items():
        x = m.decoder.denormalize(x)
        row = rows.setdefault(k, {"hyp": {j: [] for j in judges}, "sim": [], "l1": []})
        y = m.vocoder.synthesize(x)[0].clamp(-1, 1).numpy()
        row["sim"].append(cosine(e_in, spk.embed(y)))
        row["l1"].append(float((x[0] - mel[0]).abs().mean()))
        for j, asr in judges.items():
            row["hyp"][j].append(asr.transcribe(y))
print(f"{len(cuts)} utterances of {a.corpus} test (reconstruction)")
print("| mel | WER tiny.en | WER base | SIM | mel L1 |\n|---|---|---|---|---|")
for k, row in rows.items():
    w = {j: wer(texts, h) for j, h in row["hyp"].items()}
    print(f"| {k} | {w['tiny']:.3f} | {w['base']:.3f} | {np.mean(row['sim']):.3f} | {np.mean(row['l1']):.3f} |")
