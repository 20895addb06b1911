"""Ensembles chosen out of fold: late fusion of approaches, its weights fitted on training songs.

Why it exists: the frozen musicnn probe is at its ceiling on its own, and a fusion of it with
another approach (an MFCC random forest) can change single songs for better or worse depending
on the weight.  A weight is only honest if it is chosen without the songs it is tested on.

``pipeline.compare --folds K --ensemble musicnn rf`` adds one row to the k-fold table, computed
per outer fold ``i`` of the same folds as the single approaches (``pipeline.stream.folds``):

1. the fold's **fitted songs** are its train + validation songs (train only with ``--refit
   false``), as a scikit-learn approach's own fold run is fitted; its test songs are fold ``i``;
2. **inner folds**: the fitted songs are dealt into ``K - 1`` folds by song (genre-stratified,
   ``assign_folds``); each member is fitted on all inner folds but one and predicts the songs
   of that one, giving out-of-fold song probabilities of every fitted song for every member;
3. the **weights** (a point of the simplex on a grid of step ``WEIGHT_STEP``: 0, 0.1, ... 1 for
   two members) are those whose fused out-of-fold song probabilities decide the most fitted
   songs right (ties: the lower log loss, then the earlier grid point);
4. each member is fitted on all fitted songs and predicts the test songs; the test songs are
   decided by the weighted mean of the members' song probabilities (a song's probability is
   the mean of its windows', as for every approach).

The outer test fold never chooses anything (``tests/test_ensemble.py`` changes its labels and
checks that the weights stay the same).  Members are scikit-learn approaches (their
features computed once per member: a frozen network's from the embedding store); a Keras
member would be trained ``K - 1`` more times per fold and is refused.

Not exportable: the ensemble is a comparison's row, not a run directory; its members export
(or not) on their own (``pipeline.export``), the fusion weights are in ``ensemble.json``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from core.config import PipelineConfig, TrainConfig
from core.errors import ConfigError
from core.files import write_json_atomic

WEIGHT_STEP = 0.1
ENSEMBLE_JSON = "ensemble.json"


@dataclasses.dataclass
class Member:
    """One approach of the ensemble: the vectors of every window of every pooled song."""

    label: str
    x: np.ndarray  # [windows, d]
    y: np.ndarray  # [windows] class ids
    song_ids: np.ndarray  # [windows] str
    fit: Callable  # fit(x, y) -> fitted estimator with predict_proba and classes_


def weight_grid(members: int, step: float = WEIGHT_STEP) -> list[tuple[float, ...]]:
    """Every weight vector of ``members`` non-negative multiples of ``step`` summing to 1."""
    n = int(round(1 / step))
    return [tuple(c / n for c in combo)
            for combo in itertools.product(range(n + 1), repeat=members) if sum(combo) == n]


def song_probabilities(member: Member, fit_songs, test_songs, num_classes: int) -> np.ndarray:
    """[len(test_songs), C]: ``member`` fitted on the windows of ``fit_songs``, each test song
    the mean of its windows' probabilities."""
    from pipeline.experiments.predictor import sklearn_probabilities

    fit_mask = np.isin(member.song_ids, list(fit_songs))
    estimator = member.fit(member.x[fit_mask], member.y[fit_mask])
    out = np.zeros((len(test_songs), num_classes))
    for i, song in enumerate(test_songs):
        windows = member.song_ids == song
        out[i] = sklearn_probabilities(estimator, member.x[windows], num_classes).mean(axis=0)
    return out


def choose_weights(probabilities: np.ndarray, labels: np.ndarray,
                   grid: Sequence[tuple[float, ...]]) -> tuple[tuple[float, ...], float]:
    """(weights, song accuracy) of the grid point that decides most songs right from the
    members' song probabilities ``[M, S, C]``; ties: lower log loss, then earlier point."""
    best, best_key = None, None
    for weights in grid:
        fused = np.tensordot(np.asarray(weights), probabilities, axes=1)
        accuracy = float(np.mean(fused.argmax(axis=1) == labels))
        log_loss = float(-np.mean(np.log(fused[np.arange(len(labels)), labels] + 1e-12)))
        key = (-accuracy, log_loss)
        if best_key is None or key < best_key:
            best, best_key = weights, key
    return best, -best_key[0]


def outer_fold(members: Sequence[Member], songs: np.ndarray, labels: np.ndarray,
               fold_of: np.ndarray, fold: int, k: int, *, num_classes: int, refit: bool = True,
               seed: int = 42, step: float = WEIGHT_STEP) -> dict:
    """The ensemble on outer fold ``fold`` (see the module docstring); ``songs``, ``labels``
    and ``fold_of`` describe every pooled song.  Returns the chosen weights, the inner
    out-of-fold accuracy, and the test songs' fused probabilities."""
    from pipeline.stream.folds import assign_folds, folds_of_split

    fitted = folds_of_split("train", fold, k) | (folds_of_split("validation", fold, k)
                                                 if refit else set())
    fit_idx = np.flatnonzero(np.isin(fold_of, sorted(fitted)))
    test_idx = np.flatnonzero(fold_of == fold)
    inner_k = max(2, k - 1)
    inner = assign_folds(songs[fit_idx], labels[fit_idx], inner_k, seed)
    oof = np.zeros((len(members), len(fit_idx), num_classes))
    for j in range(inner_k):
        held = inner == j
        for m, member in enumerate(members):
            oof[m, held] = song_probabilities(member, songs[fit_idx][~held],
                                              songs[fit_idx][held], num_classes)
    weights, inner_accuracy = choose_weights(oof, labels[fit_idx], weight_grid(len(members), step))
    test = np.stack([song_probabilities(member, songs[fit_idx], songs[test_idx], num_classes)
                     for member in members])
    fused = np.tensordot(np.asarray(weights), test, axes=1)
    return {"fold": fold, "weights": list(weights), "inner_folds": inner_k,
            "inner_song_accuracy": inner_accuracy, "fitted_songs": len(fit_idx),
            "test_songs": songs[test_idx].tolist(), "test_labels": labels[test_idx].tolist(),
            "member_probabilities": test, "probabilities": fused}


def fold_summary(result: dict, class_names: Sequence[str], label: str, seconds: float) -> dict:
    """A fold's result in the shape of a run's test summary (what ``crossval.cv_summary``
    pools).  Window figures are not defined (members may cut songs into other windows): NaN."""
    from sklearn.metrics import confusion_matrix

    labels = np.asarray(result["test_labels"])
    predicted = result["probabilities"].argmax(axis=1)
    return {
        "model": "ensemble", "transform": "fusion", "label": label,
        "class_names": list(class_names), "num_songs": len(labels), "num_windows": 1,
        "song_accuracy_mean_vote": float(np.mean(predicted == labels)),
        "song_accuracy_majority_vote": float("nan"), "window_accuracy": float("nan"),
        "confusion_matrix_song": confusion_matrix(
            labels, predicted, labels=list(range(len(class_names)))).tolist(),
        "training_seconds": seconds, "parameters": 0,
        "songs": [{"song_id": s, "label": class_names[t], "predicted": class_names[p]}
                  for s, t, p in zip(result["test_songs"], labels, predicted)],
    }


# --- the pipeline side: members from the comparison's jobs -----------------------------------
def member_label(job) -> str:
    return f"{job.model} on {job.transform}"


def check_members(jobs: Sequence, names: Sequence[str]) -> list:
    """The comparison's jobs the ensemble ``names`` (``MODEL`` or ``TRANSFORM:MODEL``) refer
    to; ConfigError for a name not in the grid, a Keras approach, or fewer than two."""
    from models.registry import get_approach

    if len(names) < 2:
        raise ConfigError(f"--ensemble needs at least two approaches, got {list(names)}")
    if not jobs or not jobs[0].all_folds:
        raise ConfigError("--ensemble chooses its weights out of fold: it needs --folds K "
                          "(without --fold)")
    chosen = []
    for name in names:
        transform, _, model = name.rpartition(":")
        match = [j for j in jobs if j.model == model and transform in ("", j.transform)]
        if not match:
            raise ConfigError(f"--ensemble {name}: not an approach of the comparison's grid "
                              "(add it to --models/--transforms)")
        if get_approach(model).kind != "sklearn":
            raise ConfigError(
                f"--ensemble {name}: only scikit-learn approaches (svc, rf, musicnn) can be "
                f"members; a Keras approach would be trained {jobs[0].cfg.dataset.folds - 1} "
                "more times per fold for the inner folds")
        chosen.append(match[0])
    if len({member_label(j) for j in chosen}) != len(chosen):
        raise ConfigError(f"--ensemble names an approach twice: {list(names)}")
    return chosen


def load_member(job, verbose: bool) -> Member:
    """The vectors of every window of the pooled songs of ``job`` (its dataset's own splits,
    read once: from the embedding store, or streamed and featurized)."""
    from models.registry import build_model, featurizer
    from pipeline.experiments.sklearn_training import fit_estimator, split_vectors

    whole = dataclasses.replace(job.cfg, dataset=dataclasses.replace(job.cfg.dataset,
                                                                     folds=0, fold=0))
    featurize = featurizer(job.model, job.train.hparams)
    parts = [split_vectors(whole, job.train, split, featurize, verbose=verbose)
             for split in job.cfg.dataset.fold_splits.split("+")]
    ids = np.asarray([s.decode() if isinstance(s, bytes) else str(s)
                      for p in parts for s in p[2]])

    def fit(x, y):
        return fit_estimator(build_model(job.model, None, 0, seed=job.cfg.seed, **job.train.hparams),
                             x, y)  # one BLAS thread: see fit_estimator

    return Member(member_label(job), np.concatenate([p[0] for p in parts]),
                  np.concatenate([p[1] for p in parts]), ids, fit)


def song_table(members: Sequence[Member]) -> tuple[np.ndarray, np.ndarray]:
    """(song ids, labels) of the pooled songs, sorted by id; every member must hold them all."""
    first = members[0]
    songs, index = np.unique(first.song_ids, return_index=True)
    for m in members[1:]:
        if set(np.unique(m.song_ids)) != set(songs):
            raise ValueError(f"{m.label} and {first.label} hold different songs")
    return songs, first.y[index].astype(np.int64)


def cross_validate_ensemble(jobs: Sequence, names: Sequence[str], report_dir: Path,
                            verbose: int = 0) -> tuple[dict, Path]:
    """The ensemble of ``names`` over the comparison's folds: (cv summary, its folder), the
    folder holding ``ensemble.json`` (weights per fold) and ``cv.json``."""
    from pipeline.experiments.crossval import cv_summary, write_cv
    from pipeline.stream.dataset import class_names as dataset_class_names
    from pipeline.stream.folds import assign_folds

    chosen = check_members(jobs, names)
    cfg: PipelineConfig = chosen[0].cfg
    train: TrainConfig = chosen[0].train
    start = time.perf_counter()
    members = [load_member(j, bool(verbose)) for j in chosen]
    songs, labels = song_table(members)
    k = cfg.dataset.folds
    fold_of = assign_folds(songs, labels, k, cfg.dataset.fold_seed)
    names_ = dataset_class_names(cfg.dataset)
    label = "ensemble of " + " + ".join(m.label for m in members)
    folds, summaries = [], []
    for fold in range(k):
        fold_start = time.perf_counter()
        result = outer_fold(members, songs, labels, fold_of, fold, k, num_classes=len(names_),
                            refit=train.refit, seed=cfg.seed)
        summaries.append(fold_summary(result, names_, label, time.perf_counter() - fold_start))
        folds.append({key: result[key] for key in ("fold", "weights", "inner_folds",
                                                   "inner_song_accuracy", "fitted_songs")})
    summary = cv_summary(summaries)
    summary["training_seconds"] = time.perf_counter() - start
    summary["label"] = label
    root = Path(report_dir) / "runs" / ("ensemble_" + "_".join(j.model for j in chosen))
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / ENSEMBLE_JSON, {
        "members": [m.label for m in members], "method": "late fusion of song probabilities",
        "weight_step": WEIGHT_STEP, "folds": folds})
    write_cv(root, summary, label)
    return summary, root


def paired_with_best_single(results: Sequence[tuple[dict, Path]], ensemble: dict) -> str:
    """One paragraph: the ensemble against the best single approach on the same songs."""
    from pipeline.experiments.crossval import paired_comparison
    from pipeline.experiments.comparison_report import approach_label

    singles = [s for s, _ in results if s is not ensemble]
    best = max(singles, key=lambda s: (s["song_accuracy_mean_vote"], s["window_accuracy"]))
    paired = paired_comparison(ensemble, best)
    return (f"**{approach_label(ensemble)}** against the best single approach, "
            f"{approach_label(best)}, on the same {ensemble['num_songs']} songs: "
            f"{ensemble['song_accuracy_mean_vote']:.1%} against "
            f"{best['song_accuracy_mean_vote']:.1%}; only the ensemble right on "
            f"{paired['only_a']} songs, only {best['model']} on {paired['only_b']} "
            f"(exact McNemar p = {paired['p_value']:.2g}). Weights per fold (chosen on the "
            f"fold's training songs only): {ENSEMBLE_JSON} of the ensemble's run folder.")


def optional_names(value: Optional[Sequence[str]]) -> list[str]:
    """``--ensemble`` values, commas allowed (``musicnn,rf`` or ``musicnn rf``)."""
    return [n for item in (value or []) for n in item.split(",") if n]
