"""gtzan_tfds.audio_io (decoding, bad files) and gtzan_tfds.synthetic_audio (generated songs)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from core.audio import float_to_int16 as to_int16
from core.errors import AudioDecodeError
from gtzan_tfds import audio_io, synthetic_audio
from gtzan_tfds.audio_io import read_audio
from gtzan_tfds.constants import GENRES, SAMPLE_RATE

SR = SAMPLE_RATE


def _tone(seconds=0.5, sr=SR, channels=1, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x, -x * 0.5], axis=1)[:, :channels] if channels > 1 else x


def _wav(path, x, sr=SR, subtype="PCM_16"):
    sf.write(path, x, sr, subtype=subtype)
    return path


# --- decoding ---------------------------------------------------------------------------------
def test_pcm16_wav_roundtrips_exactly(tmp_path):
    ints = (np.arange(-3000, 3000, 7) * 5).astype(np.int16)
    path = tmp_path / "a.wav"
    sf.write(path, ints, SR, subtype="PCM_16")
    x = read_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    np.testing.assert_array_equal(to_int16(x), ints)


def test_au_decodes_like_the_matching_wav(gtzan_au_dir, gtzan_sample_dir):
    au_files = sorted(gtzan_au_dir.glob("*/*.au"))
    assert len(au_files) == len(GENRES)
    for au in au_files:
        genre = au.name.split(".")[0]
        wav = gtzan_sample_dir / "genres" / genre / (au.stem + ".wav")
        a, w = to_int16(read_audio(au)), to_int16(read_audio(wav))
        assert a.dtype == np.int16 and len(a) > 29 * SR
        np.testing.assert_array_equal(a, w, err_msg=str(au))


def test_stereo_is_downmixed_and_other_rates_resampled(tmp_path):
    x = _tone(1.0, sr=44_100, channels=2)  # right = -left/2: the mean is left/4
    path = _wav(tmp_path / "st.flac", x, sr=44_100)
    y = read_audio(path)
    assert y.shape == (SR,)
    expected = read_audio(_wav(tmp_path / "mono.wav", x.mean(axis=1), sr=44_100))
    np.testing.assert_allclose(y, expected, atol=2e-4)
    assert np.array_equal(read_audio(path), y)  # deterministic
    assert read_audio(path, target_sr=16_000).shape == (16_000,)


def test_outside_stereo_ogg_decodes(outside_dir):
    hq = sorted(outside_dir.glob("*.hq.ogg"))
    assert hq, "the shared data has one stereo 44.1 kHz file"
    info = sf.info(hq[0])
    y = read_audio(hq[0])
    assert y.ndim == 1 and y.dtype == np.float32
    assert abs(len(y) - info.frames * SR / info.samplerate) <= 2
    assert np.abs(y).max() <= 1.0


def test_to_int16_rounds_and_clips():
    x = np.array([0.0, 1.0, -1.0, 2.0, -2.0, 0.5, 1 / 32768, 0.49 / 32768], np.float32)
    np.testing.assert_array_equal(
        to_int16(x), np.array([0, 32767, -32768, 32767, -32768, 16384, 1, 0], np.int16)
    )
    ints = np.array([1, -2, 3], np.int16)
    assert to_int16(ints) is ints


# --- bad files --------------------------------------------------------------------------------
@pytest.fixture()
def good_wav(tmp_path):
    return _wav(tmp_path / "good.wav", _tone(1.0))


def _expect_error(path, *words):
    with pytest.raises(AudioDecodeError) as info:
        read_audio(path)
    message = str(info.value)
    assert str(path) in message
    assert info.value.path == str(path)
    for w in words:
        assert w in message, message
    return info.value


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    _expect_error(path, "empty file")


def test_truncated_wav_is_detected_or_decoded_on_request(good_wav, tmp_path):
    data = good_wav.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    err = _expect_error(cut, "truncated", "header declares")
    assert err.reason.startswith("truncated")
    partial = read_audio(cut, allow_truncated=True)  # the samples that are there, no crash
    full = read_audio(good_wav)
    assert 0 < len(partial) < len(full)
    np.testing.assert_array_equal(partial, full[: len(partial)])


def test_header_only_wav_is_truncated(good_wav, tmp_path):
    path = tmp_path / "hdr.wav"
    path.write_bytes(good_wav.read_bytes()[:44])
    _expect_error(path, "truncated")


def test_truncated_au_is_detected(gtzan_au_dir, tmp_path):
    src = sorted(gtzan_au_dir.glob("*/*.au"))[0]
    path = tmp_path / src.name
    path.write_bytes(src.read_bytes()[:200_000])
    _expect_error(path, "truncated")


def test_random_bytes_named_wav(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    _expect_error(path, "not a WAV file")


def test_text_named_au(tmp_path):
    # libsndfile alone would read this as 8 kHz headerless audio.
    path = tmp_path / "notes.au"
    path.write_text("this is a text file, not audio\n")
    _expect_error(path, "not a Sun/NeXT AU file")


def test_wav_without_data_chunk(tmp_path):
    path = tmp_path / "nodata.wav"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    _expect_error(path, "undecodable WAV")


def test_unknown_extension_and_missing_file(tmp_path):
    path = tmp_path / "song.xyz"
    path.write_bytes(b"abc")
    _expect_error(path, "unknown extension", ".wav")
    _expect_error(tmp_path / "missing.wav", "cannot read file")


def test_error_is_a_plain_exception_too():
    e = AudioDecodeError("x.wav: too short")
    assert str(e) == "x.wav: too short" and e.reason == "x.wav: too short"


# --- synthetic audio --------------------------------------------------------------------------
def test_synthetic_song_format_and_determinism():
    a = synthetic_audio.generate_song("jazz", 3, seed=7, clip_seconds=2.0)
    assert a.dtype == np.int16 and a.shape == (2 * SR,)
    assert np.array_equal(a, synthetic_audio.generate_song(5, 3, seed=7, clip_seconds=2.0))
    assert not np.array_equal(a, synthetic_audio.generate_song("jazz", 3, seed=8, clip_seconds=2.0))
    assert not np.array_equal(a, synthetic_audio.generate_song("jazz", 4, seed=7, clip_seconds=2.0))
    assert 1000 < np.abs(a).max() <= 32767
    assert synthetic_audio.song_id("blues", 42) == "blues.00042"
    full = synthetic_audio.generate_song("blues", 0)
    assert full.shape == (int(30 * SR),)


def test_synthetic_genres_differ_in_more_than_one_number():
    """Per-genre medians of simple descriptors are spread out, and songs of a genre vary."""
    def describe(x):
        x = x.astype(np.float32) / 32768
        frames = x[: len(x) // 2048 * 2048].reshape(-1, 2048)
        spec = np.abs(np.fft.rfft(frames, axis=1)).mean(0)
        freqs = np.fft.rfftfreq(2048, 1 / SR)
        centroid = (spec * freqs).sum() / spec.sum()
        zcr = np.mean(np.abs(np.diff(np.sign(x))) > 0)
        env = np.abs(frames).reshape(-1, 512).mean(1)
        flux = np.mean(np.abs(np.diff(env))) / (env.mean() + 1e-9)
        return np.array([centroid, zcr, flux])

    feats = np.array([[describe(synthetic_audio.generate_song(g, i, clip_seconds=4.0))
                       for i in range(3)] for g in GENRES])  # (genre, song, feature)
    medians = np.median(feats, axis=1)
    for j in range(feats.shape[2]):
        assert len(np.unique(np.round(medians[:, j], 6))) == len(GENRES)
        assert np.ptp(medians[:, j]) > 0.1 * np.abs(medians[:, j]).mean()
    within = feats.std(axis=1).mean(axis=0)
    assert (within > 0).all()  # songs of a genre are not copies
    # Distorted, noisy metal crosses zero more often than mellow classical.
    assert medians[GENRES.index("metal"), 1] > medians[GENRES.index("classical"), 1]


def test_synthetic_rejects_bad_arguments():
    with pytest.raises(ValueError):
        synthetic_audio.generate_song(10, 0)
    with pytest.raises(ValueError):
        synthetic_audio.generate_song("blues", -1)
    with pytest.raises(ValueError):
        synthetic_audio.generate_song("blues", 0, clip_seconds=0)


def test_a_rate_the_resampler_refuses_is_a_decode_error(tmp_path):
    # 44,101 Hz -> 22,050 Hz reduces to 22050/44101: core.resample refuses so huge a kernel.
    path = _wav(tmp_path / "odd_rate.wav", _tone(0.1, sr=44_101), sr=44_101)
    _expect_error(path, "cannot resample 44101 Hz")


def test_decoder_resamples_with_the_projects_resampler(tmp_path):
    """One resampler in the project: the decoder's output is core.resample's, to the sample."""
    import tensorflow as tf

    from core.resample import resample

    x = _tone(1.0, sr=44_100)
    path = _wav(tmp_path / "t.wav", x, sr=44_100, subtype="FLOAT")
    expected = resample(tf.constant(x, tf.float32), 44_100, SR).numpy()
    np.testing.assert_allclose(read_audio(path), np.clip(expected, -1, 1), atol=1e-6)


def test_supported_extensions_cover_the_common_formats():
    for ext in (".au", ".wav", ".flac", ".ogg", ".mp3"):
        assert ext in audio_io.SUPPORTED_EXTENSIONS
    assert os.path.splitext("x.WAV")[1].lower() in audio_io.SUPPORTED_EXTENSIONS
