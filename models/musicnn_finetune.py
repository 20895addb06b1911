"""The pretrained musicnn network with a new genre head, fine-tuned: ``musicnn_finetune``.

Why it exists: the frozen features of ``models.musicnn_probe`` were learnt for tagging; letting
the top of the network adapt to genre may gain more, at the price of training through it.

Two stages, as Keras' transfer-learning guide does them, run by the generic training code
(``pipeline.experiments.keras_training.fit_keras`` and ``tuning``) through the approach's
``pretrain`` hook:

1. ``build_musicnn_finetune`` returns ``patches -> musicnn (frozen) -> head`` where the head is
   BatchNorm (the features' scales differ widely), dropout, an optional ReLU dense layer,
   dropout, softmax.  The pretrained network is a nested model named ``"musicnn"``.
2. ``train_head_then_unfreeze`` (the ``pretrain`` hook) trains the head alone with the network
   frozen (``head_learning_rate``, the run's ``pretrain_epochs``, best validation epoch kept),
   then unfreezes the top ``unfreeze`` blocks of the network.  The caller then compiles with
   the run's (lower) ``learning_rate`` and fits as usual: head and top blocks fine-tune
   together.  ``unfreeze=0`` keeps the network frozen (the second stage trains the head on).

The network stays in inference mode throughout, as the guide asks.  The guide's recipe, calling
the base with ``training=False``, is done, but in Keras 3 it does not hold under ``fit``: a
functional model passes its own ``training`` flag on to every nested call
(``keras/src/models/functional.py``, ``operation_fn``), overriding the ``False`` recorded with
the node.  So the network's BatchNormalization layers are never unfrozen (a frozen Keras 3
BatchNormalization normalises with its moving statistics and never updates them), and its own
dropout layers get rate 0 (they only act in training, where they would now act).  An unfrozen
block trains its convolution or dense weights.

Blocks, top first, on the path to each feature ``layer`` (layer-name prefixes of
``models.musicnn``): ``max_pool``/``mean_pool``: ``midend_3``, ``midend_2``, ``midend_1``,
``frontend``; ``penultimate`` adds ``backend`` on top.  Frozen layers keep their weights; the
``.keras`` file records which layers are trainable and the ``training=False`` call, and holds
built-in layers only, so ``keras.models.load_model`` needs no custom objects.
"""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import tensorflow as tf

from core.errors import ConfigError
from models.common import BN_MOMENTUM, as_shape, classifier_head, compile_model
from models.musicnn import N_MELS, PATCH_FRAMES, build_musicnn
from models.musicnn_probe import check_layer

BASE_NAME = "musicnn"  # the nested pretrained network inside the classifier
_POOL_BLOCKS = ("midend_3", "midend_2", "midend_1", "frontend")
BLOCKS = {  # feature layer -> blocks on its path, top first
    "max_pool": _POOL_BLOCKS,
    "mean_pool": _POOL_BLOCKS,
    "penultimate": ("backend",) + _POOL_BLOCKS,
}
HEAD_PATIENCE = 4  # epochs without validation improvement before the head stage stops


def build_musicnn_finetune(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    weights: str = "msd",
    layer: str = "max_pool",
    dense_units: int = 0,
    dropout: float = 0.5,
) -> keras.Model:
    """Pretrained musicnn ``weights`` (frozen) -> feature ``layer`` -> new head (uncompiled).

    Args:
        input_shape: must be musicnn's patch, ``(187, 96)`` (the ``"musicnn"`` transform).
        weights: "msd" or "mtt".
        layer: "max_pool", "mean_pool" (753 values) or "penultimate" (200).
        dense_units: ReLU units of the head before the softmax (0 = a linear head).
        dropout: rate in the head.
    """
    shape = as_shape(input_shape)
    if shape != (PATCH_FRAMES, N_MELS):
        raise ConfigError(
            f"musicnn_finetune needs musicnn patches of shape ({PATCH_FRAMES}, {N_MELS}) (the "
            f"musicnn transform), got {shape}"
        )
    check_layer(layer)
    base = build_musicnn(weights, name=BASE_NAME)
    base.trainable = False
    for inner in base.layers:
        if isinstance(inner, keras.layers.Dropout):
            inner.rate = 0.0  # inference behaviour under fit too (see the module docstring)
    patches = keras.Input(shape=shape, name="patches")
    features = base(patches, training=False)[layer]
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="head_norm")(features)
    probabilities = classifier_head(x, num_classes, dense_units, dropout)
    return keras.Model(patches, probabilities, name=f"musicnn_finetune_{weights}_{layer}")


def unfrozen_blocks(layer: str, unfreeze: int) -> tuple[str, ...]:
    """The top ``unfreeze`` blocks on the path of ``layer``; ConfigError if there are fewer."""
    blocks = BLOCKS[layer]
    if not 0 <= unfreeze <= len(blocks):
        raise ConfigError(
            f"unfreeze must be 0..{len(blocks)} for layer {layer} ({', '.join(blocks)}), "
            f"got {unfreeze}"
        )
    return blocks[:unfreeze]


def pretrained_network(model: keras.Model) -> keras.Model:
    """The nested network of a ``build_musicnn_finetune`` model, also inside a wrapping model
    (e.g. behind the pipeline's TransformLayer)."""
    for layer in model.layers:
        if layer.name == BASE_NAME:
            return layer
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            try:
                return pretrained_network(layer)
            except ValueError:
                continue
    raise ValueError(f"{model.name} holds no pretrained network named {BASE_NAME!r}")


def set_trainable_blocks(model: keras.Model, blocks: Sequence[str], layer: str) -> None:
    """Make exactly the layers of ``blocks`` on the path to feature ``layer`` trainable
    (by name prefix), BatchNormalization layers excepted: they stay frozen, hence in
    inference mode.  Layers off the path (the tag logits) stay frozen too."""
    base = pretrained_network(model)
    on_path = {inner.name for inner in keras.Model(base.input, base.output[layer]).layers}
    base.trainable = True  # a nested model's own flag gates all of its layers' weights
    prefixes = tuple(f"{block}_" for block in blocks)
    for inner in base.layers:
        inner.trainable = (bool(prefixes) and inner.name.startswith(prefixes)
                           and inner.name in on_path
                           and not isinstance(inner, keras.layers.BatchNormalization))


def _first_two(x, y, *rest):
    return x, y


def _inputs_and_labels(ds: Optional[tf.data.Dataset]) -> Optional[tf.data.Dataset]:
    """``(x, y)`` of batches that may carry more (a song id): what ``fit`` takes."""
    return None if ds is None else ds.map(_first_two)


def train_head_then_unfreeze(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    val_ds: Optional[tf.data.Dataset] = None,
    *,
    epochs: int,
    callbacks: Optional[list] = None,
    verbose="auto",
    layer: str = "max_pool",
    head_learning_rate: float = 1e-3,
    unfreeze: int = 1,
) -> Optional[keras.callbacks.History]:
    """Stage 1 (the ``pretrain`` hook): fit the head on ``epochs`` epochs with the network
    frozen, keep its best validation epoch, then unfreeze the top ``unfreeze`` blocks.

    ``train_ds``/``val_ds``: batches ``(patches, label[, ...])``.  With ``epochs=0`` (a run
    resumed after a kill) only the blocks are unfrozen.  Compile again afterwards (Keras takes a
    change of ``trainable`` into account at compile time).  Returns the head's History.
    """
    blocks = unfrozen_blocks(layer, unfreeze)
    history = None
    if epochs > 0:
        set_trainable_blocks(model, (), layer)
        compile_model(model, learning_rate=head_learning_rate)
        monitor = "val_accuracy" if val_ds is not None else "accuracy"
        best = keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=HEAD_PATIENCE,
                                             restore_best_weights=True)
        history = model.fit(_inputs_and_labels(train_ds), epochs=epochs, verbose=verbose,
                            validation_data=_inputs_and_labels(val_ds),
                            callbacks=[best, *(callbacks or [])])
    set_trainable_blocks(model, blocks, layer)
    return history
