"""Where does the Dasheng decoder lose the spectrum: in the 256-d latent, or in the decoder?

The bundled DashengTokenizer decodes at PESQ ~1.6, and re-vocoding its decodes does not help
(docs/evaluation.md), so the decoded magnitude limits it. This script measures, on the acoustic
injection's own 128-bin log-mel cut into the latent's 40 ms patches (``[T, 128 * 4]``), how far
each stage is from the clean spectrum, as the mean |error| per log-mel bin on test voices:

- ``pcaK``: the clean patches through their top-K principal components (fit on train): the best
  any linear K-dimensional code of a patch can do;
- ``ridge(acoustic)`` / ``ridge(unified)``: a ridge regression (fit on train) from the model's
  injection alone / from its unified latent (semantic + injection, what the decoder sees) back to
  the patch: what the latent holds linearly;
- ``ridge(acoustic, random start)`` / ``ridge(acoustic, PCA start)``: the same for the injection
  re-started at PyTorch's default or by ``dsatok.train.dasheng.pca_injection_init`` (untrained);
- ``decoder``: the model's decoded waveform, its log-mel cut the same way: what is used.

    python3 docs/experiments/dasheng_bottleneck.py CORPUS [--train N] [--test N] [--model DIR]
"""
import argparse

import numpy as np
import torch

from dsatok import DashengTokenizer
from dsatok.data.batches import load_cut_audio
from dsatok.data.manifests import load_cuts, spread
from dsatok.train.dasheng import injection_patches, pca_injection_init

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("corpus")
ap.add_argument("--train", type=int, default=300)
ap.add_argument("--test", type=int, default=60)
ap.add_argument("--model", default=None)
ap.add_argument("--ridge", type=float, default=1e-3)
a = ap.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)
m = DashengTokenizer.from_pretrained(a.model).eval()


@torch.no_grad()
def collect(split: str, n: int, decode: bool) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {"patch": [], "uni": [], "dec": []}
    for cut in spread(list(load_cuts(a.corpus, split)), n):
        wav = torch.from_numpy(load_cut_audio(cut))
        lat = m.encode(wav[None])
        p = injection_patches(m, wav)
        t = min(len(p), int(lat.lengths[0]))
        out["patch"].append(p[:t].numpy())
        out["uni"].append(lat.unified[0, :t].numpy())
        if decode:
            d = injection_patches(m, m.decode(lat.unified[:, :t])[0]).numpy()
            out["dec"].append(d[:t] if len(d) >= t else np.pad(d, ((0, t - len(d)), (0, 0)), mode="edge"))
    return {k: np.concatenate(v) for k, v in out.items() if v}


@torch.no_grad()
def injection(x: np.ndarray) -> np.ndarray:
    """``LN(W · patch + b)`` of the model's current injection for patches ``[T, 512]``."""
    h = m.acoustic_proj(torch.from_numpy(x).reshape(len(x), 1, *m.acoustic_proj.kernel_size))
    return m.acoustic_norm(h.flatten(1)).numpy()


def ridge_miss(x_tr: np.ndarray, x_te: np.ndarray) -> float:
    xm, ym = x_tr.mean(0), tr["patch"].mean(0)
    xc = (x_tr - xm).astype(np.float64)
    w = np.linalg.solve(xc.T @ xc + a.ridge * np.eye(x_tr.shape[1]), xc.T @ (tr["patch"] - ym))
    return float(np.abs((x_te - xm) @ w + ym - te["patch"]).mean())


tr, te = collect("train", a.train, False), collect("test", a.test, True)
y = te["patch"]
rows = {}
mu = tr["patch"].mean(0)
_, _, vt = np.linalg.svd(tr["patch"] - mu, full_matrices=False)
for k in (64, 128, 256):
    v = vt[:k]
    rows[f"pca{k}"] = np.abs((y - mu) @ v.T @ v + mu - y).mean()
rows["ridge(acoustic)"] = ridge_miss(injection(tr["patch"]), injection(y))
rows["ridge(unified)"] = ridge_miss(tr["uni"], te["uni"])
m.acoustic_proj.reset_parameters()
m.acoustic_norm.reset_parameters()
rows["ridge(acoustic, random start)"] = ridge_miss(injection(tr["patch"]), injection(y))
pca_injection_init(m, torch.from_numpy(tr["patch"]))
rows["ridge(acoustic, PCA start)"] = ridge_miss(injection(tr["patch"]), injection(y))
rows["decoder"] = np.abs(te["dec"] - y).mean()
rows["mean patch (no information)"] = np.abs(mu - y).mean()
print(f"{a.model or 'bundled'}: train frames {len(tr['patch'])}, test frames {len(y)} "
      "(log-mel L1 per bin, 128 bins, 40 ms patches)")
for k, v in rows.items():
    print(f"{k:32s} {v:.3f}")
