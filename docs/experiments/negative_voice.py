"""Negative voice guidance, an experiment: steer a recombination away from the content source's own
voice and measure whether it lands closer to the voice source (resemblyzer only, no ASR).

    python3 docs/experiments/negative_voice.py --corpus CORPUS [--model DIR] [--limit 100] [--weight 1] [-o OUT.json]

Field: ``v = v_c + w (v_c - v_u) + W (v_c - v_S)``, with ``v_S`` the field given S's semantic
tokens and S's *own* acoustic tokens (its reconstruction) and ``w`` the model's CFG scale; ``W = 0``
is the model's plain recombination (same noise as ``dsatok eval recomb``; per-pair similarities
agree within ~0.005, the means to 0.001, since the two acoustic contexts are prepared padded in one batch). Not a decoding option of
the package: on the bundled model it did not help (docs/experiments/guidance.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dsatok.audio import load
from dsatok.judges.speaker import cosine, load_speaker_encoder
from dsatok.models.flow_decoder import sample
from dsatok.tokenizer import DSATokenizer


@torch.no_grad()
def recombine(m: DSATokenizer, s: np.ndarray, a: np.ndarray, weight: float, seed: int = 0) -> np.ndarray:
    """S's words in A's voice, guided away from S's own voice by ``weight``; waveform [N]."""
    dec, o = m.decoder, m.decode_options
    ts, ta = m.encode(torch.from_numpy(s)), m.encode(torch.from_numpy(a))
    sem = ts.semantic[0, : int(ts.semantic_lengths[0])]
    ac_a, ac_s = (t.acoustic[0, :, : int(t.acoustic_lengths[0])] for t in (ta, ts))
    t_mel = int(ts.num_samples[0]) // m._hop
    ac = torch.zeros(2, ac_a.shape[0], max(ac_a.shape[-1], ac_s.shape[-1]), dtype=torch.long)
    ac[0, :, : ac_a.shape[-1]], ac[1, :, : ac_s.shape[-1]] = ac_a, ac_s
    both = dec.prepare(torch.stack([sem, sem]), torch.tensor([t_mel, t_mel]), t_mel, m.acoustic.embed(ac),
                       torch.tensor([ac_a.shape[-1], ac_s.shape[-1]]))  # one call pads the two contexts alike
    neg = [(weight, both.row(1))] if weight else []
    mel = sample(dec, both.row(0), t_mel, steps=o.steps, cfg_scale=o.cfg_scale, solver=o.solver, sway=o.sway,
                 generator=torch.Generator().manual_seed(seed), extra_guides=neg)[0]
    return m.vocode(mel).cpu().numpy()[: s.shape[0]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--weight", type=float, default=1.0, help="W, the weight of the negative term")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-o", "--out", default=None, help="write per-pair JSON here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m = DSATokenizer.from_pretrained(a.model)
    spk = load_speaker_encoder("resemblyzer")
    corpus = Path(a.corpus)
    pf = corpus / "recomb" / "pairs.jsonl"
    if not pf.is_file():
        raise FileNotFoundError(f"{corpus}: no recomb/pairs.jsonl (build the corpus with dsatok corpus build)")
    pairs = [json.loads(x) for x in pf.read_text().splitlines() if x.strip()][: a.limit]
    rows = []
    for p in tqdm(pairs, desc="pairs"):
        s, v = load(corpus / p["content_path"]), load(corpus / p["voice_path"])
        e = spk.embed(recombine(m, s, v, a.weight))
        r = {"id": p["id"], "sim_to_voice": cosine(e, spk.embed(v)), "sim_to_content": cosine(e, spk.embed(s))}
        rows.append({**r, "closer_to_voice": float(r["sim_to_voice"] > r["sim_to_content"])})
    summary = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in ("sim_to_voice", "sim_to_content",
                                                                          "closer_to_voice")}
    summary.update(weight=a.weight, n=len(rows), cfg=m.decode_options.cfg_scale, steps=m.decode_options.steps)
    if a.out:
        Path(a.out).write_text(json.dumps({"summary": summary, "per_pair": rows}, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    import sys

    from dsatok import AudioError, ConfigError
    from dsatok.data.manifests import CorpusError
    from dsatok.models.io import ModelLoadError

    try:
        main()
    except (AudioError, ConfigError, CorpusError, ModelLoadError, FileNotFoundError) as e:  # bad corpus / model: one line
        sys.exit(f"negative_voice: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
