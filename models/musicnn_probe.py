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
  ``StandardScaler -> LogisticRegression`` (default) or the RBF SVC of ``build_svc``.

The probe is fitted on windows and the pipeline decides a song by the mean of its windows'
probabilities, as for every approach (see docs/musicnn.md for the comparison with pooling a
song's windows first).
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import ConfigError
from models.musicnn import N_MELS, PATCH_FRAMES, WEIGHTS, build_musicnn
from models.sklearn_baselines import build_svc

LAYERS = ("penultimate", "mean_pool", "max_pool")  # outputs of build_musicnn usable as features
PROBES = ("logistic", "svc")
PROBE_MAX_ITER = 2000  # lbfgs iterations of the logistic regression (converges in a few hundred)


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
def _extractor(weights: str, layer: str):
    check_layer(layer)
    net = frozen_musicnn(weights)
    features = keras.Model(net.input, net.output[layer], name=f"musicnn_{weights}_{layer}")
    spec = tf.TensorSpec([None, PATCH_FRAMES, N_MELS], tf.float32)
    # One trace for every batch size.  Not XLA: on CPU it measured 3x slower for these convs.
    return tf.function(lambda x: features(x, training=False), input_signature=[spec])


def musicnn_features(patches, *, weights: str = "msd", layer: str = "max_pool") -> tf.Tensor:
    """``[B, 187, 96]`` musicnn patches -> ``[B, d]`` features of the frozen network's ``layer``."""
    return _extractor(weights, layer)(tf.convert_to_tensor(patches, tf.float32))


def build_musicnn_probe(*, seed: int = 42, probe: str = "logistic", C: float = 1.0) -> Pipeline:
    """The probe on musicnn features: ``StandardScaler -> LogisticRegression(C)`` (multinomial,
    L2) or, with ``probe="svc"``, ``build_svc(C=C)`` (RBF SVC with calibrated probabilities)."""
    if probe not in PROBES:
        raise ConfigError(f"unknown probe {probe!r}; valid: {', '.join(PROBES)}")
    if C <= 0:
        raise ConfigError(f"C must be positive, got {C}")
    if probe == "svc":
        return build_svc(seed=seed, C=C)
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=C, max_iter=PROBE_MAX_ITER, random_state=seed)
    )
