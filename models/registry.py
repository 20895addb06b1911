"""The study's approaches by name: what each is, which transforms it takes, how to build it.

The CLIs, the tuner and the tests go through this module only::

    approach = get_approach("cnn2d")
    check_compatible("cnn2d", "mel")                   # ConfigError with the reason otherwise
    model = build_model("cnn2d", (130, 128), 10, seed=42, filters=32)
    run_pretrain("cnn2d", model, train_ds, val_ds,     # the approach's pretrain hook, if any
                 hparams={}, epochs=20)                # (encoder_classifier, musicnn_finetune)
    compile_model(model, learning_rate=1e-3)           # builders return *uncompiled* models
    model.fit(train_ds, validation_data=val_ds, ...)

Keras approaches: ``build(input_shape, num_classes, **hp) -> keras.Model``, uncompiled, mapping a
batch of features ``[B, *input_shape]`` to softmax probabilities ``[B, num_classes]``, labels being
integer class ids.  Every model normalises its own input (no external scaling), and saves and
loads with ``model.save("x.keras")`` / ``keras.models.load_model`` (built-in layers only).

scikit-learn approaches: ``build(seed=..., **hp) -> sklearn Pipeline`` fitted on the vectors of
the approach's ``featurize`` (the CLI streams batches through ``featurizer(name, hparams)``).

Hyperparameters are the keyword defaults of ``build``, plus the ``hook_hparams`` an approach
declares for its ``featurize``/``pretrain`` hooks (keyword-only arguments there): every
hyperparameter goes to the callables whose signature names it, so ``musicnn``'s ``weights`` and
``layer`` reach its feature extractor and its ``probe`` and ``C`` reach ``build``.

Approaches built on a pretrained network also say what the pipeline must be (``requires``:
``{"transform.name": "musicnn", "window.sample_rate": 16000}``) and what it should be unless
the user says otherwise (``presets``: window length, step, learning rate), as dotted
``PipelineConfig``/``TrainConfig`` paths; ``pipeline.cli.flags.apply_approach_settings`` applies
them where no flag was given, and refuses a flag that contradicts a requirement.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable, Optional, Sequence

from core import musicnn_input
from core.config import TRANSFORMS
from core.errors import ConfigError
from models.cnn1d import build_cnn1d
from models.cnn2d import build_cnn2d
from models.common import compile_model
from models.encoder_classifier import build_encoder_classifier, pretrain
from models.lstm import build_lstm
from models.musicnn_checkpoint import checkpoint_dir as musicnn_checkpoint_dir
from models.musicnn_checkpoint import is_installed as musicnn_weights_installed
from models.musicnn_finetune import build_musicnn_finetune, train_head_then_unfreeze
from models.musicnn_probe import build_musicnn_probe, musicnn_features, probe_as_keras
from models.musicnn_probe import musicnn_frozen_features
from models.sklearn_baselines import SVC_CALIBRATION_FOLDS, build_rf, build_svc, pool_features

__all__ = [
    "APPROACHES",
    "Approach",
    "build_model",
    "check_available",
    "check_compatible",
    "check_hparams",
    "compile_model",
    "featurizer",
    "frozen_features",
    "get_approach",
    "is_available",
    "pool_features",
    "run_pretrain",
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

# The pretrained musicnn networks read 16 kHz patches of 187 frames: 2.976 s windows.
MUSICNN_WINDOW_SECONDS = musicnn_input.MIN_WINDOW_LENGTH / musicnn_input.SAMPLE_RATE
MUSICNN_REQUIRES = {"transform.name": "musicnn", "window.sample_rate": musicnn_input.SAMPLE_RATE}
MUSICNN_PRESETS = {"window.window_seconds": MUSICNN_WINDOW_SECONDS,
                   "window.step_seconds": MUSICNN_WINDOW_SECONDS}


def _signature_defaults(build: Callable) -> dict[str, Any]:
    """The keyword defaults of ``build``, less its non-hyperparameter arguments."""
    return {
        name: p.default
        for name, p in inspect.signature(build).parameters.items()
        if name not in _NOT_HPARAMS and p.default is not inspect.Parameter.empty
    }


def _accepted(fn: Callable, hparams: dict) -> dict[str, Any]:
    """The entries of ``hparams`` that ``fn`` takes as keyword arguments."""
    params = inspect.signature(fn).parameters
    return {k: v for k, v in hparams.items() if k in params
            and params[k].kind in (inspect.Parameter.KEYWORD_ONLY,
                                   inspect.Parameter.POSITIONAL_OR_KEYWORD)}


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
            estimator is fitted on (and predicts from); use ``featurizer(name, hparams)``.
        min_windows_per_class: sklearn: fewest training windows of a class ``fit`` accepts.
        hook_hparams: hyperparameters taken by ``featurize``/``pretrain`` (keyword-only there,
            defaults from their signatures) rather than by ``build``.
        requires: pipeline settings the approach cannot work without (dotted config paths,
            e.g. ``"window.sample_rate"``): a flag that contradicts one is a ConfigError.
        presets: settings used where the user gave no flag (``"window.window_seconds"``,
            ``"train.learning_rate"``, ...).
        needs_weights: built on the pretrained musicnn networks (the ``musicnn`` wheel).
        to_keras: sklearn: optional ``to_keras(estimator, **hook hparams) -> keras.Model`` from
            the pipeline's features to probabilities, the same function as ``featurize`` then
            the estimator (how ``pipeline.export`` exports it); use ``keras_equivalent``.
        frozen_features: sklearn on a frozen network: optional ``frozen_features(**hook
            hparams) -> models.frozen_features.FrozenFeatures``, what the embedding store
            computes once and keeps (``pipeline.stream.embedding_store``); use
            ``frozen_features(name, hparams)``.
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
    hook_hparams: tuple[str, ...] = ()
    requires: dict = dataclasses.field(default_factory=dict)
    presets: dict = dataclasses.field(default_factory=dict)
    needs_weights: bool = False
    to_keras: Optional[Callable] = None
    frozen_features: Optional[Callable] = None


def _approach(name, kind, transforms, build, description, **extra) -> Approach:
    defaults = _signature_defaults(build)
    for hook in (extra.get("featurize"), extra.get("pretrain")):
        if hook is not None:
            hook_defaults = _signature_defaults(hook)
            defaults.update({n: hook_defaults[n] for n in extra.get("hook_hparams", ())
                             if n in hook_defaults})
    return Approach(name=name, kind=kind, transforms=transforms, build=build,
                    defaults=defaults, description=description, **extra)


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
        _approach(
            "musicnn", "sklearn", ("musicnn",), build_musicnn_probe,
            "frozen pretrained musicnn features of each window + linear probe",
            featurize=musicnn_features, hook_hparams=("weights", "layer"),
            requires=MUSICNN_REQUIRES, presets=MUSICNN_PRESETS, needs_weights=True,
            to_keras=probe_as_keras, frozen_features=musicnn_frozen_features,
        ),
        _approach(
            "musicnn_finetune", "keras", ("musicnn",), build_musicnn_finetune,
            "pretrained musicnn + new head: head trained first, then the top blocks fine-tuned",
            pretrain=train_head_then_unfreeze, hook_hparams=("head_learning_rate", "unfreeze"),
            requires=MUSICNN_REQUIRES,
            presets={**MUSICNN_PRESETS, "train.learning_rate": 1e-4}, needs_weights=True,
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


def is_available(name: str) -> bool:
    """Whether approach ``name`` can run here (its pretrained weights, if any, are installed)."""
    return not get_approach(name).needs_weights or musicnn_weights_installed()


def check_available(name: str) -> None:
    """WeightsNotFoundError (with the install command) when ``name``'s weights are missing."""
    if get_approach(name).needs_weights:
        musicnn_checkpoint_dir("msd")


def featurizer(name: str, hparams: Optional[dict] = None) -> Callable:
    """sklearn approach ``name``'s ``featurize`` with its hyperparameters (``hparams`` over the
    defaults) bound: a function from a batch of pipeline features to vectors."""
    approach = get_approach(name)
    if approach.featurize is None:
        raise ValueError(f"{name} is not a scikit-learn approach: it has no featurize")
    check_hparams(name, hparams or {})
    bound = _accepted(approach.featurize, {**approach.defaults, **(hparams or {})})
    return functools.partial(approach.featurize, **bound) if bound else approach.featurize


def frozen_features(name: str, hparams: Optional[dict] = None):
    """The ``FrozenFeatures`` of approach ``name`` with its hyperparameters, or None where its
    features are not the outputs of a frozen network (every approach but ``musicnn``)."""
    approach = get_approach(name)
    if approach.frozen_features is None:
        return None
    bound = _accepted(approach.frozen_features, {**approach.defaults, **(hparams or {})})
    return approach.frozen_features(**bound)


def keras_equivalent(name: str, estimator, hparams: Optional[dict] = None):
    """The fitted estimator of sklearn approach ``name`` as a Keras model from pipeline
    features to probabilities, or None where the approach has no such form (svc, rf)."""
    approach = get_approach(name)
    if approach.to_keras is None:
        return None
    bound = _accepted(approach.to_keras, {**approach.defaults, **(hparams or {})})
    return approach.to_keras(estimator, **bound)


def run_pretrain(name: str, model, train_ds, val_ds, *, hparams: dict, epochs: int,
                 verbose="auto"):
    """Run approach ``name``'s ``pretrain`` hook (if any) with its hyperparameters; call
    ``compile_model`` after it.  Returns what the hook returns (None without a hook)."""
    approach = get_approach(name)
    if approach.pretrain is None:
        return None
    bound = _accepted(approach.pretrain, {**approach.defaults, **hparams})
    return approach.pretrain(model, train_ds, val_ds, epochs=epochs, verbose=verbose, **bound)


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
    hparams = _accepted(approach.build, hparams)  # hook hyperparameters go to the hooks
    if approach.kind == "sklearn":
        return approach.build(seed=seed, **hparams)
    if input_shape is None:
        raise ValueError(f"{name} needs the feature shape (input_shape) to build")
    return approach.build(input_shape, num_classes, **hparams)
