"""How near is each test voice of a corpus to its nearest training voice?

Per voice, a resemblyzer centroid over all its clips (or ``--clips N`` spread over them: 12 move
the similarities by up to 0.03); per test voice,
the cosine similarity of its centroid to the two nearest training centroids. The corpus builder's
voice inventory calls two settings the same speaker above 0.78:

    python3 docs/experiments/nearest_voices.py corpora/c4n        # 4 min on 2 threads
"""
import argparse
from collections import defaultdict

import numpy as np

from dsatok.data.batches import load_cut_audio
from dsatok.data.manifests import load_cuts, spread
from dsatok.judges.speaker import load_speaker_encoder

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("corpus")
ap.add_argument("--clips", type=int, default=0, help="clips per voice, spread over its utterances (0: all)")
a = ap.parse_args()
spk = load_speaker_encoder()
centroids: dict[str, dict[str, np.ndarray]] = {}
for split in ("train", "test"):
    by = defaultdict(list)
    for c in load_cuts(a.corpus, split):
        by[c.supervisions[0].speaker].append(c)
    centroids[split] = {}
    for voice, cuts in by.items():
        e = np.stack([spk.embed(load_cut_audio(c)) for c in spread(cuts, a.clips)])
        m = e.mean(0)
        centroids[split][voice] = m / np.linalg.norm(m)
print("| test voice | nearest training voice | similarity | second nearest | similarity |\n|---|---|---|---|---|")
for voice, e in sorted(centroids["test"].items()):
    near = sorted(((float(e @ t), v) for v, t in centroids["train"].items()), reverse=True)
    print(f"| `{voice}` | `{near[0][1]}` | {near[0][0]:.3f} | `{near[1][1]}` | {near[1][0]:.3f} |")
