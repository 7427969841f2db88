"""Does pushing the prior's voice statistics further from a reference move recombination to the voice?

Recombination renders S's semantic tokens with voice statistics (per-bin mel mean and std) that the
prior predicts from A's acoustic tokens. The semantic tokens leak some of S's voice, so the output
sits between A and S (closer to A in 0.78 of pairs). Here the statistics are extrapolated,
``stats = stats_A + g (stats_A - ref)``, with ``ref`` either the average voice (the normalised mel's
unit statistics, what an untrained voice MLP gives) or S's own predicted statistics (S's acoustic
tokens: what a user who has S's audio can compute), and the prior's μ is vocoded. Prints, over the
first N pairs of ``recomb/pairs.jsonl``: WER (tiny.en, base), SIM to A and to S, closer-to-A:

    python3 docs/experiments/voice_extrap.py MODEL CORPUS N --gains 0,0.5,1     # e.g. 40 pairs: 8 min
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dsatok import DSATokenizer
from dsatok.audio import load
from dsatok.eval.asr import load_asr
from dsatok.judges.speaker import cosine, load_speaker_encoder
from dsatok.judges.text import wer

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model")
ap.add_argument("corpus")
ap.add_argument("n", type=int)
ap.add_argument("--gains", default="0,0.5,1")
ap.add_argument("--parts", default="both", help="comma list of statistics to extrapolate: both, mean, std")
ap.add_argument("--refs", default="average,S", help="comma list of references: average, S")
a = ap.parse_args()
torch.set_num_threads(1)
m = DSATokenizer.from_pretrained(a.model)
dec = m.decoder
judges = {k: load_asr(k) for k in ("tiny", "base")}
spk = load_speaker_encoder()
corpus = Path(a.corpus)
pairs = [json.loads(x) for x in (corpus / "recomb" / "pairs.jsonl").read_text().splitlines() if x.strip()][: a.n]
gains = [float(g) for g in a.gains.split(",")]


@torch.no_grad()
def stats_of(sem: torch.Tensor, ac: torch.Tensor, t_mel: int) -> torch.Tensor:
    """The prior's voice statistics ``[1, 2 * n_mels]`` from acoustic tokens ``ac [1, L, T_a]``."""
    ac_q = m.acoustic.embed(ac)
    ctx = dec.prepare(sem, torch.tensor([t_mel]), t_mel, ac_q, torch.tensor([ac.shape[-1]]))
    return ctx.voice


rows: dict[str, dict] = {}
refs = []
for p in pairs:
    s, v = (load(corpus / p[k]) for k in ("content_path", "voice_path"))
    refs.append(p["text"])
    ts, tv = m.encode(torch.from_numpy(s)), m.encode(torch.from_numpy(v))
    sem = ts[0].semantic
    t_mel = int(ts[0].num_samples[0]) // m._hop
    st_a = stats_of(sem, tv[0].acoustic, t_mel)
    st_s = stats_of(sem, ts[0].acoustic, t_mel)
    n = st_a.shape[1] // 2
    unit = torch.cat([torch.zeros(n), torch.ones(n)])[None]
    es, ea = spk.embed(s), spk.embed(v)
    for ref_key, ref_name, ref in (("average", "average voice", unit), ("S", "S's voice", st_s)):
        if ref_key not in a.refs.split(","):
            continue
        for g, part in [(g, p) for g in gains for p in a.parts.split(",")]:
            if g == 0 and (ref_key != a.refs.split(",")[0] or part != a.parts.split(",")[0]):
                continue
            key = "plain (g 0)" if g == 0 else f"away from {ref_name}, g {g}, {part}"
            d = g * (st_a - ref)
            if part == "mean":
                d[:, n:] = 0
            elif part == "std":
                d[:, :n] = 0
            st = st_a + d
            st[:, n:] = st[:, n:].clamp_min(0.05)  # a std stays positive
            with torch.no_grad():
                out = dec.prior(sem, t_mel, None, stats=st)
                y = m.vocoder.synthesize(dec.denormalize(out.mu))[0].clamp(-1, 1).numpy()
            e = spk.embed(y)
            r = rows.setdefault(key, {"hyp": {j: [] for j in judges}, "sa": [], "ss": []})
            r["sa"].append(cosine(e, ea))
            r["ss"].append(cosine(e, es))
            for j, asr in judges.items():
                r["hyp"][j].append(asr.transcribe(y))
print(f"{len(refs)} pairs of {a.corpus} recomb/pairs.jsonl; model {a.model}")
print("| voice statistics | WER tiny.en | WER base | SIM to A | SIM to S | closer to A |\n|---|---|---|---|---|---|")
for k, r in rows.items():
    closer = np.mean([x > y for x, y in zip(r["sa"], r["ss"])])
    print(f"| {k} | {wer(refs, r['hyp']['tiny']):.3f} | {wer(refs, r['hyp']['base']):.3f} | "
          f"{np.mean(r['sa']):.3f} | {np.mean(r['ss']):.3f} | {closer:.2f} |", flush=True)
