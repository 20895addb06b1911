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
from pipeline.experiments import plots
from core.config import ConfigError, PipelineConfig, TrainConfig
from pipeline.experiments.predictor import Predictor, evaluate_split, format_summary, write_evaluation
from pipeline.experiments.run_dir import RunDir


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
    from pipeline.stream.transforms import feature_shape

    if cfg.transform_placement == "model":
        return (cfg.window.window_length,)
    return tuple(feature_shape(cfg))


def build_keras_model(cfg: PipelineConfig, train: TrainConfig, num_classes: int = NUM_CLASSES):
    """The approach's model; with transform_placement='model', preceded by the TransformLayer."""
    import keras

    from models.registry import build_model
    from pipeline.stream.transforms import TransformLayer, feature_shape

    core = build_model(train.model, tuple(feature_shape(cfg)), num_classes, seed=cfg.seed, **train.hparams)
    if cfg.transform_placement != "model":
        return core
    raw = keras.Input(shape=(cfg.window.window_length,), name="window")
    features = TransformLayer(cfg.transform, cfg.window.sample_rate)(raw)
    return keras.Model(raw, core(features), name=f"{core.name}_with_transform")


def count_parameters(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights))


def _read_history(history_csv: Path) -> dict[str, list[float]]:
    if not history_csv.exists():
        return {}
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else {}) if k != "epoch"}


def _finished_epochs_in_backup(run: RunDir) -> int:
    """Epochs BackupAndRestore saved; 0, with the backup removed, when none can be resumed.

    A kill while BackupAndRestore writes its small training_metadata.json leaves it empty, and
    Keras would then fail to resume with a JSONDecodeError every time: fall back to the
    previous backup (double_checkpoint keeps it as *.bkp), or start over without one.
    """
    import json

    def epochs(path: Path) -> Optional[int]:
        try:
            return int(json.loads(path.read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    meta = run.backup_dir / "training_metadata.json"
    weights = run.backup_dir / "latest.weights.h5"
    done = epochs(meta)
    if done is not None and weights.exists():
        return done
    prev_meta, prev_weights = Path(f"{meta}.bkp"), Path(f"{weights}.bkp")
    done = epochs(prev_meta)
    if done is not None and prev_weights.exists():
        shutil.copyfile(prev_weights, weights)
        shutil.copyfile(prev_meta, meta)
        return done
    shutil.rmtree(run.backup_dir, ignore_errors=True)
    return 0


def _trim_history(history_csv: Path, epochs: int) -> None:
    """Keep the rows of the first `epochs` epochs of history.csv (and its header).

    CSVLogger writes an epoch's row before BackupAndRestore saves that epoch (the callback
    order in `_fit_keras`), so a kill between the two leaves a row for an epoch the resumed
    run trains again: dropping it here keeps every epoch in the file exactly once. A row
    half-written by the kill is dropped too.
    """
    if not history_csv.exists():
        return
    with open(history_csv, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, kept = rows[0], [rows[0]]
    for row in rows[1:]:
        try:
            if len(row) == len(header) and int(row[0]) < epochs:
                kept.append(row)
        except ValueError:
            pass
    tmp = history_csv.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    tmp.replace(history_csv)


def _features_only(features, label):
    return features


def _fit_keras(cfg: PipelineConfig, train: TrainConfig, run: RunDir, verbose: int) -> dict:
    import keras

    from models.registry import compile_model, get_approach
    from pipeline.stream.dataset import make_dataset

    approach = get_approach(train.model)
    train_ds = make_dataset(cfg, "train", training=True)
    val_ds = make_dataset(cfg, "validation", training=False)
    done = _finished_epochs_in_backup(run) if run.backup_dir.exists() else 0
    resuming = done > 0
    if resuming:
        _trim_history(run.history_csv, done)
        print(f"{run.path}: resuming from epoch {done + 1} of {train.epochs} "
              f"({done} finished epoch(s) in {run.backup_dir.name}/)", flush=True)

    with get_strategy(train.strategy).scope():
        model = build_keras_model(cfg, train)
        if approach.pretrain is not None:
            approach.pretrain(
                model, train_ds.map(_features_only), val_ds.map(_features_only),
                epochs=0 if resuming else train.pretrain_epochs, verbose=verbose,
            )
        compile_model(model, learning_rate=train.learning_rate, optimizer=train.optimizer)

    # BackupAndRestore runs last at the end of an epoch: whatever a kill interrupts, the backup
    # never claims an epoch whose history row and best checkpoint were not written (a row
    # written for an epoch the backup does not hold is trimmed on resume). double_checkpoint
    # keeps the previous backup, so a kill in the middle of writing one is not fatal either.
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(run.best_checkpoint), monitor="val_accuracy", mode="max", save_best_only=True,
            initial_value_threshold=(
                max(_read_history(run.history_csv).get("val_accuracy", []), default=None)
                if resuming else None
            ),
        ),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=train.patience),
        keras.callbacks.CSVLogger(str(run.history_csv), append=resuming),
        keras.callbacks.TensorBoard(str(run.logs_dir)),
        keras.callbacks.BackupAndRestore(str(run.backup_dir), double_checkpoint=True),
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
    from pipeline.stream.dataset import make_dataset

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
    try:
        model.fit(x, y)
    except ValueError as e:  # e.g. too few windows of a class for SVC's 5-fold calibration
        raise ConfigError(
            f"{train.model} cannot be fitted on the {len(y)} windows of the train split of "
            f"{cfg.dataset.name}: {e}"
        ) from e
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
    from models.common import check_optimizer
    from models.registry import check_compatible, check_hparams, get_approach
    from pipeline.experiments.predictor import require_windows

    cfg.validate()
    train.validate()
    approach = get_approach(train.model)
    check_compatible(train.model, cfg.transform.name)
    check_hparams(train.model, train.hparams)
    if approach.kind == "keras":
        check_optimizer(train.optimizer)
    run = RunDir(run_dir)
    if overwrite and run.path.exists():
        shutil.rmtree(run.path)
    if run.has_progress():  # a run dir with nothing trained yet just takes the new config
        run.check_same_config(cfg, train)
    if run.is_finished():
        return _load_json(run.metrics_json("test"))
    # Everything that can be refused is refused before config.json is written: the data is
    # there (built on first use) and every split gives windows.
    for split in ("train", "validation", "test"):
        require_windows(cfg, split)
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
