"""The embedding store (pipeline/stream/embedding_store.py) and the ensemble chosen out of fold
(pipeline/experiments/ensemble.py).

- the store holds exactly the vectors the streamed path computes (own splits and folds), is
  computed once, and any change of its inputs (windows, weights identity, the dataset's files)
  makes another store, never a stale read; a build that fails leaves nothing behind;
- a layer of a store is read from its files once per process and every split of every fold
  selected from that reading is exactly the records' windows; a built store answers whether
  a split has windows without decoding songs; scikit-learn fits run on one BLAS thread with
  the same result;
- ``compare --folds 3`` of ``musicnn`` (with an ensemble) passes the network over every window
  of the dataset once, and its folds decide the songs as the store-less path does;
- the ensemble's weights are chosen on the outer fold's training songs only: its test songs'
  labels do not move them, and no member is ever fitted on a test song.

Store tests use a cheap stand-in network (means and maxima of the musicnn input); the
pass-count test needs the musicnn wheel.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from core.config import DatasetConfig, PipelineConfig, TransformConfig, WindowConfig  # noqa: E402
from core.errors import ConfigError  # noqa: E402
from models import musicnn_checkpoint  # noqa: E402
from models.frozen_features import FrozenFeatures  # noqa: E402
from pipeline.experiments import ensemble  # noqa: E402
from pipeline.stream import embedding_store  # noqa: E402
from pipeline.stream.dataset import make_dataset  # noqa: E402
from pipeline.stream.folds import fold_song_ids  # noqa: E402

needs_wheel = pytest.mark.skipif(not musicnn_checkpoint.is_installed(),
                                 reason="musicnn wheel not installed")


def _cfg(data_dir, emb_dir, **dataset) -> PipelineConfig:
    return PipelineConfig(
        dataset=DatasetConfig(name="synthetic_small", data_dir=data_dir,
                              embedding_dir=str(emb_dir), **dataset),
        window=WindowConfig(sample_rate=16000, window_seconds=2.976, step_seconds=2.976),
        transform=TransformConfig(name="musicnn")).validate()


class _Counting:
    """A stand-in frozen network: per-band mean and max of the patch; counts its windows."""

    def __init__(self):
        self.windows = 0

    def __call__(self, x):
        self.windows += int(x.shape[0])
        return {"mean": tf.reduce_mean(x, axis=1), "max": tf.reduce_max(x, axis=1)}


def _features(net, version=1, layer="max"):
    return FrozenFeatures(name="standin", layers=("mean", "max"), layer=layer,
                          identity={"version": version}, compute=net)


def _streamed(cfg, split, layer):
    xs, ids = [], []
    for x, _, s in make_dataset(cfg, split, training=False, with_song_id=True):
        xs.append(_Counting()(x)[layer].numpy())
        ids += s.numpy().tolist()
    return np.concatenate(xs), ids


def test_store_holds_the_streamed_vectors_and_is_computed_once(small_data_dir, tmp_path):
    net = _Counting()
    cfg = _cfg(small_data_dir, tmp_path)
    store = embedding_store.EmbeddingStore.ensure(cfg, _features(net), verbose=False)
    total = sum(s["windows"] for s in store.info["splits"].values())
    assert net.windows == total == 120  # 40 songs x 3 windows, one pass
    for split in ("train", "test"):
        x, _, ids = store.arrays(split)
        want_x, want_ids = _streamed(cfg, split, "max")
        assert ids == want_ids and np.array_equal(x, want_x)
    # a fold's split: the fold's songs, the streamed fold's vectors
    fold_cfg = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, folds=3, fold=1))
    again = embedding_store.EmbeddingStore.ensure(fold_cfg, _features(net, layer="mean"),
                                                  verbose=False)
    assert net.windows == total and again.path == store.path  # no second pass
    x, _, ids = again.arrays("validation")
    from pipeline.stream.dataset import ensure_built

    songs = fold_song_ids(ensure_built(fold_cfg.dataset), fold_cfg.dataset, "validation")
    assert sorted({s.decode() for s in ids}) == songs
    want_x, want_ids = _streamed(fold_cfg, "validation", "mean")
    order = np.argsort(np.asarray(want_ids), kind="stable")
    got = np.argsort(np.asarray(ids), kind="stable")
    np.testing.assert_array_equal(x[got], want_x[order])


def test_any_change_of_the_inputs_makes_another_store(small_data_dir, tmp_path):
    net = _Counting()
    cfg = _cfg(small_data_dir, tmp_path)
    first = embedding_store.EmbeddingStore.ensure(cfg, _features(net), verbose=False).path
    other_windows = dataclasses.replace(cfg, window=dataclasses.replace(cfg.window,
                                                                        step_seconds=2.0))
    paths = {first,
             embedding_store.EmbeddingStore.ensure(other_windows, _features(net),
                                                   verbose=False).path,
             embedding_store.EmbeddingStore.ensure(cfg, _features(net, version=2),
                                                   verbose=False).path}
    assert len(paths) == 3 and net.windows > 120
    # the dataset rewritten (a rebuild rewrites its files): the old store is not read
    from pipeline.stream.dataset import ensure_built

    builder = ensure_built(cfg.dataset)
    shard = sorted(Path(builder.data_dir).glob("*.tfrecord*"))[0]
    stat = shard.stat()
    try:
        os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        before = net.windows
        rebuilt = embedding_store.EmbeddingStore.ensure(cfg, _features(net), verbose=False)
        assert rebuilt.path != first and net.windows == before + 120
    finally:
        os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    info = json.loads((first / "store.json").read_text())
    assert info["inputs"]["window"]["step_seconds"] == 2.976 and info["dims"] == {
        "mean": 96, "max": 96}


def test_a_failed_build_leaves_no_store(small_data_dir, tmp_path):
    def broken(x):
        raise RuntimeError("killed mid-pass")

    cfg = _cfg(small_data_dir, tmp_path)
    with pytest.raises(RuntimeError, match="killed"):
        embedding_store.EmbeddingStore.ensure(cfg, _features(broken), verbose=False)
    assert not any(tmp_path.iterdir())  # no store, no temporary folder
    net = _Counting()
    assert embedding_store.EmbeddingStore.ensure(cfg, _features(net), verbose=False)
    assert net.windows == 120


def _records(store, split, layer, songs=None):
    """The windows of ``split`` read record by record (the reading the store had before it kept
    a layer in memory): (vectors, labels, song ids)."""
    spec = {"song_id": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
            "split": tf.io.FixedLenFeature([], tf.string),
            layer: tf.io.FixedLenFeature([store.info["dims"][layer]], tf.float32)}
    xs, ys, ids = [], [], []
    for record in tf.data.TFRecordDataset([str(store.path / f) for f in store.info["files"]]):
        e = tf.io.parse_single_example(record, spec)
        song = e["song_id"].numpy()
        if (song.decode() in songs) if songs is not None else e["split"].numpy() == split.encode():
            xs.append(e[layer].numpy())
            ys.append(int(e["label"]))
            ids.append(song)
    return np.stack(xs), np.asarray(ys), ids


def test_a_store_layer_is_read_once_per_process_and_gives_every_record_exactly(
        small_data_dir, tmp_path, monkeypatch):
    from pipeline.stream.dataset import ensure_built

    reads = []
    real = embedding_store.read_windows
    monkeypatch.setattr(embedding_store, "read_windows",
                        lambda files, layer, dims: reads.append(layer) or real(files, layer, dims))
    cfg = _cfg(small_data_dir, tmp_path)
    features = _features(_Counting())
    store = embedding_store.EmbeddingStore.ensure(cfg, features, verbose=False)
    assert not reads  # building reads nothing back
    for split in ("train", "validation", "test"):
        x, y, ids = store.arrays(split)
        want = _records(store, split, "max")
        assert np.array_equal(x, want[0]) and np.array_equal(y, want[1]) and ids == want[2]
        assert x.dtype == np.float32 and store.count(split) == len(ids)
    for fold in range(3):  # every fold of 3: the fold's songs, in the store's order
        fold_cfg = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, folds=3,
                                                                        fold=fold))
        fold_store = embedding_store.EmbeddingStore.ensure(fold_cfg, features, verbose=False)
        for split in ("train", "validation", "test"):
            songs = set(fold_song_ids(ensure_built(fold_cfg.dataset), fold_cfg.dataset, split))
            x, y, ids = fold_store.arrays(split)
            want = _records(fold_store, split, "max", songs)
            assert np.array_equal(x, want[0]) and np.array_equal(y, want[1]) and ids == want[2]
            batched = list(fold_store.batches(split))  # what evaluation reads: the same windows
            assert all(len(b[0]) <= cfg.batch_size for b in batched)
            assert np.array_equal(np.concatenate([b[0] for b in batched]), x)
            assert sum((b[2].numpy().tolist() for b in batched), []) == ids
    assert reads == ["max"]  # 3 own splits + 3 folds x 3 splits: one reading
    x_mean, _, _ = store.arrays("test", "mean")
    assert reads == ["max", "mean"] and np.array_equal(x_mean, _records(store, "test", "mean")[0])
    # a store rewritten in place (same folder, new files) is read again, never served stale
    shard = store.path / store.info["files"][0]
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10**9))
    store.arrays("test")
    assert reads == ["max", "mean", "max"]


def test_split_windows_are_checked_on_a_built_store_without_decoding_songs(
        small_data_dir, tmp_path, monkeypatch):
    from pipeline.experiments import run_evaluation, sklearn_training

    features = _features(_Counting())
    monkeypatch.setattr(embedding_store, "store_for",
                        lambda cfg, train, build=True, verbose=True:
                        embedding_store.EmbeddingStore.find(cfg, features))

    def decoding(cfg, split):
        raise AssertionError(f"songs of {split} decoded")

    monkeypatch.setattr(run_evaluation, "require_windows", decoding)
    cfg = _cfg(small_data_dir, tmp_path, folds=3, fold=2)
    with pytest.raises(AssertionError, match="decoded"):  # no store yet: the songs' check
        sklearn_training.require_split_windows(cfg, None)
    embedding_store.EmbeddingStore.ensure(cfg, features, verbose=False)
    sklearn_training.require_split_windows(cfg, None)  # the store's records answer
    # windows longer than every song: a store of no windows, and the songs' own error
    long = dataclasses.replace(cfg, window=dataclasses.replace(cfg.window, window_seconds=10.0,
                                                               step_seconds=10.0))
    assert embedding_store.EmbeddingStore.ensure(long, features, verbose=False).count("test") == 0
    with pytest.raises(ConfigError, match="split 'train' .* gives no windows"):
        sklearn_training.require_split_windows(long, None)


def test_estimators_are_fitted_with_one_blas_thread_and_the_same_result():
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_info

    from pipeline.experiments.sklearn_training import fit_estimator

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    class Recording(LogisticRegression):
        def fit(self, x, y):
            self.threads_ = blas_threads()
            return super().fit(x, y)

    before = blas_threads()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    x = (np.eye(4)[y] @ rng.normal(0, 1, (4, 64)) + rng.normal(0, 2, (400, 64))).astype(np.float32)
    fitted = fit_estimator(Recording(max_iter=500), x, y)
    assert fitted.threads_ and set(fitted.threads_) == {1} and blas_threads() == before
    plain = LogisticRegression(max_iter=500).fit(x, y)
    np.testing.assert_allclose(fitted.predict_proba(x), plain.predict_proba(x), atol=1e-6)
    assert np.array_equal(fitted.predict(x), plain.predict(x))


# --- the ensemble ---------------------------------------------------------------------------
class _Recording:
    """A member's fit: logistic regression, recording which songs it was fitted on."""

    def __init__(self):
        self.fitted_songs = []

    def __call__(self, x, y):
        from sklearn.linear_model import LogisticRegression

        self.fitted_songs.append(set(np.round(x[:, -1]).astype(int).tolist()))
        return LogisticRegression(max_iter=500).fit(x[:, :-1], y)


class _Dropping:  # predict_proba sees the song-index column removed
    def __init__(self, fit):
        self.fit = fit

    def __call__(self, x, y):
        model = self.fit(x, y)
        return _Wrapped(model)


@dataclasses.dataclass
class _Wrapped:
    model: object

    @property
    def classes_(self):
        return self.model.classes_

    def predict_proba(self, x):
        return self.model.predict_proba(x[:, :-1])


def _members(labels, rng):
    """Two members on 30 songs x 2 windows: one informative, one noise; the last column of x
    is the song's index (so fits can be checked)."""
    songs = np.asarray([f"s{i:02d}" for i in range(len(labels))])
    ids = np.repeat(songs, 2)
    y = np.repeat(labels, 2)
    index = np.repeat(np.arange(len(labels)), 2)[:, None].astype(float)
    good = np.eye(3)[y] * 2 + rng.normal(0, 1, (len(y), 3))
    noise = rng.normal(0, 1, (len(y), 3))
    fits = [_Recording(), _Recording()]
    members = [ensemble.Member(name, np.hstack([f, index]), y, ids, _Dropping(fit))
               for name, f, fit in (("good", good, fits[0]), ("noise", noise, fits[1]))]
    return members, songs, fits


def test_weight_grid_covers_the_simplex():
    assert len(ensemble.weight_grid(2)) == 11 and len(ensemble.weight_grid(3)) == 66
    assert all(abs(sum(w) - 1) < 1e-9 for w in ensemble.weight_grid(3))


def test_the_test_fold_never_chooses_the_weights_nor_is_fitted_on():
    labels = np.tile([0, 1, 2], 10)
    members, songs, fits = _members(labels, np.random.default_rng(0))
    fold_of = np.arange(30) % 5
    result = ensemble.outer_fold(members, songs, labels, fold_of, 2, 5, num_classes=3)
    test_index = set(np.flatnonzero(fold_of == 2).tolist())
    assert all(not (s & test_index) for fit in fits for s in fit.fitted_songs)
    assert result["weights"][0] > result["weights"][1]  # the informative member weighs more
    # other labels on the test songs: the same weights (they are chosen without them)
    relabelled = labels.copy()
    relabelled[fold_of == 2] = (relabelled[fold_of == 2] + 1) % 3
    members2, _, _ = _members(labels, np.random.default_rng(0))
    for m in members2:
        m.y = np.repeat(relabelled, 2)
    again = ensemble.outer_fold(members2, songs, relabelled, fold_of, 2, 5, num_classes=3)
    assert again["weights"] == result["weights"]
    assert again["inner_song_accuracy"] == result["inner_song_accuracy"]


def test_ensemble_members_are_refused_before_any_training(tmp_path):
    from pipeline import compare

    base = ["--dataset-config", "synthetic_small", "--data-dir", str(tmp_path / "none"),
            "--report-dir", str(tmp_path / "r"), "--transforms", "mfcc"]
    with pytest.raises(ConfigError, match="only scikit-learn"):
        compare.main(base + ["--models", "rf", "lstm", "--folds", "3", "--ensemble", "rf,lstm"])
    with pytest.raises(ConfigError, match="needs --folds"):
        compare.main(base + ["--models", "rf", "svc", "--ensemble", "rf", "svc"])
    with pytest.raises(ConfigError, match="not an approach of the comparison"):
        compare.main(base + ["--models", "rf", "svc", "--folds", "3", "--ensemble", "rf", "cnn2d"])
    assert not (tmp_path / "r" / "runs").exists()


def test_an_ensemble_is_refused_by_export(tmp_path):
    from pipeline.serving.exporting import export_run

    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / ensemble.ENSEMBLE_JSON).write_text("{}")
    with pytest.raises(ConfigError, match="ensemble .* is not exportable"):
        export_run(tmp_path / "ens", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- the whole path: one network pass for a k-fold comparison ----------------------------------
@needs_wheel
def test_compare_folds_with_musicnn_passes_the_network_over_each_window_once(
        small_data_dir, tmp_path, network_windows):
    from pipeline import compare, train

    counted = network_windows  # every way into the frozen network (tests/conftest.py)
    report = tmp_path / "report"
    common = ["--dataset-config", "synthetic_small", "--data-dir", small_data_dir,
              "--embedding-dir", str(tmp_path / "emb"), "--folds", "3"]
    assert compare.main(common + ["--report-dir", str(report), "--models", "musicnn", "rf",
                                  "--transforms", "musicnn", "mfcc", "--hparam",
                                  "n_estimators=20", "--ensemble", "musicnn", "rf"]) == 0
    assert counted["windows"] == 120  # 40 songs x 3 windows: one pass for 3 folds + ensemble
    results = (report / "results.md").read_text()
    assert "ensemble of musicnn on musicnn + rf on mfcc" in results
    assert "against the best single approach" in results
    # the store-less path decides the same songs the same way (one fold, one more pass)
    assert train.main(common + ["--model", "musicnn", "--fold", "1", "--embeddings", "false",
                                "--run-dir", str(tmp_path / "nostore"), "--verbose", "0"]) == 0
    assert counted["windows"] == 120 + 120
    stored = json.loads((report / "runs" / "musicnn_musicnn" / "fold_1" / "metrics.json")
                        .read_text())
    streamed = json.loads((tmp_path / "nostore" / "metrics.json").read_text())
    assert stored["songs"] == streamed["songs"]
    assert stored["window_accuracy"] == pytest.approx(streamed["window_accuracy"])
