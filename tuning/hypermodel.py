"""The HyperModel of the search: `build` makes a trial's model, `fit` its own tf.data pipeline.

A trial's values set model hyperparameters (the approach's builder arguments), training ones
(learning rate, optimizer, batch size) and pipeline ones (window length, sample rate, n_fft,
hop, n_mels / n_mfcc).  The last two groups change the input, so they cannot live in `build`
alone: `fit` builds the trial's own streaming datasets with `pipeline.stream.dataset.make_dataset`
(nothing is loaded into memory, nothing is shared between trials) and `build` gives the model
the matching input shape.  Both read the configs from the same values through
`SearchSpace.configs`, so they always agree.

Validation runs through `SongValidation`, which reports ``val_loss``, ``val_accuracy`` (windows)
and ``val_song_accuracy`` (each validation song decided by the mean of its windows'
probabilities, as `pipeline.experiments.metrics` does for test runs) at the end of every epoch, so either
can be the search objective, the tuner's best-epoch checkpoint and early stopping see it, and
every trial records both.
"""

from __future__ import annotations

from typing import Optional

import keras
import keras_tuner
import numpy as np

from core.config import PipelineConfig, TrainConfig
from core.errors import ConfigError
from models.registry import compile_model, get_approach, run_pretrain
from pipeline.experiments.keras_training import build_keras_model
from pipeline.experiments.metrics import song_predictions
from pipeline.experiments.predictor import Predictor
from pipeline.experiments.seeding import seed_everything
from pipeline.stream.dataset import class_names, make_dataset
from tuning import OBJECTIVES
from tuning.search_space import SearchSpace, SpaceHyperModel


def make_objective(name: str) -> keras_tuner.Objective:
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVES)}")
    return keras_tuner.Objective(name, direction="max")


class SongValidation(keras.callbacks.Callback):
    """Validation at window and song level, written into the epoch's logs.

    Replaces ``validation_data`` in ``fit``: one streaming pass over the validation split (with
    song ids) gives all three numbers.  It must come before the callbacks that read the logs
    (the tuner's checkpointing, EarlyStopping, History), which ``TrialHyperModel.fit`` ensures.
    """

    def __init__(self, val_ds, cfg: PipelineConfig, class_names):
        super().__init__()
        self.val_ds = val_ds
        self.cfg = cfg
        self.class_names = list(class_names)
        self._predictor = None

    def on_train_begin(self, logs=None):
        self._predictor = Predictor(self.model, "keras", self.cfg, self.class_names)

    def evaluate(self) -> dict:
        probs, labels, ids = self._predictor.predict_dataset(self.val_ds, verbose=False)
        if len(labels) == 0:
            raise ValueError("the validation split yields no windows (window longer than the clips?)")
        picked = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
        songs = song_predictions(probs, labels, ids)
        return {
            "val_loss": float(-np.mean(np.log(picked))),
            "val_accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
            "val_song_accuracy": float(np.mean(songs["mean_vote"] == songs["labels"])),
        }

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.evaluate())


class TrialHyperModel(SpaceHyperModel):
    """Model and tf.data pipeline of one trial, from the trial's hyperparameter values.

    Args:
        space: the search space (declares the hyperparameters, maps values onto configs).
        base: pipeline config of the search (CLI flags); trial values override it.
        base_train: training config of the search (model, epochs, patience, ...).
        objective: "val_accuracy" or "val_song_accuracy" (early stopping watches it too).
    """

    def __init__(self, space: SearchSpace, base: PipelineConfig, base_train: TrainConfig,
                 objective: str = "val_accuracy"):
        super().__init__(space, base, base_train)  # configs(values), is_valid(values)
        self.objective = objective

    # --- keras_tuner.HyperModel -------------------------------------------------------------
    def build(self, hp):
        cfg, train = self.declared_configs(hp)
        seed_everything(cfg.seed)  # each trial's initial weights depend on its seed only
        model = build_keras_model(cfg, train, len(class_names(cfg.dataset)))
        return compile_model(model, learning_rate=train.learning_rate, optimizer=train.optimizer,
                             soft_labels=cfg.augment.mixup_alpha > 0)

    def fit(self, hp, model, *args, **kwargs):
        """Train `model` on this trial's own pipeline; returns the History (keras_tuner reads
        the objective's best epoch from it).

        ``kwargs["callbacks"]`` holds the tuner's callbacks (best-epoch checkpoint, trial
        reporting); they are passed on to ``model.fit`` after `SongValidation`, which fills in
        the validation metrics they read.  ``epochs``/``initial_epoch`` come from Hyperband
        when it runs the trial; otherwise the search's --epochs.
        """
        cfg, train = self.configs(hp.values)
        train_ds = make_dataset(cfg, "train", training=True)
        val_ds = make_dataset(cfg, "validation", training=False, with_song_id=True)
        epochs = int(kwargs.pop("epochs", train.epochs))
        initial_epoch = int(kwargs.pop("initial_epoch", 0))
        verbose = kwargs.pop("verbose", 0)

        if get_approach(train.model).pretrain is not None and initial_epoch == 0:
            # Hyperband continuations (initial_epoch > 0) start from a pretrained checkpoint.
            run_pretrain(train.model, model, train_ds, val_ds, hparams=train.hparams,
                         epochs=train.pretrain_epochs, verbose=verbose)
            compile_model(model, learning_rate=train.learning_rate, optimizer=train.optimizer,
                          soft_labels=cfg.augment.mixup_alpha > 0)

        callbacks = [SongValidation(val_ds, cfg, class_names(cfg.dataset))]
        callbacks += list(kwargs.pop("callbacks", None) or [])
        callbacks.append(keras.callbacks.EarlyStopping(  # as pipeline.experiments.training, on the objective
            monitor=self.objective, mode="max", patience=train.patience))
        kwargs.pop("validation_data", None)  # SongValidation validates
        return model.fit(train_ds, epochs=epochs, initial_epoch=initial_epoch,
                         callbacks=callbacks, verbose=verbose, **kwargs)


def trial_configs(space: SearchSpace, values: dict, base: PipelineConfig,
                  base_train: TrainConfig, epochs: Optional[int] = None):
    """The (PipelineConfig, TrainConfig) to retrain a trial's values with `pipeline.experiments.training`."""
    import dataclasses

    cfg, train = space.configs(values, base, base_train)
    if epochs is not None:
        train = dataclasses.replace(train, epochs=epochs)
    return cfg, train
