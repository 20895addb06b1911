"""Parity of the TensorFlow transforms and resampler with librosa, on real and synthetic audio.

Tolerances (float32 TF vs librosa; the measured error is ~10x smaller than each bound):
  log-mel (dB)          max |diff| <= 0.01 dB over every value (clipped floor included;
                        with top_db=None, over the values within 80 dB of the window's peak)
  STFT dB spectrogram   max |diff| <= 0.02 dB
  fft dB spectrum       max |diff| <= 0.02 dB
  MFCC                  max |diff| <= 2e-3 (values reach ~±300), i.e. < 1e-5 relative
  resample vs librosa.resample(res_type="soxr_hq"):
      music             SNR >= 55 dB (measured 63-82 dB)
      white noise       SNR >= 42 dB (measured ~45-47 dB: all the energy near Nyquist)
      in-band tones     max |diff| <= 1e-5 (440 Hz) / 5e-4 (3 kHz) away from the ends,
                        <= 5e-3 overall (soxr treats the first/last ms slightly differently)
Real clips come from ../shared/data/gtzan_sample (skipped when absent).
"""

from __future__ import annotations

import dataclasses
import librosa
import numpy as np
import pytest
import tensorflow as tf

from core.config import PipelineConfig, TransformConfig
from core.errors import ConfigError
from pipeline.benchmark import librosa_reference
from core.resample import resample
from pipeline.stream.transforms import (
    TransformLayer,
    compiled_transform,
    feature_shape,
    feature_shape_for,
    make_transform,
)

SR = 22_050
N = 66_150  # 3 s window
CLIPS = ("jazz/jazz.00002.wav", "metal/metal.00000.wav", "classical/classical.00001.wav")

MEL_DB_TOL = 0.01
STFT_DB_TOL = 0.02
FFT_DB_TOL = 0.02
MFCC_TOL = 2e-3


def _synthetic_windows() -> np.ndarray:
    """Chirp, noise, an impulse train, a quiet sine, and silence: [5, N] float32."""
    t = np.arange(N) / SR
    rng = np.random.default_rng(0)
    chirp = 0.5 * np.sin(2 * np.pi * (50 * t + (8000 - 50) / (2 * t[-1]) * t**2))
    noise = 0.1 * rng.standard_normal(N)
    impulses = np.zeros(N)
    impulses[::4410] = 0.9
    quiet = 1e-4 * np.sin(2 * np.pi * 1000 * t)
    return np.stack([chirp, noise, impulses, quiet, np.zeros(N)]).astype(np.float32)


@pytest.fixture(scope="module")
def real_windows(gtzan_sample_dir) -> np.ndarray:  # skips when ../shared is absent
    import soundfile as sf

    windows = []
    for clip in CLIPS:
        audio, sr = sf.read(gtzan_sample_dir / "genres" / clip, dtype="float32")
        assert sr == SR
        windows += [audio[i * N : (i + 1) * N] for i in (0, 4, 9)]
    return np.stack(windows)


@pytest.fixture(scope="module", params=["synthetic", "real"])
def windows(request) -> np.ndarray:
    if request.param == "real":
        return request.getfixturevalue("real_windows")
    return _synthetic_windows()


# --- librosa references, one window at a time (as the seed study computed them) -------------
def _ref(reference):
    return lambda w, cfg: reference(w, cfg, SR)


_ref_stft_db, _ref_mel_db = _ref(librosa_reference.stft_db), _ref(librosa_reference.mel_db)
_ref_mfcc, _ref_fft_db = _ref(librosa_reference.mfcc), _ref(librosa_reference.fft_db)


def _max_diff(ours: np.ndarray, ref_fn, windows: np.ndarray, cfg) -> float:
    """Largest |ours - librosa| over the windows.

    With ``top_db=None`` nothing is clipped, and values more than 80 dB below a window's
    peak are float32 round-off (both sides); only values within 80 dB are compared then.
    """
    worst = 0.0
    for i in range(len(windows)):
        ref = ref_fn(windows[i], cfg)
        diff = np.abs(ours[i] - ref)
        if cfg.top_db is None and cfg.name != "mfcc":
            diff = diff[ref >= ref.max() - 80.0]
        worst = max(worst, float(np.max(diff)))
    return worst


# --- parity ----------------------------------------------------------------------------------
@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_stft_db_matches_librosa(windows, pad_mode):
    cfg = TransformConfig(name="stft", pad_mode=pad_mode)
    ours = make_transform(cfg, SR)(tf.constant(windows)).numpy()
    assert ours.shape == (len(windows), 130, 1025)
    assert _max_diff(ours, _ref_stft_db, windows, cfg) <= STFT_DB_TOL


def test_log_mel_matches_librosa(windows):
    cfg = TransformConfig(name="mel")
    ours = make_transform(cfg, SR)(tf.constant(windows)).numpy()
    assert ours.shape == (len(windows), 130, 128)
    assert _max_diff(ours, _ref_mel_db, windows, cfg) <= MEL_DB_TOL


def test_mfcc_matches_librosa(windows):
    cfg = TransformConfig(name="mfcc")
    ours = make_transform(cfg, SR)(tf.constant(windows)).numpy()
    assert ours.shape == (len(windows), 130, 20)
    assert _max_diff(ours, _ref_mfcc, windows, cfg) <= MFCC_TOL


def test_fft_spectrum_matches_numpy(windows):
    cfg = TransformConfig(name="fft")
    ours = make_transform(cfg, SR)(tf.constant(windows)).numpy()
    assert ours.shape == (len(windows), N // 2 + 1)
    assert _max_diff(ours, _ref_fft_db, windows, cfg) <= FFT_DB_TOL


@pytest.mark.parametrize(
    "params",
    [
        dict(n_fft=1024, hop_length=256, win_length=800, n_mels=64, fmin=50.0, fmax=8000.0),
        dict(n_fft=512, hop_length=128, n_mels=40, center=False, top_db=None),
        dict(n_fft=2048, hop_length=512, pad_mode="reflect", top_db=60.0, n_mfcc=13),
    ],
)
def test_other_resolutions_match_librosa(params):
    windows = _synthetic_windows()[:, :22_050]  # 1 s is enough here
    mel = TransformConfig(name="mel", **params)
    ours = make_transform(mel, SR)(tf.constant(windows)).numpy()
    assert ours.shape[1:] == feature_shape_for(mel, 22_050)
    assert _max_diff(ours, _ref_mel_db, windows, mel) <= MEL_DB_TOL
    if mel.top_db is not None:  # unclipped values far below the peak are round-off: skip
        mfcc = dataclasses.replace(mel, name="mfcc")
        ours = make_transform(mfcc, SR)(tf.constant(windows)).numpy()
        assert _max_diff(ours, _ref_mfcc, windows, mfcc) <= MFCC_TOL
    stft = dataclasses.replace(mel, name="stft")
    ours = make_transform(stft, SR)(tf.constant(windows)).numpy()
    assert _max_diff(ours, _ref_stft_db, windows, stft) <= STFT_DB_TOL


def test_pad_mode_is_honoured():
    """Zero and reflect padding give different edge frames: each matches its librosa mode."""
    t = np.arange(N) / SR
    w = (0.3 + 0.2 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)[None]  # DC offset
    zero = make_transform(TransformConfig(name="stft", pad_mode="constant", top_db=None), SR)
    refl = make_transform(TransformConfig(name="stft", pad_mode="reflect", top_db=None), SR)
    zero, refl = zero(w).numpy()[0], refl(w).numpy()[0]
    assert np.max(np.abs(zero[0] - refl[0])) > 1.0  # first frame differs by > 1 dB somewhere
    # interior frames see no padding: equal where there is energy (below 500 Hz)
    np.testing.assert_allclose(zero[5:-5, :40], refl[5:-5, :40], atol=STFT_DB_TOL)


def test_silent_windows_give_finite_features():
    silent = tf.zeros([2, N])
    for name in ("raw", "fft", "stft", "mel", "mfcc"):
        out = make_transform(TransformConfig(name=name), SR)(silent).numpy()
        assert np.all(np.isfinite(out)), name
    mel = make_transform(TransformConfig(name="mel"), SR)(silent).numpy()
    np.testing.assert_allclose(mel, -100.0)  # 10 * log10(amin = 1e-10)


def test_top_db_is_per_window():
    """A loud window must not push a quiet one in the same batch to the floor."""
    w = _synthetic_windows()
    mel = make_transform(TransformConfig(name="mel"), SR)
    together = mel(tf.constant(w)).numpy()
    alone = mel(tf.constant(w[3:4])).numpy()  # the quiet sine by itself
    np.testing.assert_allclose(together[3], alone[0], atol=1e-4)


def test_xla_compiled_transform_matches_plain():
    w = tf.constant(_synthetic_windows())
    cfg = TransformConfig(name="mfcc")
    np.testing.assert_allclose(
        compiled_transform(cfg, SR)(w).numpy(), make_transform(cfg, SR)(w).numpy(), atol=MFCC_TOL
    )


@pytest.mark.parametrize("name", ["raw", "fft", "stft", "mel", "mfcc"])
def test_feature_shape_matches_output(name):
    cfg = PipelineConfig()
    cfg.transform.name = name
    out = make_transform(cfg.transform, SR)(tf.zeros([3, cfg.window.window_length]))
    assert tuple(out.shape) == (3,) + feature_shape(cfg)
    assert out.dtype == tf.float32


def test_default_shapes_follow_seed_study():
    cfg = PipelineConfig()
    assert feature_shape(cfg) == (130, 128)  # 1 + 66150 // 512 frames, 128 mels
    cfg.transform.name = "mfcc"
    assert feature_shape(cfg) == (130, 20)


def test_reflect_padding_needs_long_enough_window():
    with pytest.raises(ConfigError, match="reflect"):
        TransformConfig(name="mel", pad_mode="reflect").validate(SR, window_length=1000)


# --- Keras layer -----------------------------------------------------------------------------
def test_transform_layer_serialises_and_matches(tmp_path):
    import keras

    cfg = TransformConfig(name="mel", n_mels=32, n_fft=512, hop_length=256)
    layer = TransformLayer(cfg, SR)
    clone = TransformLayer.from_config(layer.get_config())
    assert clone.transform_cfg == cfg and clone.sample_rate == SR
    inputs = keras.Input(shape=(N,))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(layer(inputs)))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    w = _synthetic_windows()
    expected = make_transform(cfg, SR)(tf.constant(w)).numpy().mean(axis=1)
    np.testing.assert_allclose(loaded.predict(w, verbose=0), expected, atol=1e-3)
    assert layer.compute_output_shape((None, N)) == (None,) + feature_shape_for(cfg, N)


# --- resampling ------------------------------------------------------------------------------
def _snr_db(ref: np.ndarray, x: np.ndarray) -> float:
    assert len(ref) == len(x)
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - x) ** 2)))


def test_resample_is_identity_at_equal_rates():
    x = tf.random.normal([1000])
    assert resample(x, SR, SR) is x


@pytest.mark.parametrize("rate_out", [11_025, 16_000, 8_000, 44_100])
def test_resample_tones_match_librosa(rate_out):
    t = np.arange(2 * SR) / SR
    edge = rate_out // 10
    for freq, tol in ((440.0, 1e-5), (3000.0, 5e-4)):
        y = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        ref = librosa.resample(y, orig_sr=SR, target_sr=rate_out)
        ours = resample(tf.constant(y), SR, rate_out).numpy()
        assert ours.shape == ref.shape
        assert np.max(np.abs(ours - ref)[edge:-edge]) <= tol
        assert np.max(np.abs(ours - ref)) <= 5e-3


def test_resample_removes_what_would_alias():
    t = np.arange(SR) / SR
    y = (0.5 * np.sin(2 * np.pi * 7000 * t)).astype(np.float32)  # above 11,025 Hz's Nyquist
    out = resample(tf.constant(y), SR, 11_025).numpy()
    assert np.sqrt(np.mean(out[500:-500] ** 2)) < 1e-5  # > 90 dB down from 0.35 rms


@pytest.mark.parametrize("rate_out", [11_025, 16_000])
def test_resample_noise_matches_librosa(rate_out):
    y = (0.1 * np.random.default_rng(1).standard_normal(SR)).astype(np.float32)
    ref = librosa.resample(y, orig_sr=SR, target_sr=rate_out)
    assert _snr_db(ref, resample(tf.constant(y), SR, rate_out).numpy()) >= 42.0


@pytest.mark.parametrize("rate_out", [11_025, 16_000])
def test_resample_real_clip_matches_librosa(real_windows, rate_out):
    y = real_windows[:3].reshape(-1)  # 9 s of jazz
    ref = librosa.resample(y, orig_sr=SR, target_sr=rate_out)
    assert _snr_db(ref, resample(tf.constant(y), SR, rate_out).numpy()) >= 55.0


def test_resample_batch_equals_rows():
    x = np.random.default_rng(2).standard_normal((3, 5000)).astype(np.float32)
    batch = resample(tf.constant(x), SR, 16_000).numpy()
    rows = np.stack([resample(tf.constant(r), SR, 16_000).numpy() for r in x])
    np.testing.assert_allclose(batch, rows, atol=1e-6)
    assert resample(tf.zeros([0]), SR, 16_000).shape == (0,)


def test_resample_long_file_has_the_right_length():
    """10 minutes at 320/441: n * up exceeds int32; the length must still be exact."""
    out = resample(tf.zeros([600 * SR]), SR, 16_000)
    assert out.shape == (600 * 16_000,)


# --- the fast STFT layout and the banded mel projection ---------------------------------------
@pytest.mark.parametrize(
    "params",
    [dict(), dict(n_fft=512, hop_length=128, center=False), dict(n_fft=1024, hop_length=300),
     dict(n_fft=2048, hop_length=512, pad_mode="reflect"), dict(n_fft=512, hop_length=512)],
)
def test_phase_grouped_frames_are_tf_signal_frames(params):
    """frame_groups + frames_in_order give exactly tf.signal.frame's tapered frames."""
    from pipeline.stream.transforms import _stft_window, frame_groups, frames_in_order, num_frames

    cfg = TransformConfig(name="stft", **params)
    w = tf.constant(_synthetic_windows()[:, :20_000])
    padded = w
    if cfg.center:
        mode = "REFLECT" if cfg.pad_mode == "reflect" else "CONSTANT"
        padded = tf.pad(w, [[0, 0], [cfg.n_fft // 2] * 2], mode=mode)
    expected = tf.signal.frame(padded, cfg.n_fft, cfg.hop_length) * _stft_window(cfg)
    ours = frames_in_order(frame_groups(w, cfg), num_frames(20_000, cfg))
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours.numpy(), expected.numpy())


def test_banded_mel_projection_equals_the_dense_product():
    from pipeline.stream.transforms import _band_blocks, mel_filterbank, mel_projection

    for cfg in (TransformConfig(), TransformConfig(n_fft=512, n_mels=40, fmin=300.0, fmax=5000.0)):
        weights = mel_filterbank(cfg, SR)
        blocks = _band_blocks(weights)
        assert sum((hi - lo) * (e - s) for lo, hi, s, e in blocks) < weights.size / 2
        power = tf.random.uniform([3, 7, weights.shape[0]]) ** 4
        np.testing.assert_allclose(mel_projection(power, weights).numpy(),
                                   (power @ weights).numpy(), rtol=1e-5, atol=1e-9)


def test_int16_windows_give_the_features_of_their_float_values():
    pcm = (np.random.default_rng(3).standard_normal((2, N)) * 3000).astype(np.int16)
    for name in ("raw", "mel", "mfcc"):
        fn = compiled_transform(TransformConfig(name=name), SR)
        np.testing.assert_allclose(fn(tf.constant(pcm)).numpy(),
                                   fn(tf.constant(pcm.astype(np.float32) / 32768)).numpy(),
                                   atol=1e-4)


def test_dct_matrix_is_scipys_orthonormal_dct():
    import scipy.fft

    from pipeline.stream.transforms import dct_matrix

    x = np.random.default_rng(4).standard_normal((6, 40)).astype(np.float32) * 30
    np.testing.assert_allclose(x @ dct_matrix(40, 13),
                               scipy.fft.dct(x, type=2, norm="ortho")[:, :13], atol=1e-4)
