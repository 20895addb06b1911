"""Autoencoder features, then a classifier: a frozen convolutional encoder with a small head.

Why it exists: it asks whether features learned without labels (reconstructing the
time-frequency image) are enough for genre, the unsupervised counterpart of the end-to-end CNNs.

Two stages, so that a generic training CLI can run it:

1. ``build_encoder_classifier`` returns the classifier: ``features -> encoder -> head``, where
   ``encoder`` is a nested ``keras.Model`` (named ``"encoder"``) that starts with an adaptable
   ``Normalization`` layer.
2. ``pretrain(model, train_ds, val_ds, epochs=...)`` adapts that normalisation on the training
   features, builds a decoder mirroring the encoder, trains ``encoder -> decoder`` to reconstruct
   the normalised input (mean squared error), and then freezes the encoder.  The CLI then
   compiles and fits ``model`` as usual: only the head learns.  The decoder is thrown away; it is
   not part of the saved classifier.

The frozen state is stored in the ``.keras`` file (each layer's config carries ``trainable``),
and a frozen BatchNormalization runs in inference mode, so neither weights nor moving statistics
of the encoder change when a loaded model is trained further.

Here the input normalisation is an adapted ``Normalization`` rather than the BatchNormalization
the other models use: the reconstruction target is the normalised input, and it must not move
while the autoencoder learns.
"""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import tensorflow as tf

from models.common import BN_MOMENTUM, as_shape, classifier_head, require_rank


def build_encoder_classifier(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    blocks: int = 3,
    filters: int = 16,
    kernel_size: int = 3,
    latent_channels: int = 8,
    dense_units: int = 64,
    dropout: float = 0.3,
) -> keras.Model:
    """Build the (uncompiled) classifier whose encoder ``pretrain`` trains and freezes.

    Args:
        input_shape: ``(frames, features)``, batch excluded.
        blocks: encoder conv blocks (Conv2D -> BatchNorm -> ReLU -> MaxPool 2x2); filters double
            per block.  The input is zero-padded to a multiple of ``2**blocks`` on both axes.
        filters: filters of the first block.
        kernel_size: square kernel of each conv.
        latent_channels: channels of the 1x1 bottleneck conv; the code has
            ``ceil(frames/2**blocks) * ceil(features/2**blocks) * latent_channels`` values.
        dense_units: ReLU units of the head before the softmax (0 = none).
        dropout: rate in the head.
    """
    shape = as_shape(input_shape)
    require_rank("encoder_classifier", shape, (2,))
    frames, features = shape
    factor = 2**blocks
    pad_t, pad_f = -frames % factor, -features % factor

    # --- encoder: features -> latent map (frames/2**blocks, features/2**blocks, latent) ------
    enc_in = keras.Input(shape=shape, name="features")
    x = keras.layers.Normalization(axis=-1, name="input_norm")(enc_in)  # adapted by pretrain
    x = keras.layers.Reshape(shape + (1,), name="add_channel")(x)
    x = keras.layers.ZeroPadding2D(((0, pad_t), (0, pad_f)), name="pad")(x)
    for i in range(blocks):
        x = keras.layers.Conv2D(
            filters * 2**i, kernel_size, padding="same", use_bias=False, name=f"enc_conv_{i}"
        )(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"enc_bn_{i}")(x)
        x = keras.layers.Activation("relu", name=f"enc_relu_{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc_pool_{i}")(x)
    latent = keras.layers.Conv2D(latent_channels, 1, name="bottleneck")(x)
    encoder = keras.Model(enc_in, latent, name="encoder")

    # --- classifier: pool the code over time, keep its frequency layout ----------------------
    inputs = keras.Input(shape=shape, name="features")
    z = encoder(inputs)
    t, f, c = z.shape[1:]
    z = keras.layers.Reshape((t, f * c), name="code_frames")(z)
    z = keras.layers.Concatenate(name="code_stats")(
        [
            keras.layers.GlobalAveragePooling1D(name="code_mean")(z),
            keras.layers.GlobalMaxPooling1D(name="code_max")(z),
        ]
    )
    outputs = classifier_head(z, num_classes, dense_units, dropout)
    return keras.Model(inputs, outputs, name="encoder_classifier")


def build_decoder(encoder: keras.Model) -> keras.Model:
    """A decoder mirroring ``encoder``: latent map -> normalised features (frames, features).

    Read from the encoder's layers (block filters, kernel size, padding) so that ``pretrain``
    needs nothing but the classifier.
    """
    frames, features = encoder.input.shape[1:]
    convs = [layer for layer in encoder.layers if layer.name.startswith("enc_conv_")]
    (_, pad_t), (_, pad_f) = encoder.get_layer("pad").padding  # zeros added at the end

    dec_in = keras.Input(shape=encoder.output.shape[1:], name="code")
    x = dec_in
    for i, conv in reversed(list(enumerate(convs))):
        x = keras.layers.UpSampling2D(2, name=f"dec_up_{i}")(x)
        x = keras.layers.Conv2D(
            conv.filters, conv.kernel_size, padding="same", use_bias=False, name=f"dec_conv_{i}"
        )(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dec_bn_{i}")(x)
        x = keras.layers.Activation("relu", name=f"dec_relu_{i}")(x)
    x = keras.layers.Conv2D(1, convs[0].kernel_size, padding="same", name="dec_out")(x)
    x = keras.layers.Cropping2D(((0, pad_t), (0, pad_f)), name="crop")(x)
    outputs = keras.layers.Reshape((frames, features), name="reconstruction")(x)
    return keras.Model(dec_in, outputs, name="decoder")


def _features_only(ds: tf.data.Dataset) -> tf.data.Dataset:
    """(features, label[, weight]) batches -> features batches; features batches pass through."""
    if isinstance(ds.element_spec, tuple):
        return ds.map(lambda *element: element[0])
    return ds


def _locate_encoder(model: keras.Model) -> tuple[keras.Model, Optional[keras.Model]]:
    """The frozen-to-be encoder of ``model``, and the ``front`` that computes its features.

    ``model`` is the classifier from ``build_encoder_classifier`` (``front`` is None), or a
    chain that wraps it, e.g. ``raw -> TransformLayer -> classifier`` when the pipeline places
    the transform in the model; ``front`` is then the chain up to the layer that feeds the
    classifier (the one before it in the wrapper's topological order).
    """
    names = [layer.name for layer in model.layers]
    if "encoder" in names:
        return model.get_layer("encoder"), None
    for i, layer in enumerate(model.layers):
        if isinstance(layer, keras.Model) and "encoder" in [sub.name for sub in layer.layers]:
            feeding = model.layers[i - 1].output if i > 0 else None
            if feeding is None or tuple(feeding.shape[1:]) != tuple(layer.input.shape[1:]):
                break
            return layer.get_layer("encoder"), keras.Model(model.inputs, feeding, name="front")
    raise ValueError(f"model {model.name!r} has no encoder: build it with build_encoder_classifier "
                     "(directly, or as the last link of a chain of layers)")


def pretrain(
    model: keras.Model,
    train_features_ds: tf.data.Dataset,
    val_features_ds: Optional[tf.data.Dataset] = None,
    *,
    epochs: int,
    callbacks: Optional[list] = None,
    verbose="auto",
    learning_rate: float = 1e-3,
    adapt_steps: Optional[int] = None,
) -> keras.callbacks.History:
    """Train ``model``'s encoder as an autoencoder, then freeze it.

    Args:
        model: from ``build_encoder_classifier``, or a model wrapping it (e.g. behind a
            transform layer).  Call ``compile_model`` after this; a model that is already
            compiled is recompiled with its own compile config, since Keras only honours a
            change of ``trainable`` at compile time.
        train_features_ds, val_features_ds: batched datasets of ``model``'s inputs or of
            ``(inputs, label[, ...])``, as given to ``fit``; labels are ignored.
        epochs, callbacks, verbose: for the autoencoder's ``fit`` (callbacks see the
            autoencoder, e.g. ``EarlyStopping(monitor="val_loss")``).
        learning_rate: Adam's, for the autoencoder.
        adapt_steps: batches used to adapt the input normalisation (None = one full pass; it
            is adapted even with ``epochs=0``).

    Returns:
        The autoencoder's ``History`` (``loss`` = reconstruction MSE on normalised features;
        predicting all zeros scores about 1).  ``history.model`` is the autoencoder.
    """
    encoder, front = _locate_encoder(model)
    norm = encoder.get_layer("input_norm")

    def features(ds):  # what the encoder sees: the wrapper's front (if any) runs in tf.data
        ds = _features_only(ds)
        return ds if front is None else ds.map(lambda x: front(x, training=False))

    train_x = features(train_features_ds)
    norm.adapt(train_x if adapt_steps is None else train_x.take(adapt_steps))

    def with_target(x):  # reconstruct the normalised input; ``norm`` is fixed from here on
        return x, norm(x)

    autoencoder = _autoencoder(encoder, learning_rate)
    encoder.trainable = True
    history = autoencoder.fit(
        train_x.map(with_target),
        validation_data=None if val_features_ds is None else features(val_features_ds).map(with_target),
        epochs=epochs, callbacks=callbacks, verbose=verbose,
        shuffle=False,  # a tf.data pipeline shuffles itself; Keras would only warn
    )
    encoder.trainable = False
    if model.compiled:
        model.compile_from_config(model.get_compile_config())
    return history


def _autoencoder(encoder: keras.Model, learning_rate: float) -> keras.Model:
    """encoder -> mirrored decoder, compiled for reconstruction (mean squared error)."""
    ae_in = keras.Input(shape=encoder.input.shape[1:], name="features")
    autoencoder = keras.Model(ae_in, build_decoder(encoder)(encoder(ae_in)), name="autoencoder")
    autoencoder.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return autoencoder
