"""The study's approaches by name: what each is, which transforms it takes, how to build it.

The CLIs, the tuner and the tests go through this module only::

    approach = get_approach("cnn2d")
    check_compatible("cnn2d", "mel")                   # ConfigError with the reason otherwise
    model = build_model("cnn2d", (130, 128), 10, seed=42, filters=32)
    run_pretrain("cnn2d", model, train_ds, val_ds,     # the approach's pretrain step, if any
                 hparams={}, epochs=20)                # (encoder_classifier, musicnn_finetune)
    compile_model(model, learning_rate=1e-3)           # builders return *uncompiled* models
    model.fit(train_ds, validation_data=val_ds, ...)

Keras approaches: ``build(input_shape, num_classes, **hp) -> keras.Model``, uncompiled, mapping a
batch of features ``[B, *input_shape]`` to softmax probabilities ``[B, num_classes]``, labels being
integer class ids.  Every model normalises its own input (no external scaling), and saves and
loads with ``model.save("x.keras")`` / ``keras.models.load_model`` (built-in layers only).

scikit-learn approaches: ``build(seed=..., **hp) -> sklearn Pipeline`` fitted on the vectors of
the approach's ``featurize`` (the CLI streams batches through ``featurizer(name, hparams)``).

Each approach declares its steps (``build``, and optionally ``pretrain``, ``featurize``,
``to_keras``) as a `Step`: the function, the hyperparameters it owns (`HParam`: default and the
values a search tries, as a ``keras_tuner.HyperModel`` would declare them) and those of another
step it reads too (``musicnn_finetune``'s pretrain reads the build's ``layer``).  A step is
called with exactly its declared hyperparameters.

Approaches built on a pretrained network also say what the pipeline must be (``requires``:
``{"transform.name": "musicnn", "window.sample_rate": 16000}``) and what it should be unless
the user says otherwise (``presets``: window length, step, learning rate), as dotted
``PipelineConfig``/``TrainConfig`` paths; ``pipeline.cli.flags.apply_approach_settings`` applies
them where no flag was given, and refuses a flag that contradicts a requirement.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional, Sequence

from core import musicnn_input
from core.config import TRANSFORMS
from core.errors import ConfigError
from models.cnn1d import build_cnn1d
from models.cnn2d import build_cnn2d
from models.common import compile_model
from models.encoder_classifier import build_encoder_classifier, pretrain
from models.lstm import build_lstm
from models.musicnn import WEIGHTS
from models.musicnn_checkpoint import checkpoint_dir as musicnn_checkpoint_dir
from models.musicnn_checkpoint import is_installed as musicnn_weights_installed
from models.musicnn_finetune import build_musicnn_finetune, train_head_then_unfreeze
from models.musicnn_probe import LAYERS as MUSICNN_LAYERS
from models.musicnn_probe import PROBES as MUSICNN_PROBES
from models.musicnn_probe import build_musicnn_probe, musicnn_features, probe_as_keras
from models.musicnn_probe import musicnn_frozen_features
from models.sklearn_baselines import SVC_CALIBRATION_FOLDS, build_rf, build_svc, pool_features

__all__ = [
    "APPROACHES",
    "Approach",
    "HParam",
    "Step",
    "build_model",
    "check_available",
    "check_compatible",
    "check_hparams",
    "compile_model",
    "featurizer",
    "frozen_features",
    "get_approach",
    "is_available",
    "keras_equivalent",
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

# The pretrained musicnn networks read 16 kHz patches of 187 frames: 2.976 s windows.
MUSICNN_WINDOW_SECONDS = musicnn_input.MIN_WINDOW_LENGTH / musicnn_input.SAMPLE_RATE
MUSICNN_REQUIRES = {"transform.name": "musicnn", "window.sample_rate": musicnn_input.SAMPLE_RATE}
MUSICNN_PRESETS = {"window.window_seconds": MUSICNN_WINDOW_SECONDS,
                   "window.step_seconds": MUSICNN_WINDOW_SECONDS}


@dataclasses.dataclass(frozen=True)
class HParam:
    """One hyperparameter: its default, and what a search tries (nothing: not searched).

    Attributes:
        default: the value without ``--hparam`` or a search.
        choices: the values a search picks from.
        log_range: or a continuous ``(min, max)`` sampled log-uniformly (scale parameters).
        searched_with: the transforms on which a search tries it (None: all the approach's).
    """

    default: Any
    choices: tuple = ()
    log_range: Optional[tuple[float, float]] = None
    searched_with: Optional[tuple[str, ...]] = None

    def searched_on(self, transform: str) -> bool:
        return bool(self.choices or self.log_range) and (
            self.searched_with is None or transform in self.searched_with)


@dataclasses.dataclass(frozen=True)
class Step:
    """A function of an approach with the hyperparameters it owns and those it reads."""

    fn: Callable
    hparams: dict = dataclasses.field(default_factory=dict)  # name -> HParam
    reads: tuple[str, ...] = ()  # owned by another step of the approach, passed here too

    def bind(self, values: dict) -> dict:
        """The entries of `values` this step takes, as keyword arguments."""
        return {k: values[k] for k in (*self.hparams, *self.reads) if k in values}


def _fixed(default) -> HParam:
    return HParam(default)


def _tried(default, *choices, on: Optional[tuple[str, ...]] = None) -> HParam:
    return HParam(default, choices=tuple(choices), searched_with=on)


# Search ranges shared by the approaches that have the hyperparameter.
_DROPOUTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
_DENSE_UNITS = (0, 32, 64, 128)


def _conv_hparams(kernel_size: int) -> dict:
    return {"blocks": _tried(3, 1, 2, 3, 4), "filters": _tried(16, 8, 16, 32, 64),
            "kernel_size": _tried(kernel_size, 3, 5, 7)}


def _head_hparams(dense_units: int, dropout: float) -> dict:
    return {"dense_units": _tried(dense_units, *_DENSE_UNITS), "dropout": _tried(dropout, *_DROPOUTS)}


@dataclasses.dataclass(frozen=True)
class Approach:
    """One approach of the study.

    Attributes:
        name: registry key, as given on the command line.
        kind: ``"keras"`` or ``"sklearn"``.
        transforms: the transforms (``core.config.TRANSFORMS``) it accepts.
        description: one line for ``--help`` and reports.
        build_step: keras: ``build(input_shape, num_classes, **hp) -> keras.Model``
            (uncompiled); sklearn: ``build(seed=..., **hp) -> Pipeline`` on the featurize output.
        pretrain_step: optional ``pretrain(model, train_ds, val_ds, *, epochs, callbacks=None,
            verbose="auto", **hp)`` to run after building and before ``compile_model`` and ``fit``.
        featurize_step: sklearn: batch of pipeline features ``[B, ...]`` -> vectors ``[B, d]``
            the estimator is fitted on (and predicts from); use ``featurizer(name, hparams)``.
        to_keras_step: sklearn: optional ``to_keras(estimator, **hp) -> keras.Model`` from the
            pipeline's features to probabilities, the same function as ``featurize`` then the
            estimator (how ``pipeline.export`` exports it); use ``keras_equivalent``.
        min_windows_per_class: sklearn: fewest training windows of a class ``fit`` accepts.
        requires: pipeline settings the approach cannot work without (dotted config paths,
            e.g. ``"window.sample_rate"``): a flag that contradicts one is a ConfigError.
        presets: settings used where the user gave no flag (``"window.window_seconds"``,
            ``"train.learning_rate"``, ...).
        needs_weights: built on the pretrained musicnn networks (the ``musicnn`` wheel).
        train_ranges: training hyperparameters (``learning_rate``) a search tries over other
            values than for other approaches.
        frozen_features_step: sklearn on a frozen network: optional ``frozen_features(**hp) ->
            models.frozen_features.FrozenFeatures``, what the embedding store computes once and
            keeps (``pipeline.stream.embedding_store``); use ``frozen_features(name, hparams)``.
    """

    name: str
    kind: str
    transforms: tuple[str, ...]
    description: str
    build_step: Step
    pretrain_step: Optional[Step] = None
    featurize_step: Optional[Step] = None
    to_keras_step: Optional[Step] = None
    min_windows_per_class: int = 1
    requires: dict = dataclasses.field(default_factory=dict)
    presets: dict = dataclasses.field(default_factory=dict)
    needs_weights: bool = False
    train_ranges: dict = dataclasses.field(default_factory=dict)
    frozen_features_step: Optional[Step] = None

    @property
    def build(self) -> Callable:
        return self.build_step.fn

    @property
    def pretrain(self) -> Optional[Callable]:
        return self.pretrain_step.fn if self.pretrain_step else None

    @property
    def featurize(self) -> Optional[Callable]:
        return self.featurize_step.fn if self.featurize_step else None

    @property
    def to_keras(self) -> Optional[Callable]:
        return self.to_keras_step.fn if self.to_keras_step else None

    @property
    def frozen_features(self) -> Optional[Callable]:
        return self.frozen_features_step.fn if self.frozen_features_step else None

    @property
    def hparams(self) -> dict:
        """Every hyperparameter of the approach (name -> `HParam`), build's first."""
        out: dict = {}
        for step in (self.build_step, self.featurize_step, self.pretrain_step, self.to_keras_step):
            if step is not None:
                out.update(step.hparams)
        return out

    @property
    def defaults(self) -> dict:
        """Default hyperparameters: name -> value."""
        return {name: h.default for name, h in self.hparams.items()}


# What a search of a scikit-learn approach tries (``python -m tuning.search --model musicnn``):
# every value is cheap to score once the features are there (the embedding store keeps all
# three layers of each network's pass), so the probe's choices are the feature choices too.
_MUSICNN_FEATURE_HPARAMS = {"weights": _tried("msd", *WEIGHTS),
                            "layer": _tried("max_pool", *MUSICNN_LAYERS)}
_PROBE_CS = (0.01, 0.1, 1.0, 10.0)

APPROACHES: dict[str, Approach] = {
    a.name: a
    for a in (
        Approach(
            "svc", "sklearn", SPECTRAL,
            "RBF support vector machine on pooled per-window statistics",
            build_step=Step(build_svc, {"C": _tried(10.0, 0.1, 1.0, 10.0, 100.0),
                                        "gamma": _fixed("scale"),
                                        "kernel": _fixed("rbf")}),
            featurize_step=Step(pool_features), min_windows_per_class=SVC_CALIBRATION_FOLDS,
        ),
        Approach(
            "rf", "sklearn", SPECTRAL, "random forest on pooled per-window statistics",
            build_step=Step(build_rf, {
                "n_estimators": _tried(300, 100, 300, 600), "max_depth": _fixed(None),
                "min_samples_leaf": _tried(1, 1, 2, 4, 8),
                "max_features": _tried("sqrt", "sqrt", "log2"),
                "n_jobs": _fixed(None)}),
            featurize_step=Step(pool_features),
        ),
        Approach(
            "cnn1d", "keras", GENERAL,
            "1-D CNN over time (2-D transforms) or samples/bins (raw, fft; strided front end)",
            build_step=Step(build_cnn1d, {
                **_conv_hparams(5), "pool_size": _fixed(2),
                # the strided front end acts on 1-D features only
                "front_kernel": _tried(256, 64, 128, 256, 512, on=("raw", "fft")),
                "front_stride": _tried(64, 16, 32, 64, on=("raw", "fft")),
                **_head_hparams(64, 0.3)}),
        ),
        Approach(
            "cnn2d", "keras", TIME_FREQUENCY, "2-D CNN on the time-frequency image",
            build_step=Step(build_cnn2d, {**_conv_hparams(3), "pool_size": _fixed(2),
                                          **_head_hparams(64, 0.3)}),
        ),
        Approach(
            "lstm", "keras", TIME_FREQUENCY, "LSTM over the frames of a time-frequency transform",
            build_step=Step(build_lstm, {
                "units": _tried(64, 32, 64, 128), "layers": _tried(1, 1, 2),
                "bidirectional": _tried(False, False, True), **_head_hparams(0, 0.3)}),
        ),
        Approach(
            "encoder_classifier", "keras", TIME_FREQUENCY,
            "conv autoencoder pretrained on reconstruction, frozen encoder + small classifier",
            build_step=Step(build_encoder_classifier, {
                **_conv_hparams(3), "latent_channels": _tried(8, 4, 8, 16),
                **_head_hparams(64, 0.3)}),
            pretrain_step=Step(pretrain),
        ),
        Approach(
            "musicnn", "sklearn", ("musicnn",),
            "frozen pretrained musicnn features of each window + linear probe",
            build_step=Step(build_musicnn_probe, {"probe": _tried("logistic", *MUSICNN_PROBES),
                                                  "C": _tried(1.0, *_PROBE_CS)}),
            featurize_step=Step(musicnn_features, _MUSICNN_FEATURE_HPARAMS),
            to_keras_step=Step(probe_as_keras, reads=tuple(_MUSICNN_FEATURE_HPARAMS)),
            requires=MUSICNN_REQUIRES, presets=MUSICNN_PRESETS, needs_weights=True,
            frozen_features_step=Step(musicnn_frozen_features,
                                      reads=tuple(_MUSICNN_FEATURE_HPARAMS)),
        ),
        Approach(
            "musicnn_finetune", "keras", ("musicnn",),
            "pretrained musicnn + new head: head trained first, then the top blocks fine-tuned",
            build_step=Step(build_musicnn_finetune, {
                "weights": _tried("msd", *WEIGHTS), "layer": _tried("max_pool", "max_pool", "mean_pool", "penultimate"),
                "dense_units": _tried(0, 0, 64, 128), "dropout": _tried(0.5, *_DROPOUTS)}),
            # fine-tuning pretrained blocks: learning rates 10x lower than from scratch
            pretrain_step=Step(train_head_then_unfreeze, {
                "head_learning_rate": HParam(1e-3, log_range=(1e-4, 1e-2)),
                "unfreeze": _tried(1, 0, 1, 2)}, reads=("layer",)),
            requires=MUSICNN_REQUIRES,
            presets={**MUSICNN_PRESETS, "train.learning_rate": 1e-4}, needs_weights=True,
            train_ranges={"learning_rate": HParam(1e-4, log_range=(1e-5, 1e-3))},
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
    bound = approach.featurize_step.bind({**approach.defaults, **(hparams or {})})
    return functools.partial(approach.featurize, **bound) if bound else approach.featurize


def frozen_features(name: str, hparams: Optional[dict] = None):
    """The ``FrozenFeatures`` of approach ``name`` with its hyperparameters, or None where its
    features are not the outputs of a frozen network (every approach but ``musicnn``)."""
    approach = get_approach(name)
    if approach.frozen_features is None:
        return None
    return approach.frozen_features(
        **approach.frozen_features_step.bind({**approach.defaults, **(hparams or {})}))


def keras_equivalent(name: str, estimator, hparams: Optional[dict] = None):
    """The fitted estimator of sklearn approach ``name`` as a Keras model from pipeline
    features to probabilities, or None where the approach has no such form (svc, rf)."""
    approach = get_approach(name)
    if approach.to_keras is None:
        return None
    bound = approach.to_keras_step.bind({**approach.defaults, **(hparams or {})})
    return approach.to_keras(estimator, **bound)


def run_pretrain(name: str, model, train_ds, val_ds, *, hparams: dict, epochs: int,
                 verbose="auto"):
    """Run approach ``name``'s ``pretrain`` step (if any) with its hyperparameters; call
    ``compile_model`` after it.  Returns what the step returns (None without one)."""
    approach = get_approach(name)
    if approach.pretrain_step is None:
        return None
    bound = approach.pretrain_step.bind({**approach.defaults, **hparams})
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
    hparams = approach.build_step.bind(hparams)  # the other steps' go to them
    if approach.kind == "sklearn":
        return approach.build(seed=seed, **hparams)
    if input_shape is None:
        raise ValueError(f"{name} needs the feature shape (input_shape) to build")
    return approach.build(input_shape, num_classes, **hparams)
