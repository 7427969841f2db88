"""Plots for reports: stacked log-mel spectrograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_path

__all__ = ["plot_mels"]


def plot_mels(mels: dict[str, np.ndarray], out: str | Path, frame_rate: float = 100.0, title: str | None = None) -> None:
    """Save a PNG with one log-mel panel per entry.

    Args:
        mels: label -> log-mel ``[n_mels, T]``.
        out: PNG path (written atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(mels)
    vmin = min(float(m.min()) for m in mels.values())
    vmax = max(float(m.max()) for m in mels.values())
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.4 * n), squeeze=False, layout="constrained")
    for ax, (label, m) in zip(axes[:, 0], mels.items()):
        im = ax.imshow(m, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma",
                       extent=(0, m.shape[1] / frame_rate, 0, m.shape[0]))
        ax.set_title(label, fontsize=9, loc="left")
        ax.set_ylabel("mel bin")
    axes[-1, 0].set_xlabel("time (s)")
    fig.colorbar(im, ax=axes[:, 0].tolist(), shrink=0.8, label="log magnitude")
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
