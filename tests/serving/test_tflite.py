"""The TFLite window model computes what the Keras model computes on real windows, and what
converts is what pipeline/serving/tflite.py and docs/export.md say."""

from __future__ import annotations

import numpy as np
import pytest

from core.config import PipelineConfig, TrainConfig, TransformConfig, WindowConfig
from gtzan_tfds.audio_io import read_audio
from pipeline.experiments.predictor import Predictor
from pipeline.serving.exporting import load_keras_run
from pipeline.serving.tflite import convert_window_model, run_tflite
from pipeline.stream.dataset import features_from_audio

# Measured on 20 real GTZAN windows per run: 3.0e-8 (mel/cnn2d) and 8.9e-8 (mfcc/cnn1d), both
# built-ins only; the musicnn probe run (musicnn transform + the 792k-parameter frozen network +
# the probe's Dense layer, built-ins): 1.5e-5, TFLite's own convolution kernels on 12 layers.
TFLITE_TOL = 1e-5
MUSICNN_TFLITE_TOL = 1e-4


def _windows_and_probabilities(predictor, audio):
    """Raw windows of the clip and the Keras probabilities pipeline.predict computes for them."""
    cfg = predictor.pipeline
    windows = np.concatenate([np.asarray(b) for b in
                              features_from_audio(audio, cfg, apply_transform=False)])
    probs = np.concatenate([predictor.predict_batch(x) for x in features_from_audio(audio, cfg)])
    return windows, probs


@pytest.mark.parametrize("run_fixture, ops, tol", [("data_run", "builtins", TFLITE_TOL),
                                                   ("model_run", "builtins", TFLITE_TOL),
                                                   ("musicnn_run", "builtins", MUSICNN_TFLITE_TOL)])
def test_tflite_window_model_matches_keras_on_real_windows(run_fixture, ops, tol, request,
                                                           tmp_path, gtzan_sample_dir):
    predictor = load_keras_run(request.getfixturevalue(run_fixture))  # musicnn: its Keras form
    info = convert_window_model(predictor, tmp_path / "w.tflite")
    assert info["input"] == "window" and info["ops"] == ops
    audio = read_audio(gtzan_sample_dir / "genres" / "rock" / "rock.00002.wav")
    windows, expected = _windows_and_probabilities(predictor, audio)
    got = run_tflite(tmp_path / "w.tflite", windows)
    seconds = predictor.pipeline.window.window_seconds
    assert got.shape == expected.shape == (int(30.0 // seconds), 10)  # 30.0 s of windows
    assert np.abs(got - expected).max() < tol


def _untrained(model: str, transform: str, window_seconds: float = 1.5) -> Predictor:
    import keras

    from pipeline.experiments.keras_training import build_keras_model

    cfg = PipelineConfig(window=WindowConfig(window_seconds=window_seconds),
                         transform=TransformConfig(name=transform))
    keras.utils.set_random_seed(0)
    model_ = build_keras_model(cfg, TrainConfig(model=model), 10)
    return Predictor(model_, "keras", cfg, [f"g{i}" for i in range(10)], TrainConfig(model=model))


@pytest.mark.parametrize("model, transform, window_seconds, expected", [
    ("cnn1d", "raw", 1.5, ("window", "builtins", None)),
    ("cnn1d", "stft", 1.5, ("window", "builtins", None)),
    ("cnn1d", "mfcc", 1.5, ("window", "builtins", None)),  # the DCT as a product
    ("encoder_classifier", "mel", 1.5, ("window", "builtins", None)),
    ("lstm", "mel", 1.5, ("window", "builtins", 1)),  # TensorListReserve: static batch only
    ("cnn1d", "fft", 1.5, ("features", "builtins", None)),  # RFFT2D: 33,075 is no power of 2
    ("cnn1d", "fft", 32768 / 22050, ("window", "builtins", None)),
])
def test_what_converts(model, transform, window_seconds, expected, tmp_path):
    predictor = _untrained(model, transform, window_seconds)
    info = convert_window_model(predictor, tmp_path / "m.tflite")
    assert (info["input"], info["ops"], info["batch"]) == expected, info["not_converted"]
    x = np.random.default_rng(0).standard_normal([3, *info["input_shape"][1:]]).astype(np.float32)
    if info["input"] == "window":
        reference = predictor.model(_features(predictor, x), training=False)
    else:
        reference = predictor.model(x, training=False)
    assert np.abs(run_tflite(tmp_path / "m.tflite", x) - np.asarray(reference)).max() < TFLITE_TOL


def _features(predictor, windows):
    from pipeline.stream.transforms import make_transform

    cfg = predictor.pipeline
    return make_transform(cfg.transform, cfg.window.sample_rate)(windows)
