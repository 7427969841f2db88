"""Does a *short* flow from μ add the voice without losing the words? (SDEdit-style truncated start)

The decoder's flow runs from ``x_0 = μ + σε`` (t = 0) to the mel (t = 1) along
``x_t = (1 - t) x_0 + t x_1``. Starting at ``t_0 > 0`` from ``μ + (1 - t_0) σε`` (the path's point
when the target is μ) and integrating only ``[t_0, 1]`` lets the DiT change μ less. For N test
utterances spread over a corpus's test split, each ``t_0`` is decoded with Euler steps and scored by
WER (Whisper tiny.en, base) and SIM (resemblyzer, to the input); ``t_0 = 1`` is μ alone:

    python3 docs/experiments/flow_tstart.py MODEL N CORPUS --t0 0,0.5,0.8,1 --steps 4 --cfg 1
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

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model")
ap.add_argument("n", type=int)
ap.add_argument("corpus")
ap.add_argument("--t0", default="0,0.5,0.8,1", help="comma list of start times in [0, 1]")
ap.add_argument("--steps", type=int, default=4, help="Euler steps over [t0, 1]")
ap.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance scale")
a = ap.parse_args()
torch.set_num_threads(1)
m = DSATokenizer.from_pretrained(a.model)
dec = m.decoder
if dec.cfg.start != "prior":
    raise SystemExit(f"{a.model}: its flow does not start from the prior")
t0s = [float(x) for x in a.t0.split(",")]
judges = {name: load_asr(name) for name in ("tiny", "base")}
spk = load_speaker_encoder()
cuts = spread(list(load_cuts(a.corpus, "test")), a.n)
hyps = {t: {j: [] for j in judges} for t in t0s}
sims: dict[float, list[float]] = {t: [] for t in t0s}
refs = []


@torch.no_grad()
def decode(wav: torch.Tensor, t0: float, gen: torch.Generator) -> torch.Tensor:
    """``wav [N]`` -> log-mel ``[n_mels, T]`` from a flow started at ``t0``."""
    toks = m.encode(wav)
    t = m.acoustic.mel(wav[None], torch.tensor([wav.shape[0]]))[0].shape[-1]
    ctx = m.decoder_context(toks, t)
    x = ctx.mu + (1 - t0) * dec.cfg.start_sigma * torch.randn(ctx.mu.shape, generator=gen)
    unc = dec.unconditional(ctx)
    grid = torch.linspace(t0, 1.0, a.steps + 1)
    for i in range(a.steps if t0 < 1 else 0):
        tv = torch.full((1,), float(grid[i]))
        v = dec.velocity(x, tv, ctx)
        if a.cfg:
            v = v + a.cfg * (v - dec.velocity(x, tv, unc))
        x = x + float(grid[i + 1] - grid[i]) * v
    return dec.denormalize(x)[0]


for c in cuts:
    wav = torch.from_numpy(load_cut_audio(c))
    refs.append(c.supervisions[0].text)
    e_in = spk.embed(wav.numpy())
    for t0 in t0s:
        mel = decode(wav, t0, torch.Generator().manual_seed(0))
        y = m.vocoder.synthesize(mel[None])[0].clamp(-1, 1).numpy()
        sims[t0].append(cosine(e_in, spk.embed(y)))
        for j, asr in judges.items():
            hyps[t0][j].append(asr.transcribe(y))
print(f"{len(cuts)} utterances of {a.corpus} test; {a.steps} Euler steps over [t0, 1], CFG {a.cfg}")
print("| t0 | WER tiny.en | WER base | SIM |\n|---|---|---|---|")
for t0 in t0s:
    print(f"| {t0:g} | {wer(refs, hyps[t0]['tiny']):.3f} | {wer(refs, hyps[t0]['base']):.3f} | {np.mean(sims[t0]):.3f} |")
