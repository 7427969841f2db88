"""Which part of the prior's voice path limits SIM: the voice *statistics* (per-bin mel mean / std,
the only voice a renderer prior gets) or their *prediction* from the pooled acoustic tokens?

For N test utterances spread over a corpus's test split, the prior's mel μ is rendered three ways
and vocoded: with the voice statistics predicted from the acoustic tokens (what the model does),
with the utterance's own statistics (an oracle), and with the true mel (the vocoder's ceiling).
Each is scored by SIM (resemblyzer, to the input) and WER by Whisper tiny.en and base:

    python3 docs/experiments/voice_oracle.py MODEL N CORPUS       # e.g. bundled 30 corpora/c4n

Needs a DSA model whose decoder has a renderer prior (``decoder.prior_kind = "renderer"``).
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
from dsatok.nn.render import voice_stats

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model")
ap.add_argument("n", type=int)
ap.add_argument("corpus")
a = ap.parse_args()
torch.set_num_threads(1)
m = DSATokenizer.from_pretrained(a.model)
dec = m.decoder
if not dec.cfg.prior or dec.cfg.prior_kind != "renderer":
    raise SystemExit(f"{a.model}: its decoder has no renderer prior")
judges = {name: load_asr(name) for name in ("tiny", "base")}
spk = load_speaker_encoder()
cuts = spread(list(load_cuts(a.corpus, "test")), a.n)
rows = {k: {"hyp": {j: [] for j in judges}, "sim": []} for k in ("predicted", "oracle", "true mel")}
refs, stat_err = [], []


@torch.no_grad()
def mels(wav: torch.Tensor) -> dict[str, torch.Tensor]:
    """``wav [N]`` -> log-mel ``[n_mels, T]`` per variant."""
    toks = m.encode(wav)
    mel, _ = m.acoustic.mel(wav[None], torch.tensor([wav.shape[0]]))
    t = mel.shape[-1]
    ctx = m.decoder_context(toks, t)
    oracle = voice_stats(dec.normalize(mel))
    stat_err.append(float((ctx.voice - oracle).abs().mean()))
    oracle_mu = dec.prior(toks[0].semantic, t, None, stats=oracle).mu
    return {"predicted": dec.denormalize(ctx.mu)[0], "oracle": dec.denormalize(oracle_mu)[0], "true mel": mel[0]}


for c in cuts:
    wav = torch.from_numpy(load_cut_audio(c))
    refs.append(c.supervisions[0].text)
    e_in = spk.embed(wav.numpy())
    for k, mel in mels(wav).items():
        y = m.vocoder.synthesize(mel[None])[0].clamp(-1, 1).numpy()
        rows[k]["sim"].append(cosine(e_in, spk.embed(y)))
        for j, asr in judges.items():
            rows[k]["hyp"][j].append(asr.transcribe(y))
print(f"{len(cuts)} utterances of {a.corpus} test; mean |predicted - oracle| voice statistics {np.mean(stat_err):.3f}")
print("| voice of the prior | WER tiny.en | WER base | SIM |\n|---|---|---|---|")
for k, r in rows.items():
    print(f"| {k} | {wer(refs, r['hyp']['tiny']):.3f} | {wer(refs, r['hyp']['base']):.3f} | {np.mean(r['sim']):.3f} |")
