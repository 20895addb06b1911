"""k-fold cross-validation of one approach: every fold a normal run, the song decisions pooled.

Why it exists: a 10-song test split decides an approach's accuracy to within +-30 points; with
k folds every song of the pooled splits is tested exactly once, by a model that never saw it
(``pipeline.stream.folds`` cuts the folds by song, stratified by genre).

    <root>/fold_<i>/          one run directory per fold (``train_run``: its lock, resume after
                              a kill, reuse when finished), config.json recording the fold
    <root>/cv.json            per-fold and pooled figures (``cv_summary``)
    <root>/confusion_matrix.png   the pooled out-of-fold song decisions

The figures (``cv_summary``):

- ``song_accuracy_mean_vote``: out-of-fold song accuracy, correct songs / all songs, every
  song decided once (mean-probability vote over its windows) by the fold that held it out;
- ``fold_song_accuracy_mean`` +- ``fold_song_accuracy_std``: mean and sample standard
  deviation (ddof = 1) of the k per-fold song accuracies, the spread across training sets;
- ``song_accuracy_interval``: the 95 % Wilson score interval of the pooled decisions (songs
  taken as independent trials; ``num_songs`` of them), the uncertainty from the number of
  songs tested.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from core.config import PipelineConfig, TrainConfig
from core.files import write_json_atomic
from pipeline.experiments import plots
from pipeline.experiments.metrics import per_class
from pipeline.experiments.training import train_run

Z_95 = 1.959963984540054  # standard normal quantile of 0.975
CV_JSON = "cv.json"


def fold_dir(root: Path, fold: int) -> Path:
    return Path(root) / f"fold_{fold}"


def fold_configs(cfg: PipelineConfig) -> list[PipelineConfig]:
    """The pipeline config of each of ``cfg.dataset.folds`` folds."""
    return [dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, fold=i))
            for i in range(cfg.dataset.folds)]


def run_folds(cfg: PipelineConfig, train: TrainConfig, root: Path, *, verbose: int = 1,
              overwrite: bool = False) -> list[dict]:
    """Train and test every fold into ``<root>/fold_<i>`` (finished folds are reused);
    returns the folds' summaries (test metrics + training record), fold 0 first."""
    summaries = []
    for i, fold_cfg in enumerate(fold_configs(cfg)):
        if verbose:
            print(f"fold {i + 1}/{cfg.dataset.folds}: {fold_dir(root, i)}", flush=True)
        summaries.append(train_run(fold_cfg, train, fold_dir(root, i), verbose=verbose,
                                   overwrite=overwrite))
    return summaries


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``correct / n`` (95 % by default)."""
    if n <= 0:
        raise ValueError("the interval of a proportion needs at least one trial")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # exact ends where rounding would move them off 0 or 1 (all wrong, all right)
    return (0.0 if correct == 0 else centre - half), (1.0 if correct == n else centre + half)


def _pooled_songs(fold_summaries: Sequence[dict]) -> list[dict]:
    songs = [s for summary in fold_summaries for s in summary["songs"]]
    ids = [s["song_id"] for s in songs]
    if len(set(ids)) != len(ids):
        raise ValueError("a song was tested in two folds: the folds' test splits overlap")
    return songs


def _weighted(fold_summaries: Sequence[dict], key: str, weight: str) -> float:
    weights = np.asarray([s[weight] for s in fold_summaries], dtype=float)
    values = np.asarray([s[key] for s in fold_summaries], dtype=float)
    return float(np.sum(values * weights) / np.sum(weights))


def cv_summary(fold_summaries: Sequence[dict]) -> dict:
    """Pooled out-of-fold figures of the folds' test summaries (see the module docstring)."""
    first = fold_summaries[0]
    names = list(first["class_names"])
    songs = _pooled_songs(fold_summaries)
    labels = np.asarray([names.index(s["label"]) for s in songs])
    predicted = np.asarray([names.index(s["predicted"]) for s in songs])
    correct = int(np.sum(labels == predicted))
    per_fold = [float(s["song_accuracy_mean_vote"]) for s in fold_summaries]
    song_f1 = per_class(labels, predicted, names)
    present = [c for c in names if song_f1[c]["support"] > 0]
    return {
        "model": first["model"], "transform": first["transform"],
        "folds": len(fold_summaries), "num_songs": len(songs),
        "num_windows": int(sum(s["num_windows"] for s in fold_summaries)),
        "song_accuracy_mean_vote": correct / len(songs),
        "song_accuracy_interval": list(wilson_interval(correct, len(songs))),
        "fold_song_accuracies": per_fold,
        "fold_song_accuracy_mean": float(np.mean(per_fold)),
        "fold_song_accuracy_std": float(np.std(per_fold, ddof=1)) if len(per_fold) > 1 else 0.0,
        "song_accuracy_majority_vote": _weighted(fold_summaries, "song_accuracy_majority_vote",
                                                 "num_songs"),
        "window_accuracy": _weighted(fold_summaries, "window_accuracy", "num_windows"),
        "song_macro_f1": float(np.mean([song_f1[c]["f1"] for c in present])),
        "class_names": names, "per_class_song": song_f1,
        "confusion_matrix_song": np.sum([s["confusion_matrix_song"] for s in fold_summaries],
                                        axis=0).tolist(),
        "training_seconds": float(sum(s.get("training_seconds", 0.0) for s in fold_summaries)),
        "parameters": int(first.get("parameters", 0)),
        "songs": songs,
    }


def paired_comparison(a: dict, b: dict) -> dict:
    """Songs only ``a`` decides right, only ``b`` does, and the exact McNemar p-value (two-sided
    binomial test of those discordant songs); both summaries must hold the same songs."""
    from scipy.stats import binomtest

    right = [{s["song_id"]: s["label"] == s["predicted"] for s in x["songs"]} for x in (a, b)]
    if set(right[0]) != set(right[1]):
        raise ValueError("paired comparison of cross-validations over different songs")
    only_a = sum(right[0][s] and not right[1][s] for s in right[0])
    only_b = sum(right[1][s] and not right[0][s] for s in right[0])
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a": only_a, "only_b": only_b, "p_value": float(p)}


def format_cv(summary: dict, title: str = "") -> str:
    """One paragraph for the terminal: pooled accuracy, interval, fold spread, song count."""
    lo, hi = summary["song_accuracy_interval"]
    folds = ", ".join(f"{a:.0%}" for a in summary["fold_song_accuracies"])
    return (f"{title}\n" if title else "") + (
        f"out-of-fold song accuracy {summary['song_accuracy_mean_vote']:.1%} "
        f"(95 % Wilson interval {lo:.1%}-{hi:.1%}) on {summary['num_songs']} songs; "
        f"per fold {summary['fold_song_accuracy_mean']:.1%} +- "
        f"{summary['fold_song_accuracy_std']:.1%} ({folds}); window accuracy "
        f"{summary['window_accuracy']:.1%} on {summary['num_windows']} windows")


def write_cv(root: Path, summary: dict, title: str) -> None:
    """cv.json and the pooled song-level confusion matrix into ``root``."""
    root = Path(root)
    plots.plot_confusion_matrix(
        summary["confusion_matrix_song"], summary["class_names"], root / "confusion_matrix.png",
        f"{title}\n{summary['folds']}-fold out-of-fold song accuracy "
        f"{summary['song_accuracy_mean_vote']:.1%} ({summary['num_songs']} songs)")
    write_json_atomic(root / CV_JSON, summary)


def cross_validate(cfg: PipelineConfig, train: TrainConfig, root: Path, *, verbose: int = 1,
                   overwrite: bool = False) -> dict:
    """``run_folds`` then ``cv_summary``, written into ``root``; returns the summary."""
    summary = cv_summary(run_folds(cfg, train, root, verbose=verbose, overwrite=overwrite))
    write_cv(root, summary, f"{train.model} on {cfg.transform.name} ({cfg.dataset.name})")
    return summary
