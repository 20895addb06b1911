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

import numpy as np
import tensorflow as tf

from core.audio import INT16_SCALE
from core.config import WindowConfig


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


def pad_to_cover(audio: tf.Tensor, window_cfg: WindowConfig, *, pad_short: bool = False):
    """(audio, count): the song zero-padded so that its ``count`` windows all fit.

    Only ``pad_end=True`` pads (the last partial window); ``pad_short=True`` also turns a song
    shorter than one window into one zero-padded window (prediction on a short file).
    """
    audio = tf.convert_to_tensor(audio)
    length, step = window_cfg.window_length, window_cfg.step_length
    n = tf.shape(audio)[0]
    count = num_windows(n, window_cfg)
    if pad_short:
        count = tf.where((count == 0) & (n > 0), 1, count)
    if not (window_cfg.pad_end or pad_short):
        return audio, count
    needed = tf.maximum((count - 1) * step + length, 0)
    return tf.pad(audio, [[0, tf.maximum(needed - n, 0)]]), count


def cut_windows(audio: tf.Tensor, first, count, window_cfg: WindowConfig) -> tf.Tensor:
    """Windows ``first .. first+count-1`` of ``audio`` (already padded to cover them):
    ``[count, window_length]``, window ``i`` starting at sample ``i * step_length``.

    The one window cutter: training cuts a whole song at once (``frame_windows``), prediction
    cuts a long file batch by batch (``pipeline.stream.dataset.features_from_audio``).
    """
    length, step = window_cfg.window_length, window_cfg.step_length
    start = first * step
    segment = audio[start : start + tf.maximum(count - 1, 0) * step + length]
    return tf.signal.frame(segment, length, step)[:count]


def frame_windows(audio: tf.Tensor, window_cfg: WindowConfig) -> tf.Tensor:
    """Cut a song ``[n]`` into windows ``[num_windows, window_length]`` (same dtype as audio).

    Never fails on short or empty audio: it then returns 0 windows (or 1 padded window with
    ``pad_end=True`` and ``n > 0``).
    """
    audio, count = pad_to_cover(audio, window_cfg)
    return cut_windows(audio, 0, count, window_cfg)


class WindowStream:
    """``frame_windows`` of a song given block by block, ``batch_size`` windows at a time.

    ``push(block)`` returns the batches of whole windows the samples so far complete;
    ``finish()`` the remaining windows (the last batch may be smaller; with ``pad_end`` the
    last window zero-padded, exactly as ``pad_to_cover``), in the order and with the samples
    of ``frame_windows`` of the whole song.  Kept between calls: less than one batch's span of
    samples, so memory does not grow with the song.
    """

    def __init__(self, window_cfg: WindowConfig, batch_size: int):
        self.cfg = window_cfg
        self.batch_size = int(batch_size)
        self.samples = 0  # samples pushed
        self.windows = 0  # windows returned
        self._buffer = np.zeros(0, np.float32)  # starts at sample windows * step_length
        self._skip = 0  # samples to drop before the buffer (step > window: gaps)

    def push(self, block) -> list:
        block = np.asarray(block, np.float32)
        self.samples += len(block)
        dropped = min(self._skip, len(block))
        self._skip -= dropped
        self._buffer = np.concatenate([self._buffer, block[dropped:]])
        length, step, size = self.cfg.window_length, self.cfg.step_length, self.batch_size
        span = (size - 1) * step + length
        out = []
        while len(self._buffer) >= span:
            out.append(self._cut(size))
        return out

    def finish(self) -> list:
        remaining = num_windows(self.samples, self.cfg) - self.windows
        needed = (remaining - 1) * self.cfg.step_length + self.cfg.window_length
        self._buffer = np.pad(self._buffer, (0, max(needed - len(self._buffer), 0)))
        out = []
        while remaining > 0:
            count = min(self.batch_size, remaining)
            out.append(self._cut(count))
            remaining -= count
        return out

    def _cut(self, count: int) -> tf.Tensor:
        windows = cut_windows(tf.constant(self._buffer), 0, count, self.cfg)
        advance = count * self.cfg.step_length
        self._skip = max(advance - len(self._buffer), 0)
        self._buffer = self._buffer[advance:]
        self.windows += count
        return windows
