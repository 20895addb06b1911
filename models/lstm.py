"""Recurrent model over the frames of a time-frequency transform (stft, mel or mfcc).

Why it exists: music unfolds in time; an LSTM reads the window frame by frame and summarises the
sequence, the sequence-model counterpart of the CNNs in the study.
"""

from __future__ import annotations

from typing import Sequence

import keras

from models.common import as_shape, classifier_head, input_normalization, require_rank


def build_lstm(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    units: int = 64,
    layers: int = 1,
    bidirectional: bool = False,
    dense_units: int = 0,
    dropout: float = 0.3,
) -> keras.Model:
    """Build the (uncompiled) LSTM classifier.

    Args:
        input_shape: ``(frames, features)``, batch excluded.
        units: LSTM units per layer (per direction when bidirectional).
        layers: stacked LSTM layers; all but the last return sequences.
        bidirectional: read the frames in both directions.
        dense_units: ReLU units before the softmax (0 = none).
        dropout: rate between the recurrent layers and before the head.  No recurrent dropout, so
            the fast fused (cuDNN) kernel stays usable on a GPU.
    """
    shape = as_shape(input_shape)
    require_rank("lstm", shape, (2,))

    inputs = keras.Input(shape=shape, name="features")
    x = input_normalization()(inputs)  # per frequency bin / mel band / coefficient
    for i in range(layers):
        last = i == layers - 1
        rnn = keras.layers.LSTM(units, return_sequences=not last, name=f"lstm_{i}")
        if bidirectional:
            rnn = keras.layers.Bidirectional(rnn, name=f"bilstm_{i}")
        x = rnn(x)
        if not last and dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)

    outputs = classifier_head(x, num_classes, dense_units, dropout)
    return keras.Model(inputs, outputs, name="lstm")
