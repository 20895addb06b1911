"""Fitting a scikit-learn approach on vectors streamed from the pipeline.

The split is streamed through the same tf.data graph as for the Keras approaches, batch by
batch; each batch of features becomes small vectors (the approach's ``featurize``, e.g. the
mean and standard deviation over time of each coefficient, or a frozen network's features),
and only those vectors are kept in memory to fit the estimator.

A scikit-learn approach has no epochs to choose on the validation split: it is fitted on the
train split and scored on validation (the figures of training.json), then, with
``TrainConfig.refit`` (the default), fitted again on train + validation, so that it learns from
every song the test never sees, as a Keras approach learns from train and stops on validation.
Each split is featurized once.  An approach on a frozen network (``musicnn``) reads its
vectors from the embedding store (``pipeline.stream.embedding_store``: the network passed over
every song once per dataset and window config, not once per run and fold) unless
``DatasetConfig.embeddings`` is off.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from core.config import PipelineConfig, TrainConfig
from core.errors import ConfigError
from pipeline.experiments.run_dir import RunDir
from pipeline.stream.dataset import make_dataset


def featurized_arrays(cfg: PipelineConfig, split: str, featurize, verbose: bool = True):
    """(vectors [n, d], labels [n], song ids [n]) of every window of a split, streamed in
    batches."""
    xs, ys, ids = [], [], []
    ds = make_dataset(cfg, split, training=False, with_song_id=True)
    for x, y, s in tqdm(ds, desc=f"features ({split})", unit="batch", disable=not verbose,
                        leave=False):
        xs.append(np.asarray(featurize(x)))
        ys.append(np.asarray(y))
        ids.extend(np.asarray(s).tolist())
    if not xs:
        raise ConfigError(f"split {split!r} of {cfg.dataset.name} has no windows")
    return np.concatenate(xs), np.concatenate(ys), ids


def split_vectors(cfg: PipelineConfig, train: TrainConfig, split: str, featurize,
                  verbose: bool = True):
    """``featurized_arrays`` of ``split``, read from the embedding store where the approach
    has one (``embedding_store.store_for``), else streamed and featurized."""
    from pipeline.stream.embedding_store import store_for

    store = store_for(cfg, train, verbose=verbose)
    if store is not None:
        return store.arrays(split)
    return featurized_arrays(cfg, split, featurize, verbose=verbose)


def require_split_windows(cfg: PipelineConfig, train: TrainConfig) -> None:
    """ConfigError unless every split (of the fold) gives a window with ``cfg``.

    Where the approach's embedding store is already built, its records say so (a store holds
    exactly the windows of every song, ``embedding_store``), and no audio is decoded: the
    songs' check (``run_evaluation.require_windows``, which decodes and windows songs until the
    first window) was 12 of the 34 CPU s of a 5-fold ``musicnn`` run on 100 songs with its
    store built (cProfile).  Without a store yet, that check, before the store is built.
    """
    from pipeline.experiments.run_evaluation import no_windows_error, require_windows
    from pipeline.stream.embedding_store import store_for

    store = store_for(cfg, train, build=False)
    for split in ("train", "validation", "test"):
        if store is None:
            require_windows(cfg, split)
        elif not store.count(split):
            raise no_windows_error(cfg, split)


def check_windows_per_class(approach, labels: np.ndarray, cfg: PipelineConfig, model: str) -> None:
    """ConfigError when a class has fewer training windows than the estimator needs."""
    present = np.bincount(labels)
    present = present[present > 0]
    if approach.min_windows_per_class > 1 and present.min() < approach.min_windows_per_class:
        raise ConfigError(
            f"{model} cannot be fitted on the {len(labels)} windows of the train split of "
            f"{cfg.dataset.name}: a class has only {present.min()} window(s), and its "
            f"{approach.min_windows_per_class}-fold probability calibration needs at least "
            f"{approach.min_windows_per_class}; use shorter or overlapping windows "
            "(--window-seconds, --step-seconds)"
        )


def fit_estimator(estimator, x: np.ndarray, y: np.ndarray):
    """``estimator.fit(x, y)`` with one BLAS thread (OpenBLAS; OpenMP is left as it is).

    Why: the probe's lbfgs multiplies a [n, 753] matrix by [753, 10] a few dozen times, too
    small to share across threads, and OpenBLAS's threads wait for each other by spinning: on
    the shared 2 cores, fitting the musicnn probe on 600 windows took 0.9-1.9 CPU s with the
    default 2 threads and 0.05-0.08 with one, the same 37 iterations (0.35 against 0.25 on
    6,000 windows).  The fitted numbers do not depend on it (``tests/test_embedding_store.py``).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return estimator.fit(x, y)


def _fit(cfg: PipelineConfig, train: TrainConfig, x: np.ndarray, y: np.ndarray):
    from models.registry import build_model

    return fit_estimator(build_model(train.model, None, 0, seed=cfg.seed, **train.hparams), x, y)


def fit_sklearn(cfg: PipelineConfig, train: TrainConfig, class_names, verbose: int):
    """Fit the approach's estimator on the train split, score it on validation, refit on
    train + validation (``train.refit``); returns (estimator, training info, validation
    metrics of the train-only fit)."""
    from models.registry import featurizer, get_approach
    from pipeline.experiments.metrics import evaluate_windows
    from pipeline.experiments.predictor import sklearn_probabilities

    featurize = featurizer(train.model, train.hparams)
    x, y, _ = split_vectors(cfg, train, "train", featurize, verbose=bool(verbose))
    check_windows_per_class(get_approach(train.model), y, cfg, train.model)
    start = time.perf_counter()
    model = _fit(cfg, train, x, y)
    seconds = time.perf_counter() - start
    val_x, val_y, val_ids = split_vectors(cfg, train, "validation", featurize, verbose=bool(verbose))
    probabilities = sklearn_probabilities(model, val_x, len(class_names))
    validation = evaluate_windows(probabilities, val_y, val_ids, class_names)
    if train.refit:
        start = time.perf_counter()
        model = _fit(cfg, train, np.concatenate([x, val_x]), np.concatenate([y, val_y]))
        seconds += time.perf_counter() - start
    info = {"training_seconds": seconds, "parameters": estimator_size(model),
            "epochs_trained": 1, "fitted_on": "train+validation" if train.refit else "train"}
    return model, info, validation


def estimator_size(model) -> int:
    """A rough parameter count: support vectors x features, tree nodes, or coefficients."""
    est = model[-1]
    if hasattr(est, "calibrated_classifiers_"):  # SVC inside CalibratedClassifierCV
        est = est.calibrated_classifiers_[0].estimator
    if hasattr(est, "support_vectors_"):
        return int(est.support_vectors_.size)
    if hasattr(est, "estimators_"):
        return int(sum(t.tree_.node_count for t in est.estimators_))
    if hasattr(est, "coef_"):
        return int(est.coef_.size + np.size(getattr(est, "intercept_", 0)))
    return 0


def commit_sklearn_model(model, run: RunDir) -> None:
    """Dump under a temporary name and rename into place: the run's commit point."""
    import joblib

    tmp = run.path / "model.tmp.joblib"
    joblib.dump(model, tmp)
    tmp.replace(run.sklearn_model)
