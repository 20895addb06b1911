"""Fitting a Keras approach on the streaming pipeline, resumable after a kill.

``model.fit`` with the usual callbacks: ModelCheckpoint keeps the epoch with the best
validation accuracy, EarlyStopping ends a run that stopped improving, CSVLogger and
TensorBoard record it, and BackupAndRestore makes a killed run resume from its last finished
epoch.  The helpers below repair what a kill can leave half-written (a history row beyond the
backup, an empty backup metadata file).
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from core.config import PipelineConfig, TrainConfig
from core.errors import ConfigError
from pipeline.experiments import plots
from pipeline.experiments.run_dir import RunDir
from pipeline.stream.dataset import epoch_steps, make_dataset
from pipeline.stream.transforms import TransformLayer, feature_shape


def get_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy called ``name``.

    Create it first thing in a process (``pipeline.train`` does, before any other TF op):
    MultiWorkerMirroredStrategy sets up its collective ops with the cluster then.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        # Reads the cluster from TF_CONFIG; every worker runs the same command.
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_suffix(strategy: tf.distribute.Strategy) -> str:
    """"" on the chief (or without a cluster); ".worker<i>" on the other workers, whose run
    directory is then ``<run_dir>.worker<i>``: they train the same replicated model, and only
    the chief's copy is the run."""
    resolver = getattr(strategy, "cluster_resolver", None) if is_multi_worker(strategy) else None
    if resolver is None or not resolver.task_type:
        return ""
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    chief = resolver.task_type == "chief" or (resolver.task_type == "worker"
                                              and resolver.task_id == 0 and not has_chief)
    return "" if chief else f".{resolver.task_type}{resolver.task_id}"


def worker_input_context(strategy: tf.distribute.Strategy) -> Optional[tf.distribute.InputContext]:
    """This worker's share of the input under a MultiWorkerMirroredStrategy of several
    workers (None otherwise)."""
    resolver = getattr(strategy, "cluster_resolver", None) if is_multi_worker(strategy) else None
    if resolver is None or not resolver.task_type:
        return None
    spec = resolver.cluster_spec().as_dict()
    workers = [(kind, i) for kind in ("chief", "worker") for i in range(len(spec.get(kind, [])))]
    if len(workers) < 2:
        return None
    return tf.distribute.InputContext(
        num_input_pipelines=len(workers),
        input_pipeline_id=workers.index((resolver.task_type, resolver.task_id)),
        num_replicas_in_sync=strategy.num_replicas_in_sync,
    )


def check_strategy(strategy: tf.distribute.Strategy) -> None:
    """ConfigError for a strategy ``model.fit`` cannot run under with this Keras (the custom
    loop of ``distributed_training`` can: ``training.train_run`` takes it there)."""
    if worker_input_context(strategy) is not None:
        raise ConfigError(
            "--strategy multi-worker with several workers: Keras 3's model.fit does not run under "
            "MultiWorkerMirroredStrategy across workers (keras-team/keras#20585: it fails "
            "converting PerReplica batches); pipeline.train trains across workers with the "
            "tf.distribute custom loop instead (distributed_training.fit_distributed)"
        )


def fit_datasets(cfg: PipelineConfig, strategy: tf.distribute.Strategy, *, with_song_id=False,
                 one_hot=False):
    """(train, validation) datasets for ``model.fit``.

    Under a MultiWorkerMirroredStrategy of several workers, each worker reads only its share
    of the TFRecord files (``tfds.ReadConfig(input_context=...)``, TFDS's sharding by file):
    together the workers see every song of a split once per epoch; none reads everything.
    The TFDS-documented ``strategy.distribute_datasets_from_function`` gives the same shares,
    but Keras 3.15's ``fit`` fails on such a dataset with two workers (a ValueError converting
    its PerReplica batches), so each worker hands Keras its own plain dataset, batched with
    the global batch size, with tf.data's auto-sharding off (it is sharded already); Keras
    splits each batch among the worker's replicas.  ``one_hot``: validation labels one-hot
    (a model compiled for mixup's soft labels).
    """
    context = worker_input_context(strategy)

    def dataset(split: str, training: bool):
        ds = make_dataset(cfg, split, training=training, with_song_id=with_song_id,
                          input_context=context, one_hot=one_hot and not training)
        if context is not None:
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
            ds = ds.with_options(options)
        return ds

    return dataset("train", True), dataset("validation", False)


def build_keras_model(cfg: PipelineConfig, train: TrainConfig, num_classes: int):
    """The approach's model; with transform_placement='model', preceded by the TransformLayer."""
    import keras

    from models.registry import build_model

    core = build_model(train.model, feature_shape(cfg), num_classes, seed=cfg.seed, **train.hparams)
    if cfg.transform_placement != "model":
        return core
    raw = keras.Input(shape=(cfg.window.window_length,), name="window")
    features = TransformLayer(cfg.transform, cfg.window.sample_rate)(raw)
    return keras.Model(raw, core(features), name=f"{core.name}_with_transform")


def count_parameters(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights))


def read_history(history_csv: Path) -> dict[str, list[float]]:
    if not history_csv.exists():
        return {}
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else {}) if k != "epoch"}


def finished_epochs_in_backup(run: RunDir) -> int:
    """Epochs BackupAndRestore saved; 0, with the backup removed, when none can be resumed.

    A kill while BackupAndRestore writes its small training_metadata.json leaves it empty, and
    Keras would then fail to resume with a JSONDecodeError every time: fall back to the
    previous backup (double_checkpoint keeps it as *.bkp), or start over without one.
    """

    def epochs(path: Path) -> Optional[int]:
        try:
            return int(json.loads(path.read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):  # missing, empty or half-written
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


def trim_history(history_csv: Path, epochs: int) -> None:
    """Keep the rows of the first `epochs` epochs of history.csv (and its header).

    CSVLogger writes an epoch's row before BackupAndRestore saves that epoch (the callback
    order in `fit_keras`), so a kill between the two leaves a row for an epoch the resumed
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
        if len(row) == len(header) and row[0].isdigit() and int(row[0]) < epochs:
            kept.append(row)
    tmp = history_csv.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    tmp.replace(history_csv)


def _callbacks(train: TrainConfig, run: RunDir, resuming: bool) -> list:
    """BackupAndRestore runs last at the end of an epoch: whatever a kill interrupts, the backup
    never claims an epoch whose history row and best checkpoint were not written (a row
    written for an epoch the backup does not hold is trimmed on resume). double_checkpoint
    keeps the previous backup, so a kill in the middle of writing one is not fatal either."""
    import keras

    best_so_far = max(read_history(run.history_csv).get("val_accuracy", []), default=None)
    return [
        keras.callbacks.ModelCheckpoint(
            str(run.best_checkpoint), monitor="val_accuracy", mode="max", save_best_only=True,
            initial_value_threshold=best_so_far if resuming else None,
        ),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=train.patience),
        keras.callbacks.CSVLogger(str(run.history_csv), append=resuming),
        keras.callbacks.TensorBoard(str(run.logs_dir)),
        keras.callbacks.BackupAndRestore(str(run.backup_dir), double_checkpoint=True),
    ]


def fit_keras(cfg: PipelineConfig, train: TrainConfig, run: RunDir, num_classes: int,
              verbose: int, strategy: Optional[tf.distribute.Strategy] = None):
    """Fit, resuming from the run's backup; returns (model of the best epoch, training info)."""
    import keras

    from models.registry import compile_model, run_pretrain

    strategy = strategy or get_strategy(train.strategy)
    check_strategy(strategy)
    soft = cfg.augment.mixup_alpha > 0  # mixup: one-hot (soft) labels, categorical loss
    train_ds, val_ds = fit_datasets(cfg, strategy, one_hot=soft)
    done = finished_epochs_in_backup(run) if run.backup_dir.exists() else 0
    resuming = done > 0
    if resuming:
        trim_history(run.history_csv, done)
        print(f"{run.path}: resuming from epoch {done + 1} of {train.epochs} "
              f"({done} finished epoch(s) in {run.backup_dir.name}/)", flush=True)
    elif run.history_csv.exists():
        run.history_csv.unlink()

    with strategy.scope():
        model = build_keras_model(cfg, train, num_classes)
        run_pretrain(train.model, model, train_ds, val_ds, hparams=train.hparams,
                     epochs=0 if resuming else train.pretrain_epochs, verbose=verbose)
        compile_model(model, learning_rate=train.learning_rate, optimizer=train.optimizer,
                      soft_labels=soft)

    # One endless training stream, epochs counted in steps: Keras then keeps its iterator from
    # epoch to epoch, so the next epoch's first windows are read while this one ends instead of
    # after it (each new iterator waits for a block of windows: docs/performance.md).
    # Several workers each read their own share of the files: an epoch is one pass over it.
    steps = epoch_steps(cfg, "train") if worker_input_context(strategy) is None else None
    start = time.perf_counter()
    model.fit(train_ds if steps is None else train_ds.repeat(), steps_per_epoch=steps,
              validation_data=val_ds, epochs=train.epochs,
              callbacks=_callbacks(train, run, resuming), verbose=verbose)
    seconds = time.perf_counter() - start
    if run.best_checkpoint.exists():  # the epoch with the best validation accuracy
        model = keras.models.load_model(run.best_checkpoint)
    history = read_history(run.history_csv)
    plots.plot_training_curves(history, run.curves_png, f"{train.model} on {cfg.transform.name}")
    return model, {"training_seconds": seconds, "parameters": count_parameters(model),
                   "epochs_trained": len(history.get("loss", []))}


def commit_keras_model(model, run: RunDir) -> None:
    """Save the model under a temporary name and rename it into place: the run's commit point."""
    tmp = run.path / "model.tmp.keras"
    model.save(tmp)
    tmp.replace(run.keras_model)
    run.best_checkpoint.unlink(missing_ok=True)
    shutil.rmtree(run.backup_dir, ignore_errors=True)
