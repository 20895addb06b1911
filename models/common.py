"""Pieces every Keras approach shares: input checks, input normalisation, compiling.

Kept here so that each model module reads top to bottom as its architecture only, and so that
all approaches are compiled and normalised the same way (a fair comparison).
"""

from __future__ import annotations

from typing import Sequence

import keras

from core.errors import ConfigError

# BatchNormalization momentum for every model.  Keras' default (0.99) needs several hundred steps
# before the moving statistics forget their initial values (mean 0, variance 1), which matters for
# the input normalisation of dB features (mean around -40): a short run would then evaluate with
# wrong statistics.  0.9 (PyTorch's default) settles within ~50 steps and is as good for long runs.
BN_MOMENTUM = 0.9

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")


def as_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` as a tuple of positive ints (the batch dimension excluded)."""
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"input_shape must be non-empty positive sizes, got {tuple(input_shape)}")
    return shape


def require_rank(name: str, shape: tuple[int, ...], ranks: tuple[int, ...]) -> None:
    """Raise a clear ValueError when a model gets a feature shape it cannot take."""
    if len(shape) not in ranks:
        kinds = {1: "1-D features (samples or bins)", 2: "2-D features (frames, features)"}
        wanted = " or ".join(kinds[r] for r in ranks)
        raise ValueError(f"{name} needs {wanted}, got input_shape {shape}")


def input_normalization(name: str = "input_norm") -> keras.layers.Layer:
    """Per-feature standardisation of the model's input, learned while training.

    A BatchNormalization on the last axis: one mean/variance per frequency bin, mel band or MFCC
    coefficient (per channel for 1-D inputs), so dB offsets of -80..+40 and the very different
    scales of MFCC coefficients need no external scaling, and nothing has to be adapted first.
    """
    return keras.layers.BatchNormalization(axis=-1, momentum=BN_MOMENTUM, name=name)


def check_optimizer(optimizer: str) -> None:
    """ConfigError (a ValueError) naming the valid optimizers unless ``optimizer`` is one."""
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")


def compile_model(
    model: keras.Model,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    soft_labels: bool = False,
    **compile_kwargs,
) -> keras.Model:
    """Compile ``model`` the way every approach is compiled; returns it for chaining.

    The models output softmax probabilities and the labels are integer class ids, hence sparse
    categorical cross-entropy on probabilities and accuracy.  ``soft_labels``: the labels are
    probability vectors instead (mixup's mixed one-hot labels; the validation data then gives
    one-hot labels too), hence categorical cross-entropy; "accuracy" then compares the
    arg-maxes.  Both are Keras built-ins, so saved models load without custom objects.
    ``compile_kwargs`` go on to ``model.compile`` (e.g. ``jit_compile``, ``steps_per_execution``).
    """
    check_optimizer(optimizer)
    opt = keras.optimizers.get(
        {"class_name": optimizer, "config": {"learning_rate": learning_rate}}
    )
    model.compile(
        optimizer=opt,
        loss="categorical_crossentropy" if soft_labels else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        **compile_kwargs,
    )
    return model


def classifier_head(x, num_classes: int, dense_units: int, dropout: float):
    """Dropout -> optional ReLU dense layer -> dropout -> softmax, shared by the Keras models."""
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout_1")(x)
    if dense_units > 0:
        x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name="head_dropout_2")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
