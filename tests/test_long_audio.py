"""Files of any length (issue 20): the length known before decoding, a decoded-duration limit,
and decoding, resampling, windowing and transforming block by block with the same results as
doing it on the whole file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from core.audio import SAMPLE_RATE
from core.config import PipelineConfig, TransformConfig, WindowConfig
from core.errors import AudioDecodeError, AudioTooLongError
from core.resample import StreamResampler, resample
from gtzan_tfds import audio_io
from pipeline.stream.dataset import features_from_audio, features_from_blocks
from pipeline.stream.windowing import WindowStream, frame_windows

RESAMPLING_TOLERANCE = 1e-6  # max |streamed - whole| for audio in [-1, 1] (measured: 0.0)


def silence_flac(path, seconds: float, sr: int = 44_100, channels: int = 2):
    """The decompression bomb of issue 20, written a minute at a time: ~0.18 KB per second."""
    from pipeline.serving.stress import write_silence_flac

    return write_silence_flac(path, seconds, sr=sr, channels=channels)


def noise(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    x = 0.3 * np.random.default_rng(seed).standard_normal((int(seconds * sr), channels))
    return np.clip(x, -1, 1).astype(np.float32)


# --- the resampler's streaming form ----------------------------------------------------------
@pytest.mark.parametrize("rates", [(44_100, 22_050), (48_000, 22_050), (22_050, 16_000),
                                   (8_000, 22_050), (22_050, 22_050)])
@pytest.mark.parametrize("block", [997])
def test_streamed_resampling_equals_resampling_the_whole_signal(rates, block):
    x = noise(1.3, rates[0])[:, 0]
    whole = resample(tf.constant(x), *rates).numpy()
    stream = StreamResampler(*rates)
    parts = [stream.process(x[i:i + block]) for i in range(0, len(x), block)] + [stream.flush()]
    streamed = np.concatenate(parts)
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() <= RESAMPLING_TOLERANCE


def test_streamed_resampling_of_a_signal_shorter_than_the_filter():
    x = noise(0.001, 44_100)[:, 0]  # 44 samples, the filter reaches ~100 each way
    stream = StreamResampler(44_100, 22_050)
    streamed = np.concatenate([stream.process(x), stream.flush()])
    np.testing.assert_allclose(streamed, resample(tf.constant(x), 44_100, 22_050).numpy(),
                               atol=RESAMPLING_TOLERANCE)


# --- windows and features, block by block ----------------------------------------------------
@pytest.mark.parametrize("window", [WindowConfig(window_seconds=1.0, step_seconds=1.0),
                                    WindowConfig(window_seconds=1.0, step_seconds=0.4, pad_end=True),
                                    WindowConfig(window_seconds=0.5, step_seconds=0.8)])
def test_window_stream_cuts_the_windows_of_frame_windows(window):
    x = noise(4.3, SAMPLE_RATE)[:, 0]
    stream = WindowStream(window, batch_size=3)
    batches = [b for i in range(0, len(x), 5_000) for b in stream.push(x[i:i + 5_000])]
    batches += stream.finish()
    assert max(len(b) for b in batches) <= 3
    np.testing.assert_array_equal(np.concatenate(batches), frame_windows(tf.constant(x), window))


def test_features_from_blocks_equal_features_from_audio_at_another_rate():
    cfg = PipelineConfig(window=WindowConfig(sample_rate=16_000, window_seconds=1.0,
                                             step_seconds=0.5),
                         transform=TransformConfig(name="mel", n_mels=32))
    audio = noise(3.2, SAMPLE_RATE)[:, 0]
    whole = np.concatenate([b.numpy() for b in
                            features_from_audio(audio, cfg, batch_size=4, jit_compile=False)])
    blocks = [audio[i:i + 7_000] for i in range(0, len(audio), 7_000)]
    streamed = np.concatenate([b.numpy() for b in
                               features_from_blocks(blocks, cfg, 4, jit_compile=False)])
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-3)  # dB; same windows, same transform


# --- the decoder: length first, then blocks --------------------------------------------------
def test_the_header_gives_the_length_before_decoding(tmp_path):
    bomb = silence_flac(tmp_path / "bomb.flac", 3 * 3600, sr=8_000, channels=1)
    info = audio_io.audio_info(bomb)
    assert (info.frames, info.samplerate, info.channels) == (3 * 3600 * 8_000, 8_000, 1)
    assert info.seconds == 10_800
    with pytest.raises(AudioTooLongError) as err:
        next(audio_io.stream_audio(bomb, max_seconds=600))
    assert str(err.value) == (f"{bomb}: too long: 3:00:00 (10800 s) of audio, the limit is "
                              "10:00 (600 s)")
    assert isinstance(err.value, AudioDecodeError)


def test_a_format_without_a_reliable_length_is_stopped_at_the_limit(tmp_path):
    path = tmp_path / "long.ogg"
    sf.write(path, noise(30.0, 8_000), 8_000)
    assert audio_io.audio_info(path).frames is None  # Ogg: libsndfile's count is a scan
    decoded = []
    with pytest.raises(AudioTooLongError, match=r"long.ogg: too long: more than 12 s of audio "
                                                r"decoded \(the limit; Ogg states no reliable"):
        for block in audio_io.stream_audio(path, max_seconds=12.0, block_seconds=2.0):
            decoded.append(block)
    assert 10 * SAMPLE_RATE < sum(len(b) for b in decoded) <= 12.5 * SAMPLE_RATE


def test_a_flac_without_its_length_is_stopped_at_the_limit(tmp_path):
    """A FLAC stream whose STREAMINFO says 'total samples unknown' (0), as streaming encoders
    write it: libsndfile reports 2**63-1 frames; decoding stops at the limit."""
    path = tmp_path / "streamed.flac"
    sf.write(path, noise(20.0, 8_000), 8_000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[21] &= 0xF0  # the 36-bit total sample count: low 4 bits of byte 21, bytes 22-25
    data[22:26] = bytes(4)
    path.write_bytes(bytes(data))
    assert audio_io.audio_info(path).frames is None
    with pytest.raises(AudioTooLongError, match="more than 5 s of audio decoded"):
        for _ in audio_io.stream_audio(path, max_seconds=5.0, block_seconds=2.0):
            pass


def test_blocks_are_bounded_and_join_to_read_audio(tmp_path):
    path = tmp_path / "stereo.flac"
    sf.write(path, noise(25.0, 44_100, channels=2), 44_100, subtype="PCM_16")
    blocks = list(audio_io.stream_audio(path, block_seconds=4.0))
    assert max(len(b) for b in blocks) <= 4.01 * SAMPLE_RATE  # a block, + the filter's reach
    whole = audio_io.read_audio(path)
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    # and read_audio is the old whole-file decoder: mean of channels, resample, clip
    x, _ = sf.read(path, dtype="float32")
    expected = resample(tf.constant(x.mean(axis=1)), 44_100, SAMPLE_RATE).numpy()
    np.testing.assert_allclose(whole, np.clip(expected, -1, 1), atol=RESAMPLING_TOLERANCE)
