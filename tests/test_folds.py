"""k-fold cross-validation by song: the folds, the pipeline's splits of a fold, the figures.

- ``assign_folds``: a partition, stratified by genre, balanced, deterministic for a seed.
- ``load_songs`` of a fold (synthetic_small): no song in two splits of a fold, the test splits of
  the K folds partition the songs, no window of a test song in training.
- ``cv_summary`` / ``wilson_interval`` on hand-made numbers.
- ``pipeline.train --folds``: every fold a run directory with its fold in config.json, a re-run
  reuses finished folds, ``--fold`` trains one.
"""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from core.config import DatasetConfig, PipelineConfig, WindowConfig
from core.errors import ConfigError
from pipeline import compare, train
from pipeline.experiments.crossval import Z_95, cv_summary, paired_comparison, wilson_interval
from pipeline.stream.dataset import load_songs, make_dataset
from pipeline.stream.folds import assign_folds, folds_of_split

SPLITS = ("train", "validation", "test")


def _toy(per_genre=(5, 5, 4, 7), seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(per_genre)), per_genre)
    ids = np.asarray([f"g{g}.{i:05d}" for g, n in enumerate(per_genre) for i in range(n)])
    order = rng.permutation(len(ids))
    return ids[order], labels[order]


# --- the fold assignment ----------------------------------------------------------------------
@pytest.mark.parametrize("k", [3, 5])
def test_folds_are_stratified_balanced_partitions(k):
    ids, labels = _toy()
    folds = assign_folds(ids, labels, k, seed=1)
    assert set(folds) == set(range(k))
    sizes = np.bincount(folds, minlength=k)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == len(ids)
    for genre in np.unique(labels):
        per_fold = np.bincount(folds[labels == genre], minlength=k)
        assert per_fold.max() - per_fold.min() <= 1, f"genre {genre}: {per_fold}"


def test_folds_depend_on_the_seed_not_on_the_stored_order():
    ids, labels = _toy()
    folds = dict(zip(ids, assign_folds(ids, labels, 5, seed=3)))
    shuffled_ids, shuffled_labels = _toy(seed=9)  # the same songs, stored in another order
    again = dict(zip(shuffled_ids, assign_folds(shuffled_ids, shuffled_labels, 5, seed=3)))
    assert folds == again
    other = dict(zip(ids, assign_folds(ids, labels, 5, seed=4)))
    assert other != folds


def test_split_folds_of_one_fold_partition_the_folds():
    for k in (3, 5, 10):
        for fold in range(k):
            parts = [folds_of_split(s, fold, k) for s in SPLITS]
            assert set().union(*parts) == set(range(k)) and sum(map(len, parts)) == k
            assert parts[2] == {fold} and fold not in parts[1]


def test_repeated_song_ids_are_refused():
    with pytest.raises(ValueError, match="not unique"):
        assign_folds(["a", "a", "b"], [0, 0, 1], 3, seed=0)


@pytest.mark.parametrize("fields,match", [
    ({"folds": 2}, "at least 3"),
    ({"folds": 5, "fold": 5}, r"fold must be in 0\.\.4"),
    ({"folds": 5, "fold_splits": "train+dev"}, "fold_splits"),
    ({"folds": 5, "fold_splits": "train+train"}, "fold_splits"),
])
def test_invalid_fold_settings(fields, match):
    with pytest.raises(ConfigError, match=match):
        DatasetConfig(name="synthetic_small", **fields).validate()


# --- the pipeline's splits of a fold ---------------------------------------------------------
def _song_ids(dataset_cfg, split):
    return [s["song_id"].decode() for s in load_songs(dataset_cfg, split).as_numpy_iterator()]


def test_fold_splits_never_share_a_song_and_test_folds_partition_the_songs(small_data_dir):
    base = DatasetConfig(name="synthetic_small", data_dir=small_data_dir)
    everything = sorted(sum((_song_ids(base, s) for s in SPLITS), []))
    k = 4
    tested = []
    for fold in range(k):
        cfg = DatasetConfig(name="synthetic_small", data_dir=small_data_dir, folds=k, fold=fold)
        split_ids = {s: _song_ids(cfg, s) for s in SPLITS}
        for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")]:
            assert not set(split_ids[a]) & set(split_ids[b]), f"fold {fold}: {a} and {b} share"
        assert sorted(sum(split_ids.values(), [])) == everything
        genres = collections.Counter(i.split(".")[0] for i in split_ids["test"])
        assert max(genres.values()) - min(genres.values()) <= 1 and len(genres) == 10
        tested += split_ids["test"]
    assert sorted(tested) == everything  # every song tested exactly once


def test_a_folds_windows_carry_only_its_songs(small_data_dir):
    cfg = PipelineConfig(
        dataset=DatasetConfig(name="synthetic_small", data_dir=small_data_dir, folds=4, fold=2),
        window=WindowConfig(window_seconds=1.5, step_seconds=1.5)).validate()
    test_songs = set(_song_ids(cfg.dataset, "test"))
    for _, _, ids in make_dataset(cfg, "train", training=True, with_song_id=True):
        assert not {s.decode() for s in ids.numpy()} & test_songs


# --- the figures ----------------------------------------------------------------------------
def _fold(songs, window_accuracy, num_windows, tag="f"):
    names = ["a", "b", "c"]
    labels = [names.index(t) for t, _ in songs]
    predicted = [names.index(p) for _, p in songs]
    matrix = np.zeros((3, 3), int)
    np.add.at(matrix, (labels, predicted), 1)
    correct = float(np.mean(np.equal(labels, predicted)))
    return {"model": "m", "transform": "t", "class_names": names,
            "songs": [{"song_id": f"{tag}.{i}", "label": t, "predicted": p}
                      for i, (t, p) in enumerate(songs)],
            "song_accuracy_mean_vote": correct, "song_accuracy_majority_vote": correct,
            "num_songs": len(songs), "window_accuracy": window_accuracy,
            "num_windows": num_windows, "confusion_matrix_song": matrix.tolist(),
            "training_seconds": 2.0, "parameters": 7}


def test_cv_summary_pools_the_folds():
    folds = [
        _fold([("a", "a"), ("b", "b"), ("c", "a"), ("a", "a")], 0.5, 40, "f0"),  # 3/4
        _fold([("b", "b"), ("c", "c")], 0.8, 20, "f1"),  # 2/2
        _fold([("a", "b"), ("c", "c"), ("b", "b"), ("a", "a")], 0.6, 40, "f2"),  # 3/4
    ]
    summary = cv_summary(folds)
    assert summary["num_songs"] == 10 and summary["num_windows"] == 100
    assert summary["song_accuracy_mean_vote"] == pytest.approx(0.8)
    assert summary["fold_song_accuracies"] == [0.75, 1.0, 0.75]
    assert summary["fold_song_accuracy_mean"] == pytest.approx(2.5 / 3)
    assert summary["fold_song_accuracy_std"] == pytest.approx(np.sqrt(((0.25 / 3) ** 2 * 2 + (0.5 / 3) ** 2) / 2))
    assert summary["window_accuracy"] == pytest.approx((0.5 * 40 + 0.8 * 20 + 0.6 * 40) / 100)
    assert summary["confusion_matrix_song"] == [[3, 1, 0], [0, 3, 0], [1, 0, 2]]
    assert summary["per_class_song"]["a"]["recall"] == pytest.approx(0.75)
    assert summary["song_accuracy_interval"] == pytest.approx(list(wilson_interval(8, 10)))
    assert summary["training_seconds"] == 6.0 and summary["folds"] == 3


def test_cv_summary_refuses_a_song_tested_twice():
    fold = _fold([("a", "a")], 1.0, 10)
    with pytest.raises(ValueError, match="tested in two folds"):
        cv_summary([fold, fold])


def test_paired_comparison_counts_discordant_songs():
    a = _fold([("a", "a"), ("b", "b"), ("c", "c"), ("a", "b"), ("b", "b")], 0.0, 1)
    b = _fold([("a", "b"), ("b", "c"), ("c", "a"), ("a", "a"), ("b", "b")], 0.0, 1)
    paired = paired_comparison(a, b)
    assert (paired["only_a"], paired["only_b"]) == (3, 1)
    assert paired["p_value"] == pytest.approx(2 * (1 + 4) / 16)  # two-sided binomial, n = 4
    with pytest.raises(ValueError, match="different songs"):
        paired_comparison(a, _fold([("a", "a")], 0.0, 1, tag="other"))


def test_the_table_shows_a_tiny_mcnemar_p_value_unrounded():
    from pipeline.experiments.crossval_report import add_paired, cv_table

    songs = [("a", "a")] * 20
    best = {"approach": "best", **_fold(songs, 1.0, 20)}
    worse = {"approach": "worse", **_fold([("a", "b")] * 20, 0.0, 20)}
    rows = [{"approach": "best"}, {"approach": "worse"}]
    add_paired(rows, {"best": best, "worse": worse})
    assert (rows[1]["only_best"], rows[1]["only_this"]) == (20, 0)
    assert rows[1]["mcnemar_p"] == pytest.approx(2 * 0.5**20)
    for r in rows:
        r.update(song_accuracy=0.5, song_accuracy_ci_low=0.3, song_accuracy_ci_high=0.7,
                 fold_mean=0.5, fold_std=0.1, songs=20, window_accuracy=0.5,
                 song_macro_f1=0.5, training_seconds=1.0)
    assert "20 / 0 (p = 1.9e-06)" in cv_table(rows)


@pytest.mark.parametrize("correct,n", [(8, 10), (45, 50), (0, 10), (10, 10), (1, 3)])
def test_wilson_interval_bounds_solve_its_defining_equation(correct, n):
    # The Wilson bounds are the p with |p_hat - p| = z * sqrt(p (1 - p) / n).
    lo, hi = wilson_interval(correct, n)
    p_hat = correct / n
    assert 0.0 <= lo <= p_hat <= hi <= 1.0
    for p in (lo, hi):
        assert (p_hat - p) ** 2 == pytest.approx(Z_95 ** 2 * p * (1 - p) / n, abs=1e-12)
    assert wilson_interval(0, 10)[1] == pytest.approx(Z_95 ** 2 / (10 + Z_95 ** 2))


# --- pipeline.train --folds ----------------------------------------------------------------
FAST_SVC = ["--dataset-config", "synthetic_small", "--transform", "mfcc", "--model", "svc",
            "--window-seconds", "1.5", "--step-seconds", "1.5", "--verbose", "0"]


def test_train_folds_runs_every_fold_and_reuses_finished_ones(small_data_dir, tmp_path, capsys):
    root = tmp_path / "cv"
    argv = [*FAST_SVC, "--data-dir", small_data_dir, "--run-dir", str(root), "--folds", "4"]
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    summary = json.loads((root / "cv.json").read_text())
    assert summary["num_songs"] == 40 and summary["folds"] == 4
    assert f"on {summary['num_songs']} songs" in out and "Wilson" in out
    for fold in range(4):
        config = json.loads((root / f"fold_{fold}" / "config.json").read_text())
        assert config["pipeline"]["dataset"]["folds"] == 4
        assert config["pipeline"]["dataset"]["fold"] == fold
    assert sorted(s["song_id"] for s in summary["songs"]) == sorted(
        s["song_id"] for f in range(4)
        for s in json.loads((root / f"fold_{f}" / "metrics.json").read_text())["songs"])
    stamps = {p: p.stat().st_mtime_ns for p in root.glob("fold_*/model.joblib")}
    (root / "fold_3" / "model.joblib").unlink()  # as if a kill had stopped the last fold
    assert train.main(argv) == 0
    assert json.loads((root / "cv.json").read_text())["num_songs"] == 40
    for path, stamp in stamps.items():
        assert (path.stat().st_mtime_ns == stamp) == (path.parent.name != "fold_3"), path


def test_train_one_fold(small_data_dir, tmp_path):
    run = tmp_path / "one"
    assert train.main([*FAST_SVC, "--data-dir", small_data_dir, "--run-dir", str(run),
                       "--folds", "4", "--fold", "1"]) == 0
    assert json.loads((run / "metrics.json").read_text())["num_songs"] == 10
    assert json.loads((run / "config.json").read_text())["pipeline"]["dataset"]["fold"] == 1


def test_compare_folds_writes_the_cross_validated_report(small_data_dir, tmp_path):
    report = tmp_path / "report"
    argv = [*FAST_SVC[:2], "--window-seconds", "1.5", "--step-seconds", "1.5",
            "--data-dir", small_data_dir, "--report-dir", str(report), "--models", "svc", "rf",
            "--transforms", "mfcc", "--folds", "4"]
    assert compare.main(argv) == 0
    rows = (report / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("approach,transform,model,folds,songs")
    assert all(",4,40," in row for row in rows[1:])  # 4 folds, 40 songs each
    for name in ("accuracy.png", "per_class.png", "confusion_rf_mfcc.png", "results.md"):
        assert (report / name).stat().st_size > 0, name
    assert (report / "runs" / "mfcc_svc" / "fold_3" / "metrics.json").exists()
    assert "McNemar" in (report / "results.md").read_text()
