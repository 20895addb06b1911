"""Figures people would rather look at than read: confusion matrices, training curves,
accuracy comparisons and per-window genre timelines. Matplotlib with the file-only Agg backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 120


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_confusion_matrix(matrix, class_names: Sequence[str], path, title: str = "") -> Path:
    """Row-normalised confusion matrix with counts in the cells (rows: true, columns: predicted)."""
    m = np.asarray(matrix, dtype=float)
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.55 * k))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted genre")
    ax.set_ylabel("true genre")
    for i in range(k):
        for j in range(k):
            if m[i, j]:
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center",
                        color="white" if frac[i, j] > 0.5 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true genre")
    ax.set_title(title)
    return _save(fig, path)


def plot_training_curves(history: Mapping[str, Sequence[float]], path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train and validation side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + key)
            if values:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, values, style, marker="o", ms=3,
                        label="validation" if prefix else "train")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return _save(fig, path)


def plot_accuracy_comparison(names: Sequence[str], window_acc, song_acc, path, title: str = "") -> Path:
    """Grouped horizontal bars of window and song accuracy per approach, best first."""
    order = np.argsort(-np.asarray(song_acc, dtype=float), kind="stable")
    names = [names[i] for i in order]
    w = np.asarray(window_acc, dtype=float)[order]
    s = np.asarray(song_acc, dtype=float)[order]
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(names)))
    ax.barh(y - 0.2, w, height=0.4, label="window accuracy", color="#9ecae1")
    ax.barh(y + 0.2, s, height=0.4, label="song accuracy (mean-probability vote)", color="#3182bd")
    for yi, (wi, si) in enumerate(zip(w, s)):
        ax.text(wi + 0.005, yi - 0.2, f"{wi:.1%}", va="center", fontsize=8)
        ax.text(si + 0.005, yi + 0.2, f"{si:.1%}", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("test accuracy")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    return _save(fig, path)


def plot_per_class_accuracy(table: Mapping[str, Sequence[float]], class_names, path, title="") -> Path:
    """Heat map of per-genre song recall for each approach (rows) and genre (columns)."""
    names = list(table)
    m = np.asarray([table[n] for n in names], dtype=float)
    fig, ax = plt.subplots(figsize=(1.5 + 0.7 * len(class_names), 1.0 + 0.45 * len(names)))
    im = ax.imshow(m, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(class_names)):
            if not np.isnan(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.0%}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="recall")
    ax.set_title(title)
    return _save(fig, path)


def plot_timeline(
    window_probabilities, window_starts, window_seconds: float, class_names: Sequence[str],
    path, title: str = "", mean_vote: str | None = None, majority_vote: str | None = None,
) -> Path:
    """Stacked per-window genre probabilities along the song, with the song-level decisions."""
    p = np.asarray(window_probabilities, dtype=float)
    starts = np.asarray(window_starts, dtype=float)
    cmap = plt.get_cmap("tab10")
    fig, (ax, bar) = plt.subplots(2, 1, figsize=(11, 5.2), height_ratios=[4, 1], sharex=True)
    bottom = np.zeros(len(p))
    centres = starts + window_seconds / 2
    for k, name in enumerate(class_names):
        lw = 2.5 if name == mean_vote else 0.6
        ax.bar(centres, p[:, k], bottom=bottom, width=window_seconds * 0.98, color=cmap(k),
               edgecolor="black" if name == mean_vote else "none", linewidth=lw * 0.3,
               label=name + ("  <- song (mean vote)" if name == mean_vote else ""))
        bottom += p[:, k]
    ax.set_ylim(0, 1)
    ax.set_ylabel("genre probability")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, title="genre")
    top = p.argmax(axis=1)
    bar.bar(centres, np.ones(len(p)), width=window_seconds * 0.98, color=[cmap(t) for t in top])
    # One label per run of windows with the same top genre; narrow runs get vertical text.
    total = (starts[-1] + window_seconds - starts[0]) if len(starts) else 1.0
    run_start = 0
    for i in range(1, len(top) + 1):
        if i == len(top) or top[i] != top[run_start]:
            width = starts[i - 1] + window_seconds - starts[run_start]
            narrow = width < total / 12
            bar.text((starts[run_start] + starts[i - 1] + window_seconds) / 2, 0.5,
                     class_names[top[run_start]], ha="center", va="center",
                     fontsize=6 if narrow else 8, rotation=90 if narrow else 0)
            run_start = i
    bar.set_yticks([])
    bar.set_ylabel("top genre", rotation=0, ha="right", va="center")
    bar.set_xlabel("time (s)")
    summary = []
    if mean_vote:
        summary.append(f"mean-probability vote: {mean_vote}")
    if majority_vote:
        summary.append(f"majority vote: {majority_vote}")
    ax.set_title(title + ("\n" + " | ".join(summary) if summary else ""))
    return _save(fig, path)


def plot_cv_accuracy(rows: Sequence[Mapping], path, title: str = "") -> Path:
    """Cross-validated song accuracy per approach, best first: the out-of-fold accuracy with
    its 95 % interval (bar and black whisker) and the per-fold mean +- std (grey marker).

    ``rows``: dicts with ``approach``, ``song_accuracy``, ``song_accuracy_ci_low``/``_high``,
    ``fold_mean``, ``fold_std`` (``pipeline.experiments.crossval_report.cv_row``).
    """
    rows = sorted(rows, key=lambda r: -r["song_accuracy"])
    acc = np.asarray([r["song_accuracy"] for r in rows], dtype=float)
    interval = np.asarray([[a - r["song_accuracy_ci_low"], r["song_accuracy_ci_high"] - a]
                           for a, r in zip(acc, rows)], dtype=float).T
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.5 * len(rows)))
    ax.barh(y, acc, height=0.55, color="#3182bd", xerr=interval, capsize=4,
            label="out-of-fold song accuracy, 95 % interval")
    ax.errorbar([r["fold_mean"] for r in rows], y + 0.33, xerr=[r["fold_std"] for r in rows],
                fmt="o", color="grey", ms=4, capsize=3, label="per-fold mean +- std")
    for yi, (a, r) in enumerate(zip(acc, rows)):
        ax.text(0.01, yi, f"{a:.1%}", va="center", color="white", fontsize=8, fontweight="bold")
    ax.set_yticks(y, [r["approach"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("song accuracy")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    return _save(fig, path)
