"""Raw audio at a sample rate known only at run time -> 22,050 Hz, inside one graph.

``core.resample`` builds its polyphase kernel in numpy when the graph is traced, one kernel per
(rate_in, rate_out) pair, so a SavedModel cannot resample from a rate it has never seen.  The
served graph therefore holds one branch per rate of ``SUPPORTED_RATES`` (the rates audio files
and devices use) and picks it with ``tf.switch_case``; any other rate fails with a
``tf.debugging`` assertion that lists the supported ones.  Each branch resamples to 22,050 Hz,
the rate ``pipeline.predict`` decodes every file to (``gtzan_tfds.audio_io.read_audio``), and
clips to [-1, 1] as that decoder does; the run's own rate is reached from there by the same
``resample`` call prediction makes.  The seven resampling kernels weigh 3.6 MB (float32), most of
a 4.8 MB export of a small cnn1d.
"""

from __future__ import annotations

import tensorflow as tf

from core.audio import SAMPLE_RATE
from core.resample import resample

SUPPORTED_RATES = (8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)


def unsupported_rate_message() -> str:
    rates = ", ".join(str(r) for r in SUPPORTED_RATES)
    return f"unsupported sample_rate: supported rates are {rates} Hz (resample the audio first)"


def to_decode_rate(audio: tf.Tensor, sample_rate: tf.Tensor) -> tf.Tensor:
    """Mono float32 ``audio`` [n] at ``sample_rate`` (int scalar tensor) -> [m] at 22,050 Hz,
    clipped to [-1, 1] like decoded audio.  InvalidArgumentError for an unsupported rate."""
    rates = tf.constant(SUPPORTED_RATES, tf.int64)
    hits = tf.equal(rates, tf.cast(sample_rate, tf.int64))
    check = tf.debugging.assert_equal(tf.reduce_any(hits), True, message=unsupported_rate_message())
    with tf.control_dependencies([check]):
        index = tf.argmax(tf.cast(hits, tf.int32), output_type=tf.int32)
    branches = [_branch(audio, rate) for rate in SUPPORTED_RATES]
    resampled = tf.switch_case(index, branches)
    resampled.set_shape([None])
    return tf.clip_by_value(resampled, -1.0, 1.0)


def _branch(audio: tf.Tensor, rate: int):
    return lambda: resample(audio, rate, SAMPLE_RATE)
