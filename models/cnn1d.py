"""1-D CNN: convolutions along one axis, for every transform.

Why it exists: it is the one neural approach that takes all five transforms, so the study can
compare transforms with the architecture held fixed.  On a 2-D transform (frames, features) it
convolves over time with the features as channels (a temporal model of the spectral frame, as in
many music-tagging papers).  On a 1-D input (``raw`` samples, ``fft`` bins) a strided first
convolution (kernel 256, stride 64 by default) turns 66,150 samples into ~1,000 positions, a
learned filter bank that keeps the network affordable on a CPU.
"""

from __future__ import annotations

from typing import Sequence

import keras

from models.common import BN_MOMENTUM, as_shape, classifier_head, input_normalization, require_rank


def build_cnn1d(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    blocks: int = 3,
    filters: int = 16,
    kernel_size: int = 5,
    pool_size: int = 2,
    front_kernel: int = 256,
    front_stride: int = 64,
    dense_units: int = 64,
    dropout: float = 0.3,
) -> keras.Model:
    """Build the (uncompiled) 1-D CNN.

    Args:
        input_shape: ``(frames, features)`` or ``(length,)``, batch excluded.
        blocks: conv blocks (Conv1D -> BatchNorm -> ReLU -> MaxPool); filters double per block.
        filters: filters of the first block (and of the strided front end).
        kernel_size, pool_size: of each block, along time (2-D input) or samples/bins (1-D).
        front_kernel, front_stride: strided front-end convolution, used for 1-D inputs only.
        dense_units: ReLU units before the softmax (0 = none).
        dropout: rate before (and after) the dense layer.
    """
    shape = as_shape(input_shape)
    require_rank("cnn1d", shape, (1, 2))

    inputs = keras.Input(shape=shape, name="features")
    x = inputs
    if len(shape) == 1:  # raw samples or fft bins: one channel, learned strided filter bank
        x = keras.layers.Reshape(shape + (1,), name="add_channel")(x)
    x = input_normalization()(x)
    if len(shape) == 1:
        x = keras.layers.Conv1D(
            filters, front_kernel, strides=front_stride, padding="same", use_bias=False,
            name="front_conv",
        )(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="front_bn")(x)
        x = keras.layers.Activation("relu", name="front_relu")(x)

    for i in range(blocks):
        x = keras.layers.Conv1D(
            filters * 2**i, kernel_size, padding="same", use_bias=False, name=f"conv_{i}"
        )(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn_{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu_{i}")(x)
        x = keras.layers.MaxPooling1D(pool_size, padding="same", name=f"pool_{i}")(x)

    x = keras.layers.GlobalAveragePooling1D(name="global_pool")(x)
    outputs = classifier_head(x, num_classes, dense_units, dropout)
    return keras.Model(inputs, outputs, name="cnn1d")
