"""Seed repeats of a k-fold evaluation: every fold trained with R seeds, the decisions pooled.

Why it exists: on 30 training songs the seed of a model trained from scratch moves its result by
several songs (cnn2d on mel decided 22 to 29 of the same 51 songs with seeds 1-3), so one
seed per fold mixes the approach with the luck of its initialisation.

    <root>/fold_<i>/            repeat 0 (seed ``cfg.seed``): the plain ``--folds`` layout, so
                                single-seed runs already there are reused
    <root>/repeat_<r>/fold_<i>/ repeat r (seed ``cfg.seed + r``), each a normal run (lock,
                                resume after a kill, reuse when finished)
    <root>/repeat_<r>/cv.json   that repeat's pooled figures (``crossval.cv_summary``)
    <root>/cv_repeats.json      the repeats combined (``combine_repeats``)

The folds (which songs are tested together) stay the same in every repeat: only the seed of
initialisation, shuffling and augmentation changes.  Approaches whose result barely depends on
the seed (``SEED_FREE_KINDS``: scikit-learn, the frozen musicnn probe: a logistic regression
solved to convergence) run once; their summary says so (``repeats_skipped``).

The combined figures:

- ``song_accuracy_mean_vote``: the mean over repeats of the out-of-fold song accuracy (= the
  fraction of all (song, repeat) decisions that are right);
- ``seed_song_accuracy_std``: sample std (ddof 1) of the R per-repeat accuracies, the spread
  across seeds; ``fold_song_accuracy_mean``/``_std``: the spread across folds of the per-fold
  accuracies averaged over the repeats;
- ``song_accuracy_interval``: the Wilson interval of that mean with n = the number of songs, not
  songs x repeats: repeats remove seed noise but test no new song, so they cannot narrow the
  uncertainty that comes from having 50 songs;
- ``paired_comparison``: per song, the fraction of its repeats decided right; the songs where
  one approach's fraction is higher than the other's are the discordant pairs of a two-sided
  sign test (exact binomial).  With one repeat on both sides this is exactly McNemar's test of
  ``crossval.paired_comparison``.  Pairing per (song, repeat) instead would count each song R
  times as if independent and make p-values R times too confident; a majority vote per song
  would need a tie rule for even R and discard how often a song was right.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np

from core.config import PipelineConfig, TrainConfig
from core.files import write_json_atomic
from pipeline.experiments.crossval import cross_validate, wilson_interval

SEED_FREE_KINDS = ("sklearn",)  # the approach kinds that run once whatever --repeats says
REPEATS_JSON = "cv_repeats.json"


def seeds_for(cfg: PipelineConfig, train: TrainConfig, repeats: int) -> list[int]:
    """The seeds an approach is trained with: ``repeats`` of them from ``cfg.seed``, or only
    ``cfg.seed`` for a seed-free approach."""
    from models.registry import get_approach

    if get_approach(train.model).kind in SEED_FREE_KINDS:
        return [cfg.seed]
    return [cfg.seed + r for r in range(repeats)]


def repeat_dir(root: Path, repeat: int) -> Path:
    return Path(root) if repeat == 0 else Path(root) / f"repeat_{repeat}"


def cross_validate_repeats(cfg: PipelineConfig, train: TrainConfig, root: Path, *,
                           repeats: int = 1, verbose: int = 1, overwrite: bool = False) -> dict:
    """Every fold of ``cfg.dataset.folds`` with each seed of ``seeds_for`` (finished runs are
    reused); returns the combined summary (``combine_repeats``), also in ``<root>/cv_repeats.json``
    when there is more than one repeat."""
    seeds = seeds_for(cfg, train, repeats)
    summaries = []
    for r, seed in enumerate(seeds):
        if verbose and len(seeds) > 1:
            print(f"repeat {r + 1}/{len(seeds)} (seed {seed}): {repeat_dir(root, r)}", flush=True)
        summaries.append(cross_validate(dataclasses.replace(cfg, seed=seed), train,
                                        repeat_dir(root, r), verbose=verbose, overwrite=overwrite))
    combined = combine_repeats(summaries, seeds, requested=repeats)
    if len(seeds) > 1:
        write_json_atomic(Path(root) / REPEATS_JSON, combined)
    return combined


def _mean(summaries, key) -> float:
    return float(np.mean([s[key] for s in summaries]))


def combine_repeats(summaries: list[dict], seeds: list[int], requested: int = 1) -> dict:
    """One summary of the cross-validations of the same folds with different seeds (see the
    module docstring); a single one is returned with its repeat fields added."""
    first = summaries[0]
    accuracies = [float(s["song_accuracy_mean_vote"]) for s in summaries]
    per_fold = np.mean([s["fold_song_accuracies"] for s in summaries], axis=0)
    n = int(first["num_songs"])
    mean = float(np.mean(accuracies))
    combined = {
        **first,
        "repeats": len(summaries), "seeds": list(seeds), "repeats_requested": requested,
        "repeats_skipped": requested > len(summaries),
        "repeat_song_accuracies": accuracies,
        "seed_song_accuracy_std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
    }
    if len(summaries) == 1:
        return combined
    combined.update({
        "song_accuracy_mean_vote": mean,
        "song_accuracy_interval": list(wilson_interval(mean * n, n)),
        "fold_song_accuracies": per_fold.tolist(),
        "fold_song_accuracy_mean": float(np.mean(per_fold)),
        "fold_song_accuracy_std": float(np.std(per_fold, ddof=1)) if len(per_fold) > 1 else 0.0,
        "song_accuracy_majority_vote": _mean(summaries, "song_accuracy_majority_vote"),
        "window_accuracy": _mean(summaries, "window_accuracy"),
        "song_macro_f1": _mean(summaries, "song_macro_f1"),
        "confusion_matrix_song": np.sum([s["confusion_matrix_song"] for s in summaries],
                                        axis=0).tolist(),
        "training_seconds": float(sum(s["training_seconds"] for s in summaries)),
        "songs": [{**song, "repeat": r} for r, s in enumerate(summaries) for song in s["songs"]],
    })
    return combined


def song_scores(summary: dict) -> dict[str, float]:
    """Per song, the fraction of its decisions (one per repeat) that are right."""
    right = defaultdict(list)
    for s in summary["songs"]:
        right[s["song_id"]].append(s["label"] == s["predicted"])
    return {song: float(np.mean(r)) for song, r in right.items()}


def paired_comparison(a: dict, b: dict) -> dict:
    """Songs ``a`` decides right more often than ``b`` (``only_a``), the reverse (``only_b``),
    and the exact two-sided sign-test p-value of that split: McNemar's test when both have one
    repeat (see the module docstring).  Both summaries must hold the same songs."""
    from scipy.stats import binomtest

    score_a, score_b = song_scores(a), song_scores(b)
    if set(score_a) != set(score_b):
        raise ValueError("paired comparison of cross-validations over different songs")
    only_a = sum(score_a[s] > score_b[s] for s in score_a)
    only_b = sum(score_b[s] > score_a[s] for s in score_a)
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a": only_a, "only_b": only_b, "p_value": float(p)}


def seeds_cell(summary: dict) -> str:
    """The report's seeds column: "3 seeds: 52.0 % +- 4.0 %", or why there is one."""
    r = summary.get("repeats", 1)
    if r > 1:
        return (f"{r} seeds: {summary['song_accuracy_mean_vote']:.1%} +- "
                f"{summary['seed_song_accuracy_std']:.1%}")
    return "1 (barely seed-dependent: not repeated)" if summary.get("repeats_skipped") else "1"
