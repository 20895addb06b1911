"""The window-level part of a run as TFLite: a batch of windows in, probabilities out.

TFLite has no resampler or variable-length windowing worth shipping, so the file covers what a
mobile app runs per window; the app resamples to the run's rate and cuts windows of
``window_length`` samples every ``step_length`` (``gtzan_stream.json`` in the export says
which) and averages the windows' probabilities for the song.

What is tried, first that works (each converted file is run once by the TFLite interpreter,
since some failures only show there, e.g. RFFT2D refusing a non-power-of-two length):

1. raw windows in, the transform inside, TFLite built-in ops only, any batch size;
2. the same for a batch of exactly one window (``"batch": 1``; the app runs window by window):
   Keras 3's LSTM is a while loop whose ``TensorListReserve`` lowers to built-ins only when its
   element shape, batch included, is static;
3. the same with ``SELECT_TF_OPS`` (needs the Flex delegate: ``tensorflow-lite-select-tf-ops``
   on Android/iOS; TF 2.21's Python ``tf.lite.Interpreter`` no longer links it, so here such a
   file fails its trial run and is not chosen);
4. the model's features in (the transform left to the app), in the same order.

Measured with TF 2.21 (``tests/serving/test_tflite.py`` checks it): the stft, mel, mfcc and
musicnn transforms convert to built-ins (mfcc since its DCT became a product with the basis
vectors, without ``tf.signal.dct``'s complex ``StridedSlice``); fft converts only
for power-of-two window lengths (RFFT2D), so fft runs fall back to features in; raw is the
model alone.  cnn1d, cnn2d and encoder_classifier are built-ins at any batch size; lstm is
built-ins for one window at a time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from core.errors import ConfigError
from core import tf_compat
from core.tf_compat import ConverterError
from pipeline.stream.transforms import make_transform

BUILTINS = [tf.lite.OpsSet.TFLITE_BUILTINS]
WITH_FLEX = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]


def window_function(predictor, batch: int | None = None):
    """(tf.function, input TensorSpec) from raw windows [batch, window_length] to probabilities."""
    cfg, model = predictor.pipeline, predictor.model
    transform = (make_transform(cfg.transform, cfg.window.sample_rate)
                 if cfg.transform_placement == "data" else None)

    def classify(windows):
        x = transform(windows) if transform is not None else windows
        return model(x, training=False)

    return tf.function(classify), tf.TensorSpec([batch, cfg.window.window_length], tf.float32)


def feature_function(predictor, batch: int | None = None):
    """(tf.function, input TensorSpec) from the model's features to probabilities, or None."""
    model = predictor.model
    if predictor.pipeline.transform_placement == "model":
        inner = [layer for layer in model.layers if hasattr(layer, "inputs") and layer.inputs]
        if len(inner) != 1:
            return None
        model = inner[0]  # the approach's model after the TransformLayer
    spec = tf.TensorSpec([batch, *model.inputs[0].shape[1:]], tf.float32)
    return tf.function(lambda x: model(x, training=False)), spec


def convert_window_model(predictor, path: os.PathLike | str) -> dict:
    """Write the first variant that converts and runs to ``path``; returns what was written."""
    tf_compat.check_version()
    failures = []
    for kind, make in (("window", window_function), ("features", feature_function)):
        for ops_name, ops, batch in (("builtins", BUILTINS, None), ("builtins", BUILTINS, 1),
                                     ("builtins+select_tf_ops", WITH_FLEX, None)):
            made = make(predictor, batch)
            if made is None:
                break
            fn, spec = made
            label = f"{kind}/{ops_name}" + ("/batch 1" if batch else "")
            try:
                blob = _convert(fn, spec, ops)
                run_tflite(blob, np.zeros([2, *spec.shape[1:]], np.float32))
            except (ConverterError, RuntimeError, ValueError) as e:  # refused, or fails to run
                failures.append(f"{label}: {_first_line(e)}")
                continue
            Path(path).write_bytes(blob)
            return {"file": Path(path).name, "input": kind, "ops": ops_name, "batch": batch,
                    "input_shape": [batch, *spec.shape[1:]], "bytes": len(blob),
                    "not_converted": failures}
    raise ConfigError("the model does not convert to TFLite: " + "; ".join(failures))


def _convert(fn, spec, ops) -> bytes:
    # Without ``trackable_obj`` (TF warns the path is deprecated): given the Keras model, TF
    # 2.17 converts through a temporary SavedModel and aborts the process (C++ abort, measured
    # on the mfcc window model) where this path converts.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(spec)])
    converter.target_spec.supported_ops = ops
    return converter.convert()


def run_tflite(model: bytes | os.PathLike | str, inputs: np.ndarray) -> np.ndarray:
    """Run a TFLite model (bytes or file) on a batch: the batch axis is resized to fit, or, for
    a model made for one window at a time (``"batch": 1``), the windows run one by one."""
    kwargs = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    interpreter = tf.lite.Interpreter(**kwargs)
    entry = interpreter.get_input_details()[0]
    inputs = np.asarray(inputs, np.float32)
    fixed_batch = entry["shape_signature"][0] == 1
    chunks = np.split(inputs, len(inputs)) if fixed_batch else [inputs]
    interpreter.resize_tensor_input(entry["index"], chunks[0].shape)
    interpreter.allocate_tensors()
    outputs = []
    for chunk in chunks:
        interpreter.set_tensor(entry["index"], chunk)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    return np.concatenate(outputs)


def _first_line(error: Exception) -> str:
    """The converter's "error: ..." (its messages start with a source path), else line one."""
    text = str(error)
    start = text.find("error: ")
    line = text[start + len("error: "):] if start >= 0 else text.strip()
    return (line.splitlines()[0] if line else type(error).__name__)[:200]
