"""The pretrained musicnn networks (Pons & Serra 2019) as Keras 3 functional models.

Why it exists: musicnn's tagging networks, trained on the Million Song Dataset (``"msd"``)
and MagnaTagATune (``"mtt"``), give music features that transfer to genre classification;
the original is TF1 code that Keras 3 cannot run.  This port rebuilds the graphs with
built-in Keras layers and loads the original checkpoints from the ``musicnn`` wheel
(``models.musicnn_checkpoint``); ``tests/test_musicnn.py`` checks it against the original TF1
graphs.

API::

    model = build_musicnn("msd")             # or "mtt"; load_weights=False: random init
    out = model(patches, training=False)     # patches [B, 187, 96]: the "musicnn" transform
    out["tags"]         # [B, 50] sigmoid tag probabilities, names: tag_names("msd")
    out["penultimate"]  # [B, 200] the BatchNorm after the 200-unit dense layer
    out["mean_pool"]    # [B, 753] mean over time of the mid-end features
    out["max_pool"]     # [B, 753] max over time of the mid-end features
    vgg = build_vgg("msd_vgg")               # or "mtt_vgg": outputs tags, pool1 ... pool5

    # a genre classifier on the max_pool features, only the last mid-end block fine-tuned
    head = keras.layers.Dense(10, activation="softmax")(model.output["max_pool"])
    classifier = keras.Model(model.input, head)
    for layer in model.layers:
        layer.trainable = layer.name.startswith("midend_3")

(A frozen BatchNorm runs in inference mode in Keras 3, so frozen blocks keep their
statistics.)  Constants: ``WEIGHTS``, ``VGG_WEIGHTS``, ``NUM_TAGS``, and the input's
``PATCH_FRAMES``, ``N_MELS``, ``SAMPLE_RATE``, ``N_FFT``, ``HOP_LENGTH`` (from
``core.musicnn_input``); ``checkpoint_dir(weights)`` and ``tag_names(weights)`` come from
``models.musicnn_checkpoint``.

The input is musicnn's log-mel patch, ``log10(10000 * mel + 1)`` of 187 frames x 96 bands at
16 kHz (``core.musicnn_input``, computed by ``pipeline.stream.transforms`` as transform
``"musicnn"``); the networks normalise it themselves (their first layer is a BatchNorm).

Architecture of ``build_musicnn`` (layer names in brackets; prefixes ``frontend_``,
``midend_1`` ... ``midend_3``, ``backend_`` so that a fine-tune can unfreeze the top blocks by
name):

- front end [``frontend_*``]: BatchNorm of the input; timbral convolutions, 204 filters of
  7 x 38 and 7 x 67 (time x mel; the input padded 3 frames each side in time, ``valid``);
  temporal convolutions, 51 filters each of 128 x 1, 64 x 1, 32 x 1 (``same``); each ReLU,
  BatchNorm, then max over the whole frequency axis: 5 x ``[B, 187, C]``, 561 channels.
- mid end [``midend_k_*``]: three 7-frame convolutions over time, 64 filters, ReLU,
  BatchNorm; the 2nd and 3rd add their input (residual).  Features: the front end and the
  three outputs concatenated, 753 channels per frame.
- back end [``backend_*``]: max and mean over time (``max_pool``, ``mean_pool``),
  interleaved ``[max_0, mean_0, max_1, ...]`` as the original flattens them (1506), BatchNorm,
  dropout 0.5, dense 200 ReLU, BatchNorm (``penultimate``), dropout 0.5, dense 50
  (``backend_logits``), sigmoid (``tags``).

BatchNorms use TF1's epsilon 1e-3 and momentum 0.99; dropout acts only when
``training=True``.  Built-in layers only, so ``model.save("x.keras")`` and
``keras.models.load_model`` need no custom objects.
"""

from __future__ import annotations

from typing import Optional

import keras

from core.errors import ConfigError
from core.musicnn_input import HOP_LENGTH, N_FFT, N_MELS, PATCH_FRAMES, SAMPLE_RATE
from models.musicnn_checkpoint import assign_checkpoint, checkpoint_dir, tag_names

__all__ = [
    "HOP_LENGTH", "N_FFT", "N_MELS", "NUM_TAGS", "PATCH_FRAMES", "SAMPLE_RATE", "VGG_WEIGHTS",
    "WEIGHTS", "build_musicnn", "build_vgg", "checkpoint_dir", "load_checkpoint_weights",
    "tag_names",
]

WEIGHTS = ("msd", "mtt")  # musicnn networks
VGG_WEIGHTS = ("msd_vgg", "mtt_vgg")  # the VGG-like baselines shipped with them
NUM_TAGS = 50
TIMBRAL = ((38, 204), (67, 204))  # (mel bands, filters) of the 7-frame timbral convolutions
TEMPORAL = ((128, 51), (64, 51), (32, 51))  # (frames, filters) of the temporal convolutions
MIDEND_FILTERS = 64
BACKEND_UNITS = 200
_BN = dict(epsilon=1e-3, momentum=0.99)  # TF1 tf.layers.batch_normalization defaults

# Keras layer -> TF1 variable scope (tf.compat.v1.layers names them in creation order).
MUSICNN_SCOPES = {
    "frontend_input_bn": "batch_normalization",
    "frontend_timbral_38": "conv2d",
    "frontend_timbral_38_bn": "batch_normalization_1",
    "frontend_timbral_67": "conv2d_1",
    "frontend_timbral_67_bn": "batch_normalization_2",
    "frontend_temporal_128": "conv2d_2",
    "frontend_temporal_128_bn": "batch_normalization_3",
    "frontend_temporal_64": "conv2d_3",
    "frontend_temporal_64_bn": "batch_normalization_4",
    "frontend_temporal_32": "conv2d_4",
    "frontend_temporal_32_bn": "batch_normalization_5",
    "midend_1_conv": "conv2d_5",
    "midend_1_bn": "batch_normalization_6",
    "midend_2_conv": "conv2d_6",
    "midend_2_bn": "batch_normalization_7",
    "midend_3_conv": "conv2d_7",
    "midend_3_bn": "batch_normalization_8",
    "backend_pool_bn": "batch_normalization_9",
    "backend_dense": "dense",
    "backend_dense_bn": "batch_normalization_10",
    "backend_logits": "dense_1",
}
VGG_SCOPES = {
    "input_bn": "batch_normalization",
    **{f"block_{k}_conv": f"{k}CNN" for k in range(1, 6)},
    **{f"block_{k}_bn": f"batch_normalization_{k}" for k in range(1, 6)},
    "backend_logits": "dense",
}
# VGG max pooling after each block, (pool size, strides) in time x mel, as in the graphs saved
# with the checkpoints (the .meta files).  The wheel's models.py has MTT_vgg's pooling for both;
# MSD_vgg's saved graph pools as below (the flattened size is the same, 256, so the wheel's
# extractor runs MSD_vgg with MTT_vgg's pooling without an error).
_VGG_TAIL = (((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))
VGG_POOLS = {
    "msd_vgg": (((4, 1), (4, 1)), ((1, 4), (1, 4))) + _VGG_TAIL,
    "mtt_vgg": (((4, 1), (2, 2)), ((2, 2), (2, 2))) + _VGG_TAIL,
}
VGG_FILTERS = 128


def _check_weights(weights: str, valid: tuple[str, ...]) -> None:
    if weights not in valid:
        raise ConfigError(f"unknown weights {weights!r}; valid: {', '.join(valid)}")


def _batch_norm(name: str) -> keras.layers.Layer:
    return keras.layers.BatchNormalization(axis=-1, name=name, **_BN)


def _conv_bn_freq_max(x, filters: int, kernel: tuple[int, int], padding: str, name: str):
    """Conv2D + ReLU, BatchNorm, max over the whole frequency axis: [B, T, F, 1] -> [B, T, C]."""
    x = keras.layers.Conv2D(filters, kernel, padding=padding, activation="relu", name=name)(x)
    x = _batch_norm(f"{name}_bn")(x)
    x = keras.layers.MaxPooling2D((1, x.shape[2]), name=f"{name}_freq_max")(x)
    return keras.layers.Reshape((-1, filters), name=f"{name}_squeeze")(x)


def _frontend(patches):
    """The musically motivated front end: [B, 187, 96] -> [B, 187, 561]."""
    x = keras.layers.Reshape(tuple(patches.shape[1:]) + (1,), name="frontend_add_channel")(patches)
    x = _batch_norm("frontend_input_bn")(x)
    padded = keras.layers.ZeroPadding2D(((3, 3), (0, 0)), name="frontend_time_pad")(x)
    maps = [
        _conv_bn_freq_max(padded, filters, (7, width), "valid", f"frontend_timbral_{width}")
        for width, filters in TIMBRAL
    ]
    maps += [
        _conv_bn_freq_max(x, filters, (frames, 1), "same", f"frontend_temporal_{frames}")
        for frames, filters in TEMPORAL
    ]
    return keras.layers.Concatenate(axis=-1, name="frontend_features")(maps)


def _midend(frontend):
    """Three 7-frame convolutions over time, the 2nd and 3rd residual: -> [B, 187, 753]."""
    features, x = [frontend], frontend
    for k in (1, 2, 3):
        y = keras.layers.Conv1D(
            MIDEND_FILTERS, 7, padding="same", activation="relu", name=f"midend_{k}_conv"
        )(x)
        y = _batch_norm(f"midend_{k}_bn")(y)
        x = y if k == 1 else keras.layers.Add(name=f"midend_{k}_residual")([y, x])
        features.append(x)
    return keras.layers.Concatenate(axis=-1, name="midend_features")(features)


def _backend(features):
    """Temporal pooling and the dense layers: -> (logits, penultimate, mean_pool, max_pool)."""
    channels = features.shape[-1]
    max_pool = keras.layers.GlobalMaxPooling1D(name="max_pool")(features)
    mean_pool = keras.layers.GlobalAveragePooling1D(name="mean_pool")(features)
    # the original concatenates [B, 753, 1] max and mean on the last axis, then flattens
    pair = [keras.layers.Reshape((channels, 1), name=f"backend_{n}_column")(p)
            for n, p in (("max", max_pool), ("mean", mean_pool))]
    x = keras.layers.Concatenate(axis=-1, name="backend_pool_pairs")(pair)
    x = keras.layers.Flatten(name="backend_interleave")(x)
    x = _batch_norm("backend_pool_bn")(x)
    x = keras.layers.Dropout(0.5, name="backend_pool_dropout")(x)
    x = keras.layers.Dense(BACKEND_UNITS, activation="relu", name="backend_dense")(x)
    penultimate = _batch_norm("backend_dense_bn")(x)
    x = keras.layers.Dropout(0.5, name="backend_dense_dropout")(penultimate)
    logits = keras.layers.Dense(NUM_TAGS, name="backend_logits")(x)
    return logits, penultimate, mean_pool, max_pool


def build_musicnn(
    weights: str = "msd", *, load_weights: bool = True, name: Optional[str] = None
) -> keras.Model:
    """MSD_musicnn (``"msd"``) or MTT_musicnn (``"mtt"``): [B, 187, 96] patches -> dict of
    ``tags`` [B, 50], ``penultimate`` [B, 200], ``mean_pool`` and ``max_pool`` [B, 753].

    ``load_weights=False`` leaves Keras' random initialisation (no wheel needed).
    ``name`` defaults to ``"musicnn_<weights>"``.
    """
    _check_weights(weights, WEIGHTS)
    patches = keras.Input(shape=(PATCH_FRAMES, N_MELS), name="patches")
    logits, penultimate, mean_pool, max_pool = _backend(_midend(_frontend(patches)))
    tags = keras.layers.Activation("sigmoid", name="tags")(logits)
    outputs = {"tags": tags, "penultimate": penultimate, "mean_pool": mean_pool,
               "max_pool": max_pool}
    model = keras.Model(patches, outputs, name=name or f"musicnn_{weights}")
    if load_weights:
        load_checkpoint_weights(model, weights)
    return model


def build_vgg(
    weights: str = "msd_vgg", *, load_weights: bool = True, name: Optional[str] = None
) -> keras.Model:
    """MSD_vgg (``"msd_vgg"``) or MTT_vgg (``"mtt_vgg"``): [B, 187, 96] patches -> dict of
    ``tags`` [B, 50] and ``pool1`` ... ``pool5``, the max-pooled maps of the five blocks
    (``[B, time, mel, 128]``, down to ``[B, 2, 1, 128]``), as musicnn's extractor names them.

    Input BatchNorm, then five blocks of Conv2D 128 3 x 3 ``same`` ReLU, BatchNorm, max
    pooling (``VGG_POOLS[weights]``: the two checkpoints differ); blocks 2-5 start with
    dropout 0.25; flatten (256), dropout 0.5, dense 50 (``backend_logits``), sigmoid.
    Layers: ``input_bn``, ``block_<k>_*``, ``pool<k>``, ``backend_*``, ``tags``.
    """
    _check_weights(weights, VGG_WEIGHTS)
    patches = keras.Input(shape=(PATCH_FRAMES, N_MELS), name="patches")
    x = keras.layers.Reshape((PATCH_FRAMES, N_MELS, 1), name="add_channel")(patches)
    x = _batch_norm("input_bn")(x)
    outputs = {}
    for k, (pool, strides) in enumerate(VGG_POOLS[weights], start=1):
        if k > 1:
            x = keras.layers.Dropout(0.25, name=f"block_{k}_dropout")(x)
        x = keras.layers.Conv2D(
            VGG_FILTERS, 3, padding="same", activation="relu", name=f"block_{k}_conv"
        )(x)
        x = _batch_norm(f"block_{k}_bn")(x)
        x = outputs[f"pool{k}"] = keras.layers.MaxPooling2D(pool, strides, name=f"pool{k}")(x)
    x = keras.layers.Flatten(name="backend_flatten")(x)
    x = keras.layers.Dropout(0.5, name="backend_dropout")(x)
    logits = keras.layers.Dense(NUM_TAGS, name="backend_logits")(x)
    outputs = {"tags": keras.layers.Activation("sigmoid", name="tags")(logits), **outputs}
    model = keras.Model(patches, outputs, name=name or weights)
    if load_weights:
        load_checkpoint_weights(model, weights)
    return model


def load_checkpoint_weights(model: keras.Model, weights: str) -> keras.Model:
    """Load checkpoint ``weights`` (``WEIGHTS`` or ``VGG_WEIGHTS``) into a model built by
    ``build_musicnn``/``build_vgg``; returns the model.

    Every model variable gets its checkpoint tensor, and every non-optimizer tensor of the
    checkpoint must be used exactly once: otherwise ValueError naming the tensors (a bug or a
    damaged install).  WeightsNotFoundError when the ``musicnn`` wheel is not installed.
    """
    _check_weights(weights, WEIGHTS + VGG_WEIGHTS)
    scopes = VGG_SCOPES if weights in VGG_WEIGHTS else MUSICNN_SCOPES
    assign_checkpoint(model, f"{checkpoint_dir(weights)}/", scopes)
    return model

