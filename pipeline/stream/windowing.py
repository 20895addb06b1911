"""Songs -> fixed-length windows, with TensorFlow ops (usable inside tf.data and in eager code).

A song of ``n`` samples gives windows of ``window_length`` samples starting every
``step_length`` samples (``WindowConfig``; 3 s every 3 s by default: 10 windows from a 30 s
song, overlapping windows when step < window):

* ``pad_end=False`` (default): only whole windows, ``1 + (n - window) // step`` of them; a
  song shorter than one window gives none (an empty ``[0, window_length]`` tensor).
* ``pad_end=True``: enough windows to cover every sample, ``1 + ceil((n - window) / step)``
  (at least 1 for any non-empty song), the last one zero-padded.  Unlike
  ``tf.signal.frame(pad_end=True)``, no window starts after the last one that already
  reaches the end, so overlapping windows do not add a tail of mostly-padding windows.

Note: real GTZAN clips are 29.98-30.37 s, so with 3 s windows and ``pad_end=False`` a few
clips shorter than 30.0 s give 9 windows, not 10.
"""

from __future__ import annotations

import tensorflow as tf

from core.config import WindowConfig

INT16_SCALE = 32768.0


def audio_to_float(audio: tf.Tensor) -> tf.Tensor:
    """int16 PCM -> float32 in [-1, 1) (divided by 32768, as soundfile and librosa do).

    Float input is returned as float32 unchanged, so the function can be applied to audio
    that was already decoded or resampled.
    """
    audio = tf.convert_to_tensor(audio)
    if audio.dtype == tf.int16:
        return tf.cast(audio, tf.float32) / INT16_SCALE
    return tf.cast(audio, tf.float32)


def num_windows(num_samples, window_cfg: WindowConfig):
    """Windows that ``frame_windows`` cuts from ``num_samples`` samples (int or int tensor)."""
    length, step = window_cfg.window_length, window_cfg.step_length
    if isinstance(num_samples, int):
        if window_cfg.pad_end:
            return 0 if num_samples <= 0 else 1 + -(-max(num_samples - length, 0) // step)
        return 0 if num_samples < length else 1 + (num_samples - length) // step
    n = tf.cast(num_samples, tf.int32)
    if window_cfg.pad_end:
        extra = tf.maximum(n - length, 0)
        count = 1 + (extra + step - 1) // step
        return tf.where(n > 0, count, 0)
    return tf.where(n >= length, 1 + (n - length) // step, 0)


def frame_windows(audio: tf.Tensor, window_cfg: WindowConfig) -> tf.Tensor:
    """Cut a song ``[n]`` into windows ``[num_windows, window_length]`` (same dtype as audio).

    Never fails on short or empty audio: it then returns 0 windows (or 1 padded window with
    ``pad_end=True`` and ``n > 0``).
    """
    audio = tf.convert_to_tensor(audio)
    length, step = window_cfg.window_length, window_cfg.step_length
    if window_cfg.pad_end:
        n = tf.shape(audio)[0]
        count = num_windows(n, window_cfg)
        needed = tf.maximum((count - 1) * step + length, 0)
        audio = tf.pad(audio, [[0, tf.maximum(needed - n, 0)]])
        return tf.signal.frame(audio, length, step)[:count]
    # tf.signal.frame without padding returns [0, length] for audio shorter than a window
    return tf.signal.frame(audio, length, step)
