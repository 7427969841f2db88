"""Where does the Dasheng decoder lose the spectrum: in the 256-d latent, or in the decoder?

The bundled DashengTokenizer decodes at PESQ ~1.6, and re-vocoding its decodes does not help
(docs/evaluation.md), so the decoded magnitude limits it. This script measures, on the acoustic
injection's own 128-bin log-mel cut into the latent's 40 ms patches (``[T, 4 * 128]``), how far
each stage is from the clean spectrum, as the mean |error| per log-mel bin on test voices:

- ``pca256``: the clean patches through their top-256 principal components (fit on train): the
  best any linear 256-d code of a patch can do;
- ``ridge(acoustic)`` / ``ridge(unified)``: a ridge regression (fit on train) from the injection
  alone / from the unified latent (semantic + injection, what the decoder sees) back to the patch:
  what the latent holds linearly;
- ``decoder``: the bundled decoder's waveform, its log-mel cut the same way: what is used;
- with ``--pca-init``, ``ridge(acoustic, PCA start)``: the injection re-started by
  ``dsatok.train.dasheng.pca_injection_init`` on the same train utterances (untrained).

    python3 docs/experiments/dasheng_bottleneck.py CORPUS [--train N] [--test N] [--model DIR] [--pca-init]
"""
import argparse

import numpy as np
import torch

from dsatok import DashengTokenizer
from dsatok.data.batches import load_cut_audio
from dsatok.data.manifests import load_cuts, spread

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("corpus")
ap.add_argument("--train", type=int, default=300)
ap.add_argument("--test", type=int, default=60)
ap.add_argument("--model", default=None)
ap.add_argument("--ridge", type=float, default=1e-3)
ap.add_argument("--pca-init", action="store_true")
a = ap.parse_args()
torch.set_num_threads(1)
m = DashengTokenizer.from_pretrained(a.model).eval()
PATCH = 4


def patches(wav: torch.Tensor) -> np.ndarray:
    """Log-mel ``[T, 4 * 128]`` of a waveform ``[N]`` (frame-major within a patch)."""
    mel, _ = m.acoustic_mel(wav[None], torch.tensor([wav.shape[-1]]))  # [1, 128, F]
    f = mel.shape[-1] // PATCH * PATCH
    return mel[0, :, :f].T.reshape(-1, PATCH * mel.shape[1]).numpy()


@torch.no_grad()
def collect(split: str, n: int, decode: bool) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {"patch": [], "ac": [], "uni": [], "dec": []}
    for cut in spread(list(load_cuts(a.corpus, split)), n):
        wav = torch.from_numpy(load_cut_audio(cut))
        lat = m.encode(wav[None])
        p = patches(wav)
        t = min(len(p), int(lat.lengths[0]))
        out["patch"].append(p[:t])
        out["ac"].append(lat.acoustic[0, :t].numpy())
        out["uni"].append(lat.unified[0, :t].numpy())
        if decode:
            d = patches(m.decode(lat.unified[:, :t])[0])
            out["dec"].append(d[:t] if len(d) >= t else np.pad(d, ((0, t - len(d)), (0, 0)), mode="edge"))
    return out


def ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    xm, ym = x.mean(0), y.mean(0)
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ (y - ym))
    return w, ym - xm @ w


tr = {k: np.concatenate(v) for k, v in collect("train", a.train, False).items() if v}
te = {k: np.concatenate(v) for k, v in collect("test", a.test, True).items()}
y = te["patch"]
rows = {}
mu = tr["patch"].mean(0)
_, _, vt = np.linalg.svd(tr["patch"] - mu, full_matrices=False)
for k in (64, 128, 256):
    v = vt[:k]
    rows[f"pca{k}"] = np.abs((y - mu) @ v.T @ v + mu - y).mean()
for name in ("ac", "uni"):
    w, b = ridge(tr[name], tr["patch"], a.ridge)
    rows[f"ridge({name})"] = np.abs(te[name] @ w + b - y).mean()
if a.pca_init:
    from dsatok.train.dasheng import injection_patches, pca_injection_init

    cuts = spread(list(load_cuts(a.corpus, "train")), a.train)
    pca_injection_init(m, torch.cat([injection_patches(m, torch.from_numpy(load_cut_audio(c))) for c in cuts]))
    tr2, te2 = collect("train", a.train, False), collect("test", a.test, False)
    x_tr, x_te = np.concatenate(tr2["ac"]), np.concatenate(te2["ac"])
    w, b = ridge(x_tr, tr["patch"], a.ridge)
    rows["ridge(ac), PCA start"] = np.abs(x_te @ w + b - y).mean()
rows["decoder"] = np.abs(te["dec"] - y).mean()
rows["mean patch (no information)"] = np.abs(mu - y).mean()
print(f"train frames {len(tr['patch'])}, test frames {len(y)} (log-mel L1 per bin, 128 bins, 40 ms patches)")
for k, v in rows.items():
    print(f"{k:30s} {v:.3f}")
