"""Augmentation of the training stream, inside the tf.data graph: seeded, batched, XLA-friendly.

Why here and not in the models: the same augmentations then serve every Keras approach and
the tuner, they run where the data already is (overlapping the training step), and evaluation
and prediction, which never call these functions, stay exactly as they were.

    random_windows        a song's windows start at uniform random samples (drawn again every
                          epoch) instead of the fixed grid: the model sees the whole song
    random_gain           each window scaled by a uniform random gain in [-g, +g] dB
    mixup                 pairs of windows of a batch mixed (waveforms) with Beta(a, a)
                          weights; the labels become the same mixture of one-hot vectors
    spec_masks            SpecAugment: time and frequency bands of the features set to the
                          window's mean (stft and mel; mfcc: its log-mel, before the DCT)

Every random draw is a stateless op (``tf.random.stateless_*``) of a seed that a
``seed_stream`` pairs with each song or batch: the same ``PipelineConfig.seed`` gives the same
draws, every epoch draws new ones (``Dataset.random(rerandomize_each_iteration=True)``), and
the ops compile with XLA (the Gamma draws of mixup run outside, in plain TF).
"""

from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

from core.config import AugmentConfig, PipelineConfig, WindowConfig
from pipeline.stream.transforms import log_mel_transform, make_transform, mfcc_from_log_mel
from pipeline.stream.windowing import audio_to_float, pad_to_cover

# Independent seed streams of one PipelineConfig.seed
OFFSETS, BLOCK_SHUFFLE, BATCH = 1, 2, 3
MASKED_TRANSFORMS = ("stft", "mel", "mfcc")


def seed_stream(seed: int, stream: int) -> tf.data.Dataset:
    """Endless stateless seeds ``int64[2]``: reproducible from ``seed``, new in every epoch
    (each new iterator re-draws), independent across ``stream`` numbers."""
    return tf.data.Dataset.random(seed=seed * 16 + stream, rerandomize_each_iteration=True).map(
        lambda r: tf.stack([r, tf.constant(stream, tf.int64)])
    )


def _split(seed: tf.Tensor, k: int) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(seed, k)


# --------------------------------------------------------------------------------------------
# per song
def random_windows(audio: tf.Tensor, window_cfg: WindowConfig, seed: tf.Tensor) -> tf.Tensor:
    """As many windows as the fixed grid cuts from ``audio`` (``frame_windows``), each
    starting at a uniform random sample of the (padded) song: ``[count, window_length]``."""
    audio, count = pad_to_cover(audio, window_cfg)
    length = window_cfg.window_length
    last_start = tf.maximum(tf.shape(audio)[0] - length, 0)
    starts = tf.random.stateless_uniform(
        [count], seed, minval=0, maxval=last_start + 1, dtype=tf.int32
    )
    return tf.gather(audio, starts[:, None] + tf.range(length)[None, :])


# --------------------------------------------------------------------------------------------
# per batch: waveforms
def random_gain(windows: tf.Tensor, gain_db: float, seed: tf.Tensor) -> tf.Tensor:
    """Each float window ``[B, N]`` times ``10 ** (g / 20)``, g uniform in [-gain_db, gain_db]."""
    g = tf.random.stateless_uniform([tf.shape(windows)[0], 1], seed, -gain_db, gain_db)
    return windows * tf.pow(10.0, g / 20.0)


def mixup_weights(batch: int, alpha: float, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(lambda [B] ~ Beta(alpha, alpha), partner [B] a random permutation): plain TF (no XLA
    kernel for the Gamma draws)."""
    a = tf.random.stateless_gamma([batch], _split(seed, 0), alpha=alpha)
    b = tf.random.stateless_gamma([batch], _split(seed, 1), alpha=alpha)
    lam = a / tf.maximum(a + b, 1e-12)
    partner = tf.argsort(tf.random.stateless_uniform([batch], _split(seed, 2)))
    return lam, partner


def mix(values: tf.Tensor, lam: tf.Tensor, partner: tf.Tensor) -> tf.Tensor:
    """``lam * v + (1 - lam) * v[partner]`` along the batch axis (waveforms or one-hot labels)."""
    lam = tf.reshape(lam, [-1] + [1] * (values.shape.rank - 1))
    return lam * values + (1.0 - lam) * tf.gather(values, partner)


# --------------------------------------------------------------------------------------------
# per batch: features
def _band_mask(size: int, count: int, widest: int, batch, seed: tf.Tensor) -> tf.Tensor:
    """bool [B, size]: ``count`` bands per row, widths uniform in [0, widest], starts uniform."""
    widest = min(widest, size)
    width = tf.random.stateless_uniform([batch, count, 1], _split(seed, 0), 0, widest + 1, tf.int32)
    start = tf.random.stateless_uniform([batch, count, 1], _split(seed, 1), 0, 2**30, tf.int32)
    start = start % (size - width + 1)
    at = tf.range(size)[None, None, :]
    return tf.reduce_any((at >= start) & (at < start + width), axis=1)


def spec_masks(features: tf.Tensor, aug: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
    """SpecAugment on ``[B, frames, bins]``: ``aug.time_masks`` bands of frames and
    ``aug.freq_masks`` bands of bins set to each window's mean value."""
    batch = tf.shape(features)[0]
    frames, bins = features.shape[1], features.shape[2]
    masked = tf.zeros([batch, frames, bins], tf.bool)
    if aug.time_masks:
        t = _band_mask(frames, aug.time_masks, aug.time_mask_frames, batch, _split(seed, 0))
        masked |= t[:, :, None]
    if aug.freq_masks:
        f = _band_mask(bins, aug.freq_masks, aug.freq_mask_bins, batch, _split(seed, 1))
        masked |= f[:, None, :]
    mean = tf.reduce_mean(features, axis=[1, 2], keepdims=True)
    return tf.where(masked, mean, features)


def masked_transform(cfg: PipelineConfig) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """``(windows, seed) -> features``: the pipeline's transform with SpecAugment masks where
    they belong (after the dB of stft/mel; for mfcc on the log-mel, before the DCT)."""
    t, rate = cfg.transform, cfg.window.sample_rate
    if t.name == "mfcc":
        log_mel = log_mel_transform(t, rate)
        return lambda w, seed: mfcc_from_log_mel(spec_masks(log_mel(w), cfg.augment, seed), t)
    transform = make_transform(t, rate)
    if t.name in MASKED_TRANSFORMS and cfg.augment.masks:
        return lambda w, seed: spec_masks(transform(w), cfg.augment, seed)
    return lambda w, seed: transform(w)


def training_features(
    cfg: PipelineConfig, *, transform: bool
) -> Callable[[tf.Tensor, tf.Tensor, Optional[tuple]], tf.Tensor]:
    """``(windows, seed, mixing) -> features`` of a training batch, augmented as ``cfg.augment``
    says; ``mixing`` is ``mixup_weights``'s output or None.  ``transform=False`` (placement
    "model"): augmented float waveforms, which the model's TransformLayer transforms."""
    aug = cfg.augment
    features = masked_transform(cfg) if transform else None

    def augmented(windows: tf.Tensor, seed: tf.Tensor, mixing=None) -> tf.Tensor:
        x = audio_to_float(windows)
        if aug.gain_db > 0:
            x = random_gain(x, aug.gain_db, _split(seed, 0))
        if mixing is not None:
            x = mix(x, *mixing)
        return x if features is None else features(x, _split(seed, 1))

    return augmented
