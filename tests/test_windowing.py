"""Window counts, contents and padding of pipeline.stream.windowing."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from core.config import WindowConfig
from pipeline.stream.windowing import audio_to_float, frame_windows, num_windows

SR = 22_050


def _song(seconds: float) -> np.ndarray:
    n = int(round(seconds * SR))
    return (np.arange(n) % 30_000).astype(np.int16)  # distinct values: slices are checkable


def test_default_gives_10_windows_per_30s_song():
    cfg = WindowConfig()
    song = _song(30.0)
    windows = frame_windows(tf.constant(song), cfg).numpy()
    assert windows.shape == (10, 66_150)
    assert windows.dtype == np.int16
    for i in range(10):
        np.testing.assert_array_equal(windows[i], song[i * 66_150 : (i + 1) * 66_150])


def test_overlapping_windows():
    cfg = WindowConfig(window_seconds=3.0, step_seconds=1.5)
    song = _song(30.0)
    windows = frame_windows(tf.constant(song), cfg).numpy()
    assert windows.shape == (19, 66_150)  # 1 + (30 - 3) / 1.5
    step = cfg.step_length
    np.testing.assert_array_equal(windows[7], song[7 * step : 7 * step + 66_150])


@pytest.mark.parametrize(
    "seconds, pad_end, expected",
    [
        (31.5, False, 10),  # partial last window dropped
        (31.5, True, 11),  # ... or zero-padded
        (29.98, False, 9),  # a real GTZAN clip a few ms short of 30 s
        (29.98, True, 10),
        (30.0, True, 10),  # nothing to pad: no extra empty window
        (2.0, False, 0),  # shorter than one window: no window, no crash
        (2.0, True, 1),
        (0.0, False, 0),
        (0.0, True, 0),
    ],
)
def test_padding_and_dropping(seconds, pad_end, expected):
    cfg = WindowConfig(pad_end=pad_end)
    song = _song(seconds)
    windows = frame_windows(tf.constant(song), cfg).numpy()
    assert windows.shape == (expected, cfg.window_length)
    assert num_windows(len(song), cfg) == expected
    if pad_end and expected:
        last_start = (expected - 1) * cfg.step_length
        tail = song[last_start:]
        np.testing.assert_array_equal(windows[-1, : len(tail)], tail)
        assert not windows[-1, len(tail) :].any()  # zero padding


def test_padding_overlapping_windows_adds_no_tail_of_padding():
    # tf.signal.frame(pad_end=True) would start windows at 28, 29 s (mostly padding)
    cfg = WindowConfig(window_seconds=3.0, step_seconds=1.0, pad_end=True)
    assert frame_windows(tf.constant(_song(30.0)), cfg).shape[0] == 28  # 0..27 s
    assert frame_windows(tf.constant(_song(30.5)), cfg).shape[0] == 29  # last one padded


@pytest.mark.parametrize("pad_end", [False, True])
@pytest.mark.parametrize("step_seconds", [0.5, 1.0, 1.3])
def test_counts_agree_everywhere(pad_end, step_seconds):
    """Python and tensor num_windows and frame_windows agree, also inside a traced graph."""
    cfg = WindowConfig(window_seconds=1.0, step_seconds=step_seconds, pad_end=pad_end)
    traced = tf.function(lambda a: tf.shape(frame_windows(a, cfg))[0],
                         input_signature=[tf.TensorSpec([None], tf.float32)])
    for n in (0, 1, SR - 1, SR, SR + 1, 3 * SR + 17, 10 * SR):
        expected = num_windows(n, cfg)
        assert int(num_windows(tf.constant(n), cfg)) == expected
        assert int(traced(tf.zeros([n]))) == expected


def test_audio_to_float():
    x = tf.constant([-32768, -16384, 0, 16384, 32767], tf.int16)
    np.testing.assert_allclose(audio_to_float(x).numpy(), [-1.0, -0.5, 0.0, 0.5, 32767 / 32768])
    assert audio_to_float(x).dtype == tf.float32
    f = tf.constant([0.25, -0.5])
    np.testing.assert_array_equal(audio_to_float(f).numpy(), [0.25, -0.5])  # float: unchanged
