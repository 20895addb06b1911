"""The study's approaches by name: what each is, which transforms it takes, how to build it.

The CLIs, the tuner and the tests go through this module only::

    approach = get_approach("cnn2d")
    check_compatible("cnn2d", "mel")                   # ConfigError with the reason otherwise
    model = build_model("cnn2d", (130, 128), 10, seed=42, filters=32)
    if approach.pretrain:                              # encoder_classifier only
        approach.pretrain(model, train_ds, val_ds, epochs=20)
    compile_model(model, learning_rate=1e-3)           # builders return *uncompiled* models
    model.fit(train_ds, validation_data=val_ds, ...)

Keras approaches: ``build(input_shape, num_classes, **hp) -> keras.Model``, uncompiled, mapping a
batch of features ``[B, *input_shape]`` to softmax probabilities ``[B, num_classes]``, labels being
integer class ids.  Every model normalises its own input (no external scaling), and saves and
loads with ``model.save("x.keras")`` / ``keras.models.load_model`` (built-in layers only).

scikit-learn approaches: ``build(seed=..., **hp) -> sklearn Pipeline`` fitted on
``pool_features(features)`` arrays (the CLI streams batches through ``pool_features``).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Optional, Sequence

from core.config import TRANSFORMS
from core.errors import ConfigError
from models.cnn1d import build_cnn1d
from models.cnn2d import build_cnn2d
from models.common import compile_model
from models.encoder_classifier import build_encoder_classifier, pretrain
from models.lstm import build_lstm
from models.sklearn_baselines import SVC_CALIBRATION_FOLDS, build_rf, build_svc, pool_features

__all__ = [
    "APPROACHES",
    "Approach",
    "build_model",
    "check_compatible",
    "check_hparams",
    "compile_model",
    "get_approach",
    "pool_features",
]

TIME_FREQUENCY = ("stft", "mel", "mfcc")
SPECTRAL = ("fft",) + TIME_FREQUENCY
# Every transform whose settings the pipeline chooses freely ("musicnn" is fixed to the
# pretrained musicnn networks' input and only feeds an approach built on them).
GENERAL = ("raw",) + SPECTRAL

# How check_compatible names what an approach needs.
_NEEDS = {
    TIME_FREQUENCY: "a time-frequency transform",
    SPECTRAL: "a spectral transform",
}

# Arguments of the builders that are not hyperparameters.
_NOT_HPARAMS = ("input_shape", "num_classes", "seed")


def _signature_defaults(build: Callable) -> dict[str, Any]:
    """The keyword defaults of ``build``, less its non-hyperparameter arguments."""
    return {
        name: p.default
        for name, p in inspect.signature(build).parameters.items()
        if name not in _NOT_HPARAMS and p.default is not inspect.Parameter.empty
    }


@dataclasses.dataclass(frozen=True)
class Approach:
    """One approach of the study.

    Attributes:
        name: registry key, as given on the command line.
        kind: ``"keras"`` or ``"sklearn"``.
        transforms: the transforms (``core.config.TRANSFORMS``) it accepts.
        build: keras: ``build(input_shape, num_classes, **hp) -> keras.Model`` (uncompiled);
            sklearn: ``build(seed=..., **hp) -> Pipeline`` on ``pool_features`` output.
        defaults: default hyperparameters (the keyword defaults of ``build``).
        pretrain: optional ``pretrain(model, train_ds, val_ds, *, epochs, callbacks=None,
            verbose="auto")`` to run after building and before ``compile_model`` and ``fit``.
        description: one line for ``--help`` and reports.
        featurize: sklearn: batch of pipeline features ``[B, ...]`` -> vectors ``[B, d]`` the
            estimator is fitted on (and predicts from).
        min_windows_per_class: sklearn: fewest training windows of a class ``fit`` accepts.
    """

    name: str
    kind: str
    transforms: tuple[str, ...]
    build: Callable
    defaults: dict
    pretrain: Optional[Callable] = None
    description: str = ""
    featurize: Optional[Callable] = None
    min_windows_per_class: int = 1


def _approach(name, kind, transforms, build, description, **extra) -> Approach:
    return Approach(name=name, kind=kind, transforms=transforms, build=build,
                    defaults=_signature_defaults(build), description=description, **extra)


APPROACHES: dict[str, Approach] = {
    a.name: a
    for a in (
        _approach(
            "svc", "sklearn", SPECTRAL, build_svc,
            "RBF support vector machine on pooled per-window statistics",
            featurize=pool_features, min_windows_per_class=SVC_CALIBRATION_FOLDS,
        ),
        _approach(
            "rf", "sklearn", SPECTRAL, build_rf,
            "random forest on pooled per-window statistics",
            featurize=pool_features,
        ),
        _approach(
            "cnn1d", "keras", GENERAL, build_cnn1d,
            "1-D CNN over time (2-D transforms) or samples/bins (raw, fft; strided front end)",
        ),
        _approach(
            "cnn2d", "keras", TIME_FREQUENCY, build_cnn2d,
            "2-D CNN on the time-frequency image",
        ),
        _approach(
            "lstm", "keras", TIME_FREQUENCY, build_lstm,
            "LSTM over the frames of a time-frequency transform",
        ),
        _approach(
            "encoder_classifier", "keras", TIME_FREQUENCY, build_encoder_classifier,
            "conv autoencoder pretrained on reconstruction, frozen encoder + small classifier",
            pretrain=pretrain,
        ),
    )
}


def get_approach(name: str) -> Approach:
    """The approach called ``name``; ConfigError (a ValueError) listing the valid names."""
    try:
        return APPROACHES[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; valid: {', '.join(APPROACHES)}"
        ) from None


def check_compatible(model: str, transform: str) -> None:
    """Raise ConfigError unless approach ``model`` can take features of ``transform``."""
    approach = get_approach(model)
    if transform not in TRANSFORMS:
        raise ConfigError(f"unknown transform {transform!r}; valid: {', '.join(TRANSFORMS)}")
    if transform not in approach.transforms:
        needs = _NEEDS.get(approach.transforms, "one of the transforms")
        raise ConfigError(
            f"{model} needs {needs} ({', '.join(approach.transforms)}), not {transform}"
        )


def check_hparams(name: str, hparams: dict) -> None:
    """ConfigError unless every key of ``hparams`` is a hyperparameter of approach ``name``."""
    approach = get_approach(name)
    unknown = sorted(set(hparams) - set(approach.defaults))
    if unknown:
        raise ConfigError(
            f"unknown hyperparameter(s) for {name}: {', '.join(unknown)}; "
            f"valid: {', '.join(approach.defaults)}"
        )


def build_model(
    name: str,
    input_shape: Optional[Sequence[int]],
    num_classes: int,
    *,
    seed: int = 42,
    **hparams,
):
    """Build approach ``name`` with ``hparams`` over its defaults.

    Keras: returns the uncompiled model; its initial weights come from the global random state,
    which the caller seeds (``pipeline.experiments.seeding.seed_everything`` at the start of a
    run or trial): building never changes process state.  sklearn: returns the unfitted
    pipeline, seeded through ``random_state=seed``; ``input_shape`` and ``num_classes`` are not
    needed (the pipeline learns them in ``fit``).

    Raises ConfigError (a ValueError) for an unknown name or hyperparameter (naming the valid
    ones).
    """
    approach = get_approach(name)
    check_hparams(name, hparams)
    if approach.kind == "sklearn":
        return approach.build(seed=seed, **hparams)
    if input_shape is None:
        raise ValueError(f"{name} needs the feature shape (input_shape) to build")
    return approach.build(input_shape, num_classes, **hparams)
