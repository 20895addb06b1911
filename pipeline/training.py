"""Train one approach on the streaming pipeline: fit on train, select on validation, test once.

Shared by `pipeline.train` (one approach), `pipeline.compare` (a grid) and `tuning` (the best
trial's retraining). Keras approaches use `model.fit` with the usual callbacks (BackupAndRestore
makes a killed run resume from its last finished epoch); scikit-learn approaches are fitted on
compact features pooled from the same TF transform, streamed in batches.
"""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from gtzan_tfds.constants import GENRES, NUM_CLASSES
from pipeline import plots
from pipeline.config import PipelineConfig, TrainConfig
from pipeline.predictor import Predictor, evaluate_split, format_summary, write_evaluation
from pipeline.run_dir import RunDir


def set_seeds(seed: int, deterministic: bool = True) -> None:
    """Seed Python, numpy and TF; optionally make TF ops deterministic (CPU: always possible)."""
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def get_strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        # Reads the cluster from TF_CONFIG; every worker runs the same command.
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def model_input_shape(cfg: PipelineConfig) -> tuple[int, ...]:
    """What the model's Input sees: features, or raw windows when the model transforms."""
    from pipeline.transforms import feature_shape

    if cfg.transform_placement == "model":
        return (cfg.window.window_length,)
    return tuple(feature_shape(cfg))


def build_keras_model(cfg: PipelineConfig, train: TrainConfig, num_classes: int = NUM_CLASSES):
    """The approach's model; with transform_placement='model', preceded by the TransformLayer."""
    import keras

    from models.registry import build_model
    from pipeline.transforms import TransformLayer, feature_shape

    core = build_model(train.model, tuple(feature_shape(cfg)), num_classes, seed=cfg.seed, **train.hparams)
    if cfg.transform_placement != "model":
        return core
    raw = keras.Input(shape=(cfg.window.window_length,), name="window")
    features = TransformLayer(cfg.transform, cfg.window.sample_rate)(raw)
    return keras.Model(raw, core(features), name=f"{core.name}_with_transform")


def count_parameters(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights))


def _best_so_far(history_csv: Path) -> Optional[float]:
    if not history_csv.exists():
        return None
    with open(history_csv) as f:
        values = [float(r["val_accuracy"]) for r in csv.DictReader(f) if r.get("val_accuracy")]
    return max(values) if values else None


def _read_history(history_csv: Path) -> dict[str, list[float]]:
    if not history_csv.exists():
        return {}
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else {}) if k != "epoch"}


def _fit_keras(cfg: PipelineConfig, train: TrainConfig, run: RunDir, verbose: int) -> dict:
    import keras

    from models.registry import compile_model, get_approach
    from pipeline.dataset import make_dataset

    approach = get_approach(train.model)
    train_ds = make_dataset(cfg, "train", training=True)
    val_ds = make_dataset(cfg, "validation", training=False)
    resuming = run.backup_dir.exists() and any(run.backup_dir.iterdir())

    with get_strategy(train.strategy).scope():
        model = build_keras_model(cfg, train)
        if approach.pretrain is not None:
            x_only = lambda ds: ds.map(lambda x, y: x)  # noqa: E731
            approach.pretrain(
                model, x_only(train_ds), x_only(val_ds),
                epochs=0 if resuming else train.pretrain_epochs, verbose=verbose,
            )
        compile_model(model, learning_rate=train.learning_rate, optimizer=train.optimizer)

    callbacks = [
        keras.callbacks.BackupAndRestore(str(run.backup_dir)),
        keras.callbacks.ModelCheckpoint(
            str(run.best_checkpoint), monitor="val_accuracy", mode="max", save_best_only=True,
            initial_value_threshold=_best_so_far(run.history_csv) if resuming else None,
        ),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=train.patience),
        keras.callbacks.CSVLogger(str(run.history_csv), append=resuming),
        keras.callbacks.TensorBoard(str(run.logs_dir)),
    ]
    if not resuming and run.history_csv.exists():
        run.history_csv.unlink()
    start = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=train.epochs, callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - start

    if run.best_checkpoint.exists():  # the epoch with the best validation accuracy
        model = keras.models.load_model(run.best_checkpoint)
    model.save(run.keras_model)
    run.best_checkpoint.unlink(missing_ok=True)
    shutil.rmtree(run.backup_dir, ignore_errors=True)
    history = _read_history(run.history_csv)
    plots.plot_training_curves(history, run.curves_png, f"{train.model} on {cfg.transform.name}")
    return {"training_seconds": seconds, "parameters": count_parameters(model),
            "epochs_trained": len(history.get("loss", []))}, Predictor(model, "keras", cfg, train)


def pooled_arrays(cfg: PipelineConfig, split: str, verbose: bool = True):
    """Stream a split through the transform and pool each window to a small vector."""
    from tqdm.auto import tqdm

    from models.sklearn_baselines import pool_features
    from pipeline.dataset import make_dataset

    xs, ys = [], []
    ds = make_dataset(cfg, split, training=False)
    for x, y in tqdm(ds, desc=f"features ({split})", unit="batch", disable=not verbose, leave=False):
        xs.append(np.asarray(pool_features(x)))
        ys.append(np.asarray(y))
    if not xs:
        raise ValueError(f"split {split!r} of {cfg.dataset.name} has no windows")
    return np.concatenate(xs), np.concatenate(ys)


def _fit_sklearn(cfg: PipelineConfig, train: TrainConfig, run: RunDir, verbose: int):
    import joblib

    from models.registry import get_approach

    approach = get_approach(train.model)
    x, y = pooled_arrays(cfg, "train", verbose=bool(verbose))
    model = approach.build(seed=cfg.seed, **train.hparams)
    start = time.perf_counter()
    model.fit(x, y)
    seconds = time.perf_counter() - start
    joblib.dump(model, run.sklearn_model)
    xv, yv = pooled_arrays(cfg, "validation", verbose=bool(verbose))
    val_acc = float(np.mean(model.predict(xv) == yv))
    with open(run.history_csv, "w") as f:
        f.write(f"epoch,val_accuracy\n0,{val_acc}\n")
    return {"training_seconds": seconds, "parameters": _sklearn_size(model),
            "validation_window_accuracy": val_acc}, Predictor(model, "sklearn", cfg, train)


def _sklearn_size(model) -> int:
    """A rough parameter count: support vectors x features, or tree nodes."""
    est = model[-1]
    if hasattr(est, "calibrated_classifiers_"):  # SVC inside CalibratedClassifierCV
        est = est.calibrated_classifiers_[0].estimator
    if hasattr(est, "support_vectors_"):
        return int(est.support_vectors_.size)
    if hasattr(est, "estimators_"):
        return int(sum(t.tree_.node_count for t in est.estimators_))
    return 0


def train_run(cfg: PipelineConfig, train: TrainConfig, run_dir, *, verbose: int = 1,
              overwrite: bool = False) -> dict:
    """Train, select and test one approach into `run_dir`; returns the test metrics.

    Re-running with the same configuration after an interruption resumes (Keras: from the
    last finished epoch); a finished run is returned as is unless `overwrite`.
    """
    from models.registry import check_compatible, get_approach

    cfg.validate()
    train.validate()
    approach = get_approach(train.model)
    check_compatible(train.model, cfg.transform.name)
    run = RunDir(run_dir)
    if overwrite and run.path.exists():
        shutil.rmtree(run.path)
    run.check_same_config(cfg, train)
    if run.is_finished():
        return _load_json(run.metrics_json("test"))
    run.path.mkdir(parents=True, exist_ok=True)
    run.save_config(cfg, train, class_names=list(GENRES), approach_kind=approach.kind,
                    model_input_shape=list(model_input_shape(cfg)))
    set_seeds(cfg.seed, train.deterministic)

    fit = _fit_keras if approach.kind == "keras" else _fit_sklearn
    info, predictor = fit(cfg, train, run, verbose)
    title = f"{train.model} on {cfg.transform.name} ({cfg.dataset.name})"
    validation = evaluate_split(predictor, "validation", verbose=bool(verbose))
    result = evaluate_split(predictor, "test", verbose=bool(verbose))
    result.update(info, approach=f"{cfg.transform.name}+{train.model}", model=train.model,
                  transform=cfg.transform.name, dataset=cfg.dataset.name, split="test",
                  validation_window_accuracy=validation["window_accuracy"],
                  validation_song_accuracy=validation["song_accuracy_mean_vote"])
    write_evaluation(run, "test", result, title)
    return result


def _load_json(path: Path) -> dict:
    import json

    return json.loads(Path(path).read_text())


__all__ = ["train_run", "build_keras_model", "model_input_shape", "pooled_arrays", "format_summary"]
