"""Cross-validation by song of a scikit-learn estimator on window vectors.

Why it exists: a scikit-learn approach is fitted on windows, but a window's neighbours are the
same song, so a cross-validation that splits windows scores a model on songs it was fitted on
(the leakage the project's splits exist to prevent).  Here the folds hold whole songs, dealt
as ``pipeline.stream.folds.assign_folds`` deals the outer k-fold (stratified by genre,
deterministic for a seed), and the score is the project's: **song accuracy**, each held-out
song decided by the mean of its windows' probabilities (``metrics.song_predictions``).

``SongKFold`` is an ordinary scikit-learn splitter (``split(X, y, groups)`` with the song ids
as groups), so Keras Tuner's ``SklearnTuner`` and scikit-learn's own tools take it as ``cv``.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np


class SongKFold:
    """K folds of whole songs (``groups`` = each window's song id), stratified by genre."""

    def __init__(self, n_splits: int = 5, seed: int = 42):
        if n_splits < 2:
            raise ValueError(f"a cross-validation needs at least 2 folds, got {n_splits}")
        self.n_splits = n_splits
        self.seed = seed

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def song_folds(self, y: np.ndarray, groups: Sequence) -> np.ndarray:
        """The fold of each window: that of its song."""
        from pipeline.stream.folds import assign_folds

        groups = np.asarray([str(g) for g in groups])
        songs, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
        labels = np.asarray(y)[first]
        if len(songs) < self.n_splits:
            raise ValueError(f"{len(songs)} songs cannot fill {self.n_splits} folds")
        return assign_folds(songs, labels, self.n_splits, self.seed)[inverse]

    def split(self, X, y, groups) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if groups is None:
            raise ValueError("SongKFold needs each window's song id as groups")
        fold_of = self.song_folds(np.asarray(y), groups)
        for fold in range(self.n_splits):
            yield np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)


def song_cv_scores(make_estimator: Callable, x: np.ndarray, y: np.ndarray, song_ids: Sequence,
                   cv: SongKFold, num_classes: int) -> dict:
    """Out-of-fold scores of ``make_estimator()`` (a fresh unfitted estimator per fold):
    ``cv_song_accuracy`` (every song held out once, decided by its windows' mean
    probabilities), ``cv_window_accuracy``, and the per-fold song accuracies."""
    from pipeline.experiments.metrics import song_predictions
    from pipeline.experiments.predictor import sklearn_probabilities
    from pipeline.experiments.sklearn_training import fit_estimator

    song_ids = np.asarray([str(s) for s in song_ids])
    right_songs = songs = right_windows = 0
    per_fold = []
    for fit, held in cv.split(x, y, song_ids):
        estimator = fit_estimator(make_estimator(), x[fit], y[fit])  # one BLAS thread
        probabilities = sklearn_probabilities(estimator, x[held], num_classes)
        decided = song_predictions(probabilities, y[held], song_ids[held])
        right = int(np.sum(decided["mean_vote"] == decided["labels"]))
        per_fold.append(right / len(decided["labels"]))
        right_songs += right
        songs += len(decided["labels"])
        right_windows += int(np.sum(probabilities.argmax(axis=1) == y[held]))
    return {"cv_song_accuracy": right_songs / songs, "cv_window_accuracy": right_windows / len(y),
            "cv_fold_song_accuracies": per_fold, "cv_songs": songs}
