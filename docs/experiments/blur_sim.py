"""Is the prior's low SIM a missing *voice* or a missing *fine structure*?

For N test utterances spread over a corpus's test split, four mels are vocoded and scored by SIM
(resemblyzer, to the input), WER (Whisper tiny.en and base) and mel L1 to the true mel:
the true mel; its smoothed envelope (a gaussian of ``--sf`` mel bins along frequency and ``--st``
frames along time: the harmonics and fast pitch / energy detail removed, the voice's spectral
envelope kept); the model's prior mel μ; and μ with the true mel's fine structure added back
(μ + true − envelope). If the envelope keeps SIM and μ + fine structure gains it, what μ lacks is
that detail, which a regression to the mean cannot give, not a better voice vector:

    python3 docs/experiments/blur_sim.py MODEL N CORPUS      # e.g. dsa 30 corpora/c4n
"""
import argparse

import numpy as np
import torch
import torch.nn.functional as F

from dsatok import DSATokenizer
from dsatok.data.batches import load_cut_audio
from dsatok.data.manifests import load_cuts, spread
from dsatok.eval.asr import load_asr
from dsatok.judges.speaker import cosine, load_speaker_encoder
from dsatok.judges.text import wer

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model")
ap.add_argument("n", type=int)
ap.add_argument("corpus")
ap.add_argument("--sf", type=float, default=2.0, help="gaussian sigma along frequency, mel bins")
ap.add_argument("--st", type=float, default=2.0, help="gaussian sigma along time, frames")
a = ap.parse_args()
torch.set_num_threads(1)
m = DSATokenizer.from_pretrained(a.model)
judges = {name: load_asr(name) for name in ("tiny", "base")}
spk = load_speaker_encoder()
cuts = spread(list(load_cuts(a.corpus, "test")), a.n)
names = ("true mel", "envelope of the true mel", "prior mu", "mu + true fine structure")
rows = {k: {"hyp": {j: [] for j in judges}, "sim": [], "l1": []} for k in names}
refs = []


def gauss(sigma: float) -> torch.Tensor:
    r = max(1, int(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1) / sigma) ** 2)
    return k / k.sum()


def smooth(mel: torch.Tensor) -> torch.Tensor:
    """``mel [n_mels, T]`` blurred along frequency then time (edges replicated)."""
    x = mel
    for dim, sigma in ((0, a.sf), (1, a.st)):
        if sigma <= 0:
            continue
        k = gauss(sigma)
        y = x.transpose(0, 1) if dim == 0 else x  # rows: the axis to keep
        y = F.conv1d(F.pad(y[:, None], (len(k) // 2,) * 2, mode="replicate"), k[None, None])[:, 0]
        x = y.transpose(0, 1) if dim == 0 else y
    return x


for c in cuts:
    wav = torch.from_numpy(load_cut_audio(c))
    refs.append(c.supervisions[0].text)
    e_in = spk.embed(wav.numpy())
    with torch.no_grad():
        toks = m.encode(wav)
        mel, _ = m.acoustic.mel(wav[None], torch.tensor([wav.shape[0]]))
        ctx = m.decoder_context(toks, mel.shape[-1])
        mu = m.decoder.denormalize(ctx.mu)[0]
    true = mel[0]
    env = smooth(true)
    variants = dict(zip(names, (true, env, mu, mu + true - env)))
    for k, x in variants.items():
        y = m.vocoder.synthesize(x[None])[0].clamp(-1, 1).numpy()
        rows[k]["sim"].append(cosine(e_in, spk.embed(y)))
        rows[k]["l1"].append(float((x - true).abs().mean()))
        for j, asr in judges.items():
            rows[k]["hyp"][j].append(asr.transcribe(y))
print(f"{len(cuts)} utterances of {a.corpus} test; envelope: gaussian sigma {a.sf} bins x {a.st} frames")
print("| mel | WER tiny.en | WER base | SIM | mel L1 to true |\n|---|---|---|---|---|")
for k, r in rows.items():
    print(f"| {k} | {wer(refs, r['hyp']['tiny']):.3f} | {wer(refs, r['hyp']['base']):.3f} | "
          f"{np.mean(r['sim']):.3f} | {np.mean(r['l1']):.3f} |")
