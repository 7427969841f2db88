"""Plots for reports: stacked log-mel spectrograms and bars per metric."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_path

__all__ = ["plot_mels", "plot_bars", "numeric_columns"]


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


def numeric_columns(rows: list[dict], skip: tuple[str, ...] = ("n",)) -> list[str]:
    """Columns (in first-seen order) that hold a finite number in at least one row."""
    cols: list[str] = []
    for r in rows:
        for k, v in r.items():
            if (k not in cols and k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)
                    and np.isfinite(v)):
                cols.append(k)
    return cols


def plot_bars(rows: list[dict], out: str | Path, title: str | None = None, label: str = "system",
              skip: tuple[str, ...] = ("n",)) -> list[str]:
    """Save a PNG with one bar chart per metric (one bar per row, named by ``row[label]``).

    Args:
        rows: report table rows, e.g. ``{"system": "model", "wer": 0.3, "sim": 0.8}``.
        out: PNG path (written atomically).
    Returns:
        The metrics plotted (numeric columns but ``skip``); nothing is written when there are none.
    """
    metrics = numeric_columns(rows, skip)
    if not metrics:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(r.get(label, i)) for i, r in enumerate(rows)]
    ncol = min(4, len(metrics))
    nrow = -(-len(metrics) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow + 0.4 * max(map(len, names)) / 4),
                             squeeze=False, layout="constrained")
    for ax, m in zip(axes.flat, metrics):
        vals = [r.get(m) for r in rows]
        ys = [float(v) if isinstance(v, (int, float)) and np.isfinite(v) else 0.0 for v in vals]
        bars = ax.bar(range(len(rows)), ys, color=[f"C{i % 10}" for i in range(len(rows))])
        for b, v in zip(bars, vals):
            ok = isinstance(v, (int, float)) and np.isfinite(v)
            ax.annotate(f"{v:.3g}" if ok else "n/a", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=7)
        ax.set_title(m, fontsize=9)
        ax.set_xticks(range(len(rows)), names, rotation=45, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return metrics
