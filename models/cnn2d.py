"""2-D CNN on a time-frequency image (stft, mel or mfcc).

Why it exists: the classic approach of the GTZAN literature, treating a spectrogram as an image
whose local time-frequency patterns (onsets, harmonics, timbre) small 3x3 kernels pick up;
global average pooling at the end makes it independent of the number of frames and bins.
"""

from __future__ import annotations

from typing import Sequence

import keras

from models.common import BN_MOMENTUM, as_shape, classifier_head, input_normalization, require_rank


def build_cnn2d(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    blocks: int = 3,
    filters: int = 16,
    kernel_size: int = 3,
    pool_size: int = 2,
    dense_units: int = 64,
    dropout: float = 0.3,
) -> keras.Model:
    """Build the (uncompiled) 2-D CNN.

    Args:
        input_shape: ``(frames, features)``, batch excluded; the channel axis is added here.
        blocks: conv blocks (Conv2D -> BatchNorm -> ReLU -> MaxPool); filters double per block.
        filters: filters of the first block.
        kernel_size, pool_size: square kernel and pooling window of each block.
        dense_units: ReLU units before the softmax (0 = none).
        dropout: rate before (and after) the dense layer.
    """
    shape = as_shape(input_shape)
    require_rank("cnn2d", shape, (2,))

    inputs = keras.Input(shape=shape, name="features")
    x = input_normalization()(inputs)  # per frequency bin / mel band / coefficient
    x = keras.layers.Reshape(shape + (1,), name="add_channel")(x)

    for i in range(blocks):
        x = keras.layers.Conv2D(
            filters * 2**i, kernel_size, padding="same", use_bias=False, name=f"conv_{i}"
        )(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn_{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu_{i}")(x)
        x = keras.layers.MaxPooling2D(pool_size, padding="same", name=f"pool_{i}")(x)

    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = classifier_head(x, num_classes, dense_units, dropout)
    return keras.Model(inputs, outputs, name="cnn2d")
