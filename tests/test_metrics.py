"""Song-level voting and metrics: hand-computed cases."""

import numpy as np
import pytest

from pipeline.experiments import metrics

NAMES = ["a", "b", "c"]


def test_mean_vote_differs_from_majority_vote():
    # Two windows weakly say "a", one window strongly says "b":
    # majority vote picks a, mean probability picks b.
    p = np.array([[0.5, 0.4, 0.1], [0.5, 0.4, 0.1], [0.0, 1.0, 0.0]])
    assert metrics.majority_vote(p) == 0
    assert int(metrics.mean_probability_vote(p).argmax()) == 1


def test_majority_tie_broken_by_mean_probability():
    p = np.array([[0.6, 0.4, 0.0], [0.1, 0.9, 0.0]])
    assert metrics.majority_vote(p) == 1


def test_evaluate_windows_song_and_window_accuracy():
    p = np.array(
        [
            [0.9, 0.1, 0.0],  # song s1 (label 0): 2 of 3 windows right
            [0.2, 0.8, 0.0],
            [0.7, 0.3, 0.0],
            [0.1, 0.1, 0.8],  # song s2 (label 1): all windows wrong
            [0.3, 0.3, 0.4],
        ]
    )
    labels = np.array([0, 0, 0, 1, 1])
    ids = [b"s1", b"s1", b"s1", b"s2", b"s2"]
    m = metrics.evaluate_windows(p, labels, ids, NAMES)
    assert m["num_windows"] == 5 and m["num_songs"] == 2
    assert m["window_accuracy"] == pytest.approx(2 / 5)
    assert m["song_accuracy_mean_vote"] == pytest.approx(0.5)
    assert m["song_accuracy_majority_vote"] == pytest.approx(0.5)
    assert m["confusion_matrix_song"] == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert np.sum(m["confusion_matrix_window"]) == 5
    assert m["per_class_song"]["a"]["recall"] == 1.0
    assert m["songs"][1] == {"song_id": "s2", "label": "b", "predicted": "c"}


def test_inconsistent_labels_within_a_song_is_an_error():
    p = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="s1"):
        metrics.song_predictions(p, np.array([0, 1]), ["s1", "s1"])


def test_empty_split_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        metrics.evaluate_windows(np.zeros((0, 3)), np.zeros(0), [], NAMES)
