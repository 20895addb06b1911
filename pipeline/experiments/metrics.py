"""Window-level and song-level evaluation of window probabilities.

A model scores 3 s windows; a listener cares about songs. This module turns per-window class
probabilities into song decisions (mean-probability vote and majority vote), and computes the
numbers a run reports: accuracies, per-class precision/recall/F1 and confusion matrices.
Pure numpy/scikit-learn, so evaluation, prediction and comparison all share it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def _as_text(song_ids: Sequence) -> list[str]:
    return [s.decode() if isinstance(s, (bytes, np.bytes_)) else str(s) for s in song_ids]


def group_by_song(song_ids: Sequence) -> "OrderedDict[str, np.ndarray]":
    """Map each song id to the indices of its windows, songs in first-seen order."""
    groups: "OrderedDict[str, list[int]]" = OrderedDict()
    for i, sid in enumerate(_as_text(song_ids)):
        groups.setdefault(sid, []).append(i)
    return OrderedDict((k, np.asarray(v)) for k, v in groups.items())


def mean_probability_vote(window_probabilities: np.ndarray) -> np.ndarray:
    """Song-level probabilities: the mean of its windows' probabilities."""
    return np.asarray(window_probabilities, dtype=np.float64).mean(axis=0)


def majority_vote(window_probabilities: np.ndarray) -> int:
    """The class most windows predict; ties go to the higher mean probability."""
    probs = np.asarray(window_probabilities, dtype=np.float64)
    counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
    tied = np.flatnonzero(counts == counts.max())
    return int(tied[np.argmax(probs.mean(axis=0)[tied])])


def song_predictions(probabilities: np.ndarray, labels: np.ndarray, song_ids: Sequence) -> dict:
    """Aggregate window probabilities per song.

    Returns song ids, their true labels, mean-probability predictions and majority predictions.
    Raises ValueError if one song's windows carry different labels (a pipeline bug).
    """
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels)
    ids, true, mean_pred, major_pred, mean_probs = [], [], [], [], []
    for sid, idx in group_by_song(song_ids).items():
        song_labels = np.unique(labels[idx])
        if len(song_labels) != 1:
            raise ValueError(f"song {sid} has windows with different labels {song_labels}")
        p = mean_probability_vote(probabilities[idx])
        ids.append(sid)
        true.append(int(song_labels[0]))
        mean_probs.append(p)
        mean_pred.append(int(p.argmax()))
        major_pred.append(majority_vote(probabilities[idx]))
    return {
        "song_ids": ids,
        "labels": np.asarray(true, dtype=np.int64),
        "mean_vote": np.asarray(mean_pred, dtype=np.int64),
        "majority_vote": np.asarray(major_pred, dtype=np.int64),
        "mean_probabilities": np.asarray(mean_probs),
    }


def per_class(labels, predictions, class_names) -> dict:
    k = len(class_names)
    p, r, f, support = precision_recall_fscore_support(
        labels, predictions, labels=list(range(k)), zero_division=0
    )
    return {
        name: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }


def evaluate_windows(
    probabilities: np.ndarray,
    labels: np.ndarray,
    song_ids: Sequence,
    class_names: Sequence[str],
) -> dict:
    """All the numbers of a run's metrics.json, JSON-serialisable."""
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels).astype(np.int64)
    if len(probabilities) == 0:
        raise ValueError("no windows to evaluate: the split is empty")
    k = len(class_names)
    window_pred = probabilities.argmax(axis=1)
    songs = song_predictions(probabilities, labels, song_ids)
    window_f1 = per_class(labels, window_pred, class_names)
    song_f1 = per_class(songs["labels"], songs["mean_vote"], class_names)
    present = [c for c in class_names if song_f1[c]["support"] > 0]
    return {
        "num_windows": int(len(labels)),
        "num_songs": int(len(songs["song_ids"])),
        "window_accuracy": float(np.mean(window_pred == labels)),
        "song_accuracy_mean_vote": float(np.mean(songs["mean_vote"] == songs["labels"])),
        "song_accuracy_majority_vote": float(np.mean(songs["majority_vote"] == songs["labels"])),
        "window_macro_f1": float(np.mean([window_f1[c]["f1"] for c in present])),
        "song_macro_f1": float(np.mean([song_f1[c]["f1"] for c in present])),
        "class_names": list(class_names),
        "per_class_window": window_f1,
        "per_class_song": song_f1,
        "confusion_matrix_window": confusion_matrix(labels, window_pred, labels=list(range(k))).tolist(),
        "confusion_matrix_song": confusion_matrix(
            songs["labels"], songs["mean_vote"], labels=list(range(k))
        ).tolist(),
        "songs": [
            {"song_id": sid, "label": class_names[t], "predicted": class_names[p]}
            for sid, t, p in zip(songs["song_ids"], songs["labels"], songs["mean_vote"])
        ],
    }
