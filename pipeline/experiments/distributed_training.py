"""Training a Keras approach under tf.distribute without ``model.fit``: the custom loop.

Keras 3.15's ``model.fit`` fails across several MultiWorkerMirroredStrategy workers
(keras-team/keras#20585).  This is TensorFlow's documented path for that case (the tutorial
"Custom training loop with MultiWorkerMirroredStrategy"); ``pipeline.train`` takes it for
``--strategy multi-worker`` across workers, and for any strategy with ``--custom-loop``.

- input: ``strategy.distribute_datasets_from_function``; each worker reads its share of the
  TFRecord files (TFDS shards by the InputContext), in batches of global batch / replicas
  (``--batch-size`` is the global batch).  An epoch is ``ceil(windows / global batch)`` steps
  of one endless (repeated) stream, as in ``keras_training.fit_keras``;
- step: a ``tf.function`` running ``strategy.run`` of ``model(x, training=True)``, the
  per-example loss averaged over the *global* batch (``tf.nn.compute_average_loss`` with the
  global count all-reduced, so a partial batch is weighted as ``fit`` weighs it), and
  ``optimizer.apply_gradients`` (Keras sums the replicas' gradients);
- metrics: each replica returns sums (loss, correct windows, windows), added up across
  replicas and workers with ``strategy.reduce(SUM)``: exact, no metric state in replica context;
- validation: each worker evaluates its share of the validation files once an epoch (the
  distributed iterator ends all workers together when their shares are uneven);
- the callbacks' effects: history.csv (CSVLogger's columns), TensorBoard scalars in logs/train
  and logs/validation, early stopping and best-epoch selection on validation accuracy
  (EarlyStopping's and ModelCheckpoint's rules), the best epoch's model in best.keras;
- fault tolerance (TF's multi-worker pattern): a ``tf.train.Checkpoint`` of the model, the
  optimizer and the loop's state at the end of every epoch (and every ``checkpoint_steps``
  steps).  Every worker saves (saving may run collectives); the chief into the run's
  ``backup/``, the others into their own temporary folder, deleted right after.  Every worker
  restores the chief's latest checkpoint, so a restarted cluster resumes from it (the run
  directory must be on a file system all workers see, as TF's tutorial assumes).  After a
  resume the input stream starts again from its beginning (as with ``BackupAndRestore``).

Only the chief writes the run directory; the other workers' ``run`` is their temporary folder.
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
import time
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from core.config import PipelineConfig, TrainConfig
from core.errors import ConfigError, WorkerLostError
from pipeline.experiments import plots
from pipeline.experiments.keras_training import (
    build_keras_model,
    count_parameters,
    fit_datasets,
    get_strategy,
    read_history,
    trim_history,
    worker_input_context,
    worker_suffix,
)
from pipeline.experiments.run_dir import RunDir
from pipeline.stream.dataset import epoch_steps, make_dataset

# CSVLogger's columns for a model compiled with metrics=["accuracy"] and validation data.
HISTORY_COLUMNS = ("epoch", "accuracy", "loss", "val_accuracy", "val_loss")
SUM = tf.distribute.ReduceOp.SUM


def several_workers(strategy: tf.distribute.Strategy) -> bool:
    return worker_input_context(strategy) is not None


def uses_custom_loop(train: TrainConfig, strategy: tf.distribute.Strategy) -> bool:
    """Whether ``pipeline.train`` trains with this loop rather than ``model.fit``."""
    return train.custom_loop or several_workers(strategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    return worker_suffix(strategy) == ""


def chief_run_path(run_path, strategy: tf.distribute.Strategy) -> Path:
    """The chief's run directory, given this worker's (``<run>.worker<i>`` off the chief)."""
    path, suffix = str(run_path), worker_suffix(strategy)
    return Path(path[: -len(suffix)] if suffix and path.endswith(suffix) else path)


def check_distributed(cfg: PipelineConfig, train: TrainConfig, strategy) -> None:
    """ConfigError for what the custom loop cannot do (before anything is written)."""
    from models.registry import get_approach

    replicas = strategy.num_replicas_in_sync
    if cfg.batch_size % replicas:
        raise ConfigError(
            f"--batch-size {cfg.batch_size} is the global batch: it must divide among the "
            f"{replicas} replicas of --strategy {train.strategy}"
        )
    approach = get_approach(train.model)
    if several_workers(strategy) and approach.pretrain is not None:
        raise ConfigError(
            f"--model {train.model}: its first training stage (the pretrain hook: model.fit, "
            "Normalization.adapt) is written for one machine, and Keras 3.15's model.fit cannot "
            "run across several workers (keras-team/keras#20585); train it on one machine "
            "(--strategy mirrored)"
        )


def distributed_dataset(cfg: PipelineConfig, strategy, split: str, *, training: bool,
                        one_hot: bool = False):
    """``split`` as a distributed dataset of the global batch ``cfg.batch_size``: each input
    pipeline (worker) reads its share of the files in per-replica batches; training: endless."""

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = dataclasses.replace(cfg, batch_size=context.get_per_replica_batch_size(cfg.batch_size))
        shard = context if context.num_input_pipelines > 1 else None
        ds = make_dataset(local, split, training=training, input_context=shard,
                          one_hot=one_hot and not training)
        return ds.repeat() if training else ds

    return strategy.distribute_datasets_from_function(dataset_fn)


class Steps:
    """The compiled steps: train on one global batch, evaluate one; both return the sums
    [loss, correct windows, windows] over all replicas of all workers."""

    def __init__(self, strategy, model, optimizer, soft_labels: bool):
        import keras

        self.strategy, self.model, self.optimizer, self.soft = strategy, model, optimizer, soft_labels
        self.loss_fn = (keras.losses.categorical_crossentropy if soft_labels
                        else keras.losses.sparse_categorical_crossentropy)
        self.train = tf.function(self._train)
        self.evaluate = tf.function(self._evaluate)

    def _sums(self, y, probs, per_example):
        labels = tf.argmax(y, -1) if self.soft else tf.cast(y, tf.int64)
        correct = tf.cast(tf.equal(tf.argmax(probs, -1), labels), tf.float32)
        count = tf.cast(tf.shape(probs)[0], tf.float32)
        return tf.stack([tf.reduce_sum(per_example), tf.reduce_sum(correct), count])

    def _train_replica(self, x, y):
        context = tf.distribute.get_replica_context()
        count = context.all_reduce(SUM, tf.cast(tf.shape(y)[0], tf.float32))
        with tf.GradientTape() as tape:
            probs = self.model(x, training=True)
            per_example = self.loss_fn(y, probs)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=tf.cast(count, tf.int32))
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self._sums(y, probs, per_example)

    def _train(self, iterator):
        x, y = next(iterator)
        return self.strategy.reduce(SUM, self.strategy.run(self._train_replica, args=(x, y)), axis=None)

    def _evaluate_replica(self, x, y):
        probs = self.model(x, training=False)
        return self._sums(y, probs, self.loss_fn(y, probs))

    def _evaluate(self, batch):
        x, y = batch
        return self.strategy.reduce(SUM, self.strategy.run(self._evaluate_replica, args=(x, y)), axis=None)

    def validate(self, dataset) -> np.ndarray:
        totals = np.zeros(3)
        for batch in dataset:
            totals += self.evaluate(batch).numpy()
        return totals


class LoopState:
    """What the loop must know to resume, checkpointed with the weights: finished epochs, steps
    done in the current one and its sums so far, the best validation accuracy (-1: none yet),
    epochs since it improved, and whether early stopping ended the run."""

    def __init__(self):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.totals = tf.Variable(tf.zeros([3], tf.float64), trainable=False)
        self.best = tf.Variable(-1.0, dtype=tf.float64, trainable=False)
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.stopped = tf.Variable(False, trainable=False)

    def variables(self) -> dict:
        return {k: v for k, v in vars(self).items() if isinstance(v, tf.Variable)}

    def end_epoch(self, val_accuracy: float, patience: int) -> bool:
        """EarlyStopping's and ModelCheckpoint's rules (strictly better is an improvement);
        returns whether this epoch is the best so far."""
        improved = val_accuracy > float(self.best.numpy())
        if improved:
            self.best.assign(val_accuracy)
            self.wait.assign(0)
        else:
            self.wait.assign_add(1)
            self.stopped.assign(int(self.wait.numpy()) >= patience)
        self.epoch.assign_add(1)
        self.step.assign(0)
        self.totals.assign(tf.zeros([3], tf.float64))
        return improved


class Checkpoints:
    """TF's multi-worker checkpointing: every worker saves, the chief into ``backup_dir``, the
    others into ``temp_dir`` (removed after each save); all restore from ``backup_dir``."""

    def __init__(self, checkpoint: tf.train.Checkpoint, backup_dir: Path, temp_dir: Path, chief: bool):
        self.checkpoint, self.backup_dir, self.chief = checkpoint, backup_dir, chief
        self.write_dir = backup_dir if chief else temp_dir
        self.manager = tf.train.CheckpointManager(checkpoint, str(self.write_dir), max_to_keep=1)

    def restore(self) -> bool:
        latest = tf.train.latest_checkpoint(str(self.backup_dir))
        if latest is None:
            return False
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        return True

    def save(self) -> None:
        self.manager.save()
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)


class ChiefRecords:
    """What the chief writes each epoch: history.csv, TensorBoard scalars, best.keras.
    The other workers get ``None`` and write nothing."""

    def __init__(self, run: RunDir, done_epochs: int):
        if done_epochs:
            trim_history(run.history_csv, done_epochs)
        else:
            run.history_csv.unlink(missing_ok=True)
        self.run = run
        self.writers = {name: tf.summary.create_file_writer(str(run.logs_dir / name))
                        for name in ("train", "validation")}

    def write(self, epoch: int, logs: dict, model, improved: bool, learning_rate: float) -> None:
        if improved:  # ModelCheckpoint(save_best_only=True)
            tmp = self.run.path / "best.tmp.keras"
            model.save(tmp)
            tmp.replace(self.run.best_checkpoint)
        new = not self.run.history_csv.exists()
        with open(self.run.history_csv, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(HISTORY_COLUMNS)
            writer.writerow([epoch] + [repr(float(logs[k])) for k in HISTORY_COLUMNS[1:]])
        for name, prefix in (("train", ""), ("validation", "val_")):
            with self.writers[name].as_default(step=epoch):
                tf.summary.scalar("epoch_loss", logs[f"{prefix}loss"])
                tf.summary.scalar("epoch_accuracy", logs[f"{prefix}accuracy"])
                if name == "train":
                    tf.summary.scalar("epoch_learning_rate", learning_rate)
            self.writers[name].flush()


def _build(cfg, train, strategy, num_classes, resuming: bool, verbose: int):
    """The model and its optimizer, made under the strategy's scope (and pretrained)."""
    from models.registry import compile_model, run_pretrain

    soft = cfg.augment.mixup_alpha > 0
    with strategy.scope():
        model = build_keras_model(cfg, train, num_classes)
        if not several_workers(strategy):  # refused across workers (check_distributed)
            train_ds, val_ds = fit_datasets(cfg, strategy, one_hot=soft)
            run_pretrain(train.model, model, train_ds, val_ds, hparams=train.hparams,
                         epochs=0 if resuming else train.pretrain_epochs, verbose=verbose)
        compile_model(model, learning_rate=train.learning_rate, optimizer=train.optimizer,
                      soft_labels=soft)
        model.optimizer.build(model.trainable_variables)
    return model, model.optimizer


def _progress(steps: int, start: int, epoch: int, epochs: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=steps, initial=start, desc=f"epoch {epoch + 1}/{epochs}", unit="step",
                disable=not show, leave=False, dynamic_ncols=True)


def _train_epoch(steps_fn: Steps, iterator, state: LoopState, checkpoints: Checkpoints,
                 steps: int, train: TrainConfig, show: bool) -> np.ndarray:
    """The rest of the current epoch's steps; returns its sums [loss, correct, windows]."""
    epoch = int(state.epoch.numpy())
    with _progress(steps, int(state.step.numpy()), epoch, train.epochs, show) as bar:
        while int(state.step.numpy()) < steps:
            state.totals.assign_add(tf.cast(steps_fn.train(iterator), tf.float64))
            state.step.assign_add(1)
            bar.update(1)
            done = int(state.step.numpy())
            if train.checkpoint_steps and done % train.checkpoint_steps == 0 and done < steps:
                checkpoints.save()
    return state.totals.numpy()


def _logs(train_sums: np.ndarray, val_sums: np.ndarray) -> dict:
    return {"loss": train_sums[0] / train_sums[2], "accuracy": train_sums[1] / train_sums[2],
            "val_loss": val_sums[0] / max(val_sums[2], 1), "val_accuracy": val_sums[1] / max(val_sums[2], 1)}


def _run_epochs(cfg, train, strategy, steps_fn, state, checkpoints, records, verbose) -> None:
    """Epochs until ``train.epochs`` or early stopping; a checkpoint closes every epoch."""
    import keras

    soft = cfg.augment.mixup_alpha > 0
    iterator = iter(distributed_dataset(cfg, strategy, "train", training=True))
    validation = distributed_dataset(cfg, strategy, "validation", training=False, one_hot=soft)
    steps = epoch_steps(cfg, "train")
    while int(state.epoch.numpy()) < train.epochs and not bool(state.stopped.numpy()):
        start, first = time.perf_counter(), int(state.step.numpy())
        train_sums = _train_epoch(steps_fn, iterator, state, checkpoints, steps, train,
                                  show=verbose == 1 and records is not None)
        trained = time.perf_counter() - start
        logs = _logs(train_sums, steps_fn.validate(validation))
        epoch = int(state.epoch.numpy())
        improved = state.end_epoch(float(logs["val_accuracy"]), train.patience)
        if records is not None:
            records.write(epoch, logs, steps_fn.model, improved,
                          float(keras.ops.convert_to_numpy(steps_fn.optimizer.learning_rate)))
        checkpoints.save()  # last: a checkpoint never claims an epoch whose records are missing
        if verbose and records is not None:
            print(f"epoch {epoch + 1}/{train.epochs}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in logs.items()) + f" ({time.perf_counter() - start:.1f} s; "
                f"training {(steps - first) / trained:.2f} steps/s)", flush=True)


def _cause(message: str) -> str:
    """The line of a TF collective error that says which task failed."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return next((line for line in lines if "task" in line), lines[0] if lines else "")[:200]


def fit_distributed(cfg: PipelineConfig, train: TrainConfig, run: RunDir, num_classes: int,
                    verbose: int, strategy: Optional[tf.distribute.Strategy] = None, *,
                    resume: bool = True):
    """Train with the custom loop, resuming from the chief's last checkpoint (unless not
    ``resume``); returns (model of the best epoch, training info) on the chief, (None, info)
    on the other workers."""
    import keras

    strategy = strategy or get_strategy(train.strategy)
    check_distributed(cfg, train, strategy)
    chief = is_chief(strategy)
    backup = RunDir(chief_run_path(run.path, strategy)).backup_dir
    state = LoopState()
    resuming = resume and tf.train.latest_checkpoint(str(backup)) is not None
    model, optimizer = _build(cfg, train, strategy, num_classes, resuming, verbose)
    checkpoints = Checkpoints(tf.train.Checkpoint(model=model, optimizer=optimizer, **state.variables()),
                              backup, run.path / "backup.tmp", chief)
    if resuming and checkpoints.restore() and chief:
        print(f"{run.path}: resuming at epoch {int(state.epoch.numpy()) + 1} of {train.epochs}, "
              f"step {int(state.step.numpy())} ({backup.name}/)", flush=True)
    records = ChiefRecords(run, int(state.epoch.numpy())) if chief else None
    start = time.perf_counter()
    try:
        _run_epochs(cfg, train, strategy, Steps(strategy, model, optimizer, cfg.augment.mixup_alpha > 0),
                    state, checkpoints, records, verbose)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
        if not several_workers(strategy):
            raise
        raise WorkerLostError(
            f"another worker of the cluster stopped during epoch {int(state.epoch.numpy()) + 1} "
            f"({_cause(e.message)}). Start every worker again with the "
            f"same command: they resume from the last checkpoint in {backup}"
        ) from None
    seconds = time.perf_counter() - start
    info = {"training_seconds": seconds, "parameters": count_parameters(model),
            "epochs_trained": int(state.epoch.numpy()), "training_loop": "custom",
            "replicas": strategy.num_replicas_in_sync}
    if not chief:
        return None, info
    model = keras.models.load_model(run.best_checkpoint)  # the best epoch, as a local model
    history = read_history(run.history_csv)
    info["epochs_trained"] = len(history.get("loss", []))
    plots.plot_training_curves(history, run.curves_png, f"{train.model} on {cfg.transform.name}")
    return model, info


def finish_together(strategy: tf.distribute.Strategy) -> None:
    """Across several workers, return once every worker got here (one all-reduce): the other
    workers stay up while the chief evaluates, so that none leaves the cluster early (the
    chief's coordination service would report it as crashed)."""
    if several_workers(strategy):
        def barrier():
            return strategy.reduce(SUM, strategy.run(tf.ones, args=([],)), axis=None)

        try:
            tf.function(barrier, autograph=False)()
        except tf.errors.UnavailableError as e:  # this worker's part is done and written
            print(f"warning: another worker left before the end ({_cause(e.message)})", flush=True)


def train_worker(cfg: PipelineConfig, train: TrainConfig, run_dir, strategy, verbose: int = 0,
                 overwrite: bool = False) -> None:
    """A non-chief worker's part of ``pipeline.train``: train in step with the chief, writing
    only temporary checkpoints (``<run>.worker<i>``, removed at the end); the chief writes and
    evaluates the run.  Nothing to do when the chief's run is already trained."""
    from pipeline.experiments.seeding import seed_everything
    from pipeline.stream.dataset import class_names

    chief = RunDir(chief_run_path(run_dir, strategy))
    if chief.is_trained() and not overwrite:
        print(f"{chief.path} is trained already: nothing for this worker to do", flush=True)
        finish_together(strategy)
        return
    temp = RunDir(run_dir)
    temp.path.mkdir(parents=True, exist_ok=True)
    try:
        seed_everything(cfg.seed)
        fit_distributed(cfg, train, temp, len(class_names(cfg.dataset)), verbose, strategy,
                        resume=not overwrite)
    finally:
        shutil.rmtree(temp.path, ignore_errors=True)
    print(f"{worker_suffix(strategy)[1:]}: trained in step with the chief; waiting while it "
          f"writes and evaluates {chief.path}", flush=True)
    finish_together(strategy)
