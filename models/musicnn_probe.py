"""Frozen pretrained musicnn features and a linear probe: the ``musicnn`` approach.

Why it exists: every other approach learns from scratch on a few hundred songs; musicnn
(Pons & Serra 2019) learnt music features from the Million Song Dataset (``"msd"``) or
MagnaTagATune (``"mtt"``).  A linear classifier on those features, with nothing of the network
trained, is the cheapest way to use them, and the published reference point (musicnn features
+ SVM: 77.2 % on the fault-filtered GTZAN split, against about 53 % for MFCC + SVM).

Two pieces, as every scikit-learn approach of ``models.registry`` has:

- ``musicnn_features(patches, weights=..., layer=...)``: the approach's ``featurize``, a batch of
  musicnn patches ``[B, 187, 96]`` (the pipeline's ``"musicnn"`` transform) to one output of the
  frozen network, ``[B, 753]`` (``max_pool``, ``mean_pool``) or ``[B, 200]`` (``penultimate``).
  The network is built and its checkpoint read once per process and weights (``frozen_musicnn``),
  then reused by every batch through one ``tf.function`` per (weights, layer).
- ``build_musicnn_probe(seed=..., probe=..., C=...)``: the estimator fitted on those vectors,
  ``VarianceThreshold -> StandardScaler -> LogisticRegression`` (default) or the RBF SVC of
  ``build_svc``.  Some units of the network are constant on music (a unit whose ReLU input
  never changes sign); their pooled values then differ only by float32 rounding, which a bare
  StandardScaler would blow up to unit variance (scales of 1e-13 were measured) and hand to the
  regression as if it were signal.  The threshold drops them first.

The probe is fitted on windows and the pipeline decides a song by the mean of its windows'
probabilities, as for every approach (see docs/musicnn.md for the comparison with pooling a
song's windows first).

``musicnn_frozen_features(weights=..., layer=...)`` describes the same features for the
embedding store (``models.frozen_features``): all three layers of one forward pass, keyed by a
checksum of the checkpoint files.

``probe_as_keras`` rewrites a fitted logistic probe as one Keras model (frozen network, then
the scaler and the regression folded into one softmax Dense layer: the same function, no
scikit-learn at run time), which is how ``pipeline.export`` exports the approach.
"""

from __future__ import annotations

import functools
import hashlib

import keras
import numpy as np
import tensorflow as tf
from sklearn.feature_selection import VarianceThreshold
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import ConfigError
from models.frozen_features import FrozenFeatures
from models.musicnn import N_MELS, PATCH_FRAMES, WEIGHTS, build_musicnn
from models.sklearn_baselines import build_svc

LAYERS = ("penultimate", "mean_pool", "max_pool")  # outputs of build_musicnn usable as features
PROBES = ("logistic", "svc")
PROBE_MAX_ITER = 2000  # lbfgs iterations of the logistic regression (converges in a few hundred)
# Features whose variance over the training windows is below this are constant units measured
# through float32 rounding (standard deviation < 1e-5, against 0.1-10 for informative units).
MIN_FEATURE_VARIANCE = 1e-10
# Part of the embedding store's key: bump when the port (models/musicnn.py) or the checkpoint
# reading changes what the network computes, so that no store of the old code is read.
FEATURES_VERSION = 1


def check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise ConfigError(f"unknown musicnn layer {layer!r}; valid: {', '.join(LAYERS)}")


@functools.lru_cache(maxsize=None)
def frozen_musicnn(weights: str) -> keras.Model:
    """The pretrained network ``weights`` ("msd" or "mtt"), frozen; built once per process."""
    if weights not in WEIGHTS:
        raise ConfigError(f"unknown musicnn weights {weights!r}; valid: {', '.join(WEIGHTS)}")
    net = build_musicnn(weights)
    net.trainable = False
    return net


@functools.lru_cache(maxsize=None)
def feature_model(weights: str, layer: str) -> keras.Model:
    """Patches ``[B, 187, 96]`` -> the frozen network's ``layer``; built once per process."""
    check_layer(layer)
    net = frozen_musicnn(weights)
    return keras.Model(net.input, net.output[layer], name=f"musicnn_{weights}_{layer}")


@functools.lru_cache(maxsize=None)
def _extractor(weights: str, layer: str):
    features = feature_model(weights, layer)
    spec = tf.TensorSpec([None, PATCH_FRAMES, N_MELS], tf.float32)
    # One trace for every batch size.  Not XLA: on CPU it measured 3x slower for these convs.
    return tf.function(lambda x: features(x, training=False), input_signature=[spec])


def musicnn_features(patches, *, weights: str = "msd", layer: str = "max_pool") -> tf.Tensor:
    """``[B, 187, 96]`` musicnn patches -> ``[B, d]`` features of the frozen network's ``layer``."""
    return _extractor(weights, layer)(tf.convert_to_tensor(patches, tf.float32))


@functools.lru_cache(maxsize=None)
def _all_layers(weights: str):
    net = frozen_musicnn(weights)
    spec = tf.TensorSpec([None, PATCH_FRAMES, N_MELS], tf.float32)

    def run(x):
        outputs = net(x, training=False)
        return {layer: outputs[layer] for layer in LAYERS}

    return tf.function(run, input_signature=[spec])


def all_layer_features(patches, *, weights: str = "msd") -> dict:
    """``[B, 187, 96]`` patches -> ``{layer: [B, d]}`` for every layer of ``LAYERS``, one pass."""
    return _all_layers(weights)(tf.convert_to_tensor(patches, tf.float32))


@functools.lru_cache(maxsize=None)
def checkpoint_digest(weights: str) -> str:
    """SHA-256 of the checkpoint files of ``weights`` (names and bytes), computed once."""
    from models.musicnn_checkpoint import checkpoint_dir

    digest = hashlib.sha256()
    folder = checkpoint_dir(weights)
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def musicnn_frozen_features(*, weights: str = "msd", layer: str = "max_pool") -> FrozenFeatures:
    """The ``musicnn`` approach's features as the embedding store sees them."""
    check_layer(layer)
    if weights not in WEIGHTS:
        raise ConfigError(f"unknown musicnn weights {weights!r}; valid: {', '.join(WEIGHTS)}")
    return FrozenFeatures(
        name=f"musicnn_{weights}", layers=LAYERS, layer=layer,
        identity={"network": "musicnn", "weights": weights,
                  "checkpoint_sha256": checkpoint_digest(weights),
                  "features_version": FEATURES_VERSION},
        compute=functools.partial(all_layer_features, weights=weights))


def build_musicnn_probe(*, seed: int = 42, probe: str = "logistic", C: float = 1.0) -> Pipeline:
    """The probe on musicnn features: ``VarianceThreshold -> StandardScaler ->
    LogisticRegression(C)`` (multinomial, L2) or, with ``probe="svc"``, ``build_svc(C=C)`` (RBF
    SVC with calibrated probabilities)."""
    if probe not in PROBES:
        raise ConfigError(f"unknown probe {probe!r}; valid: {', '.join(PROBES)}")
    if C <= 0:
        raise ConfigError(f"C must be positive, got {C}")
    if probe == "svc":
        return build_svc(seed=seed, C=C)
    return make_pipeline(
        VarianceThreshold(MIN_FEATURE_VARIANCE), StandardScaler(),
        LogisticRegression(C=C, max_iter=PROBE_MAX_ITER, random_state=seed),
    )


def probe_as_keras(estimator: Pipeline, *, weights: str = "msd", layer: str = "max_pool"
                   ) -> keras.Model:
    """A fitted logistic probe (``build_musicnn_probe(probe="logistic")``) as a Keras model from
    musicnn patches ``[B, 187, 96]`` to the probe's class probabilities ``[B, C]``.

    On the kept features, ``softmax(((x - mean) / scale) @ W.T + b)`` is ``softmax(x @ (W /
    scale).T + b - W @ (mean / scale))``: one Dense layer after the frozen network's ``layer``,
    whose rows for the dropped (constant) features are zero.  A two-class regression (one
    coefficient row ``w``) becomes the rows ``-w/2, w/2``, whose softmax is its sigmoid.  The
    SVC probe (RBF kernel, Platt calibration) has no such form: a ConfigError says so.
    """
    steps = [step for _, step in estimator.steps]
    if [type(s) for s in steps] != [VarianceThreshold, StandardScaler, LogisticRegression]:
        raise ConfigError(
            "only the logistic-regression probe (probe=logistic) can be rewritten as a Keras "
            f"model; this run's probe is {' -> '.join(type(s).__name__ for s in steps)}")
    selector, scaler, regression = steps
    coef = regression.coef_.astype(np.float64) / scaler.scale_
    bias = regression.intercept_.astype(np.float64) - coef @ scaler.mean_
    if coef.shape[0] == 1:  # binary: sigmoid(z) == softmax([-z/2, z/2])[1]
        coef, bias = np.concatenate([-coef, coef]) / 2, np.concatenate([-bias, bias]) / 2
    kernel = np.zeros((len(selector.get_support()), coef.shape[0]))
    kernel[selector.get_support()] = coef.T

    patches = keras.Input((PATCH_FRAMES, N_MELS), name="patches")
    dense = keras.layers.Dense(coef.shape[0], activation="softmax", name="probe")
    probabilities = dense(feature_model(weights, layer)(patches))
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return keras.Model(patches, probabilities, name=f"musicnn_{weights}_{layer}_probe")
