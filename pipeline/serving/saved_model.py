"""The served graph: raw mono audio and its sample rate in, genre probabilities out.

``GenreModule`` wraps a trained Keras model with everything ``pipeline.predict`` does around it,
traced from the very functions training and prediction use (never a copy):

    audio [n] float32, sample_rate int32 scalar
      -> input_rates.to_decode_rate      (supported rate -> 22,050 Hz, clipped; as decoding)
      -> core.resample.resample          (22,050 Hz -> the run's rate, as features_from_audio)
      -> windowing.pad_to_cover / cut_windows   (the one window cutter), a batch at a time
      -> transforms.make_transform       (placement "data"; with "model" the Keras model's own
                                          TransformLayer computes the features)
      -> the Keras model                 -> window probabilities [k, C]
      -> mean over windows               (metrics.mean_probability_vote) -> song probabilities

Batches of ``batch_size`` windows are cut and classified one after the other (``tf.map_fn``,
one iteration in flight), as ``features_from_audio`` streams them, so a long file costs the
audio plus one batch of features.  Audio too short for one window is refused with an
InvalidArgumentError saying "too short", as ``pipeline.predict`` refuses such a file: a genre
read from a zero-padded fragment would be a guess the caller did not ask for (a caller who
wants it pads the audio).  NaN/inf samples are refused as the decoder refuses them.  The input
limit: the graph holds the whole input (resampled at once), so audio longer than
``max_input_seconds`` (``core.config.EXPORT_MAX_INPUT_SECONDS``, 10 min, stated in the metadata)
is refused with an InvalidArgumentError saying "too long"; ``pipeline.predict`` streams any
length.

Signatures: ``serving_default(audio, sample_rate)`` -> ``window_probabilities`` [k, C],
``probabilities`` [C], ``genre`` (string), ``class_names`` [C], ``window_starts`` [k] (seconds);
``classify_windows(windows)``: the model's own input batch -> probabilities [B, C] (what the
TFLite file computes).  ``module.metadata`` is a JSON string: run config, rates, window length.
"""

from __future__ import annotations

import json

import tensorflow as tf

from core.audio import SAMPLE_RATE
from core.config import EXPORT_MAX_INPUT_SECONDS, PipelineConfig
from core.resample import resample
from pipeline.serving.input_rates import to_decode_rate
from pipeline.stream.transforms import make_transform
from pipeline.stream.windowing import cut_windows, pad_to_cover

AUDIO_SPEC = tf.TensorSpec([None], tf.float32, name="audio")
RATE_SPEC = tf.TensorSpec([], tf.int32, name="sample_rate")


class GenreModule(tf.Module):
    """A Keras window classifier plus the pipeline around it, ready for ``tf.saved_model.save``.

    ``model`` maps a batch of the run's model input (features, or raw windows when
    ``cfg.transform_placement == "model"``) to probabilities [B, len(class_names)].
    """

    def __init__(self, model, cfg: PipelineConfig, class_names, metadata: dict,
                 max_input_seconds: float = EXPORT_MAX_INPUT_SECONDS):
        super().__init__(name="gtzan_stream")
        self.max_input_seconds = float(max_input_seconds)
        self.model = model
        self.cfg = cfg
        self.class_names = tf.constant(list(class_names))
        self.metadata = tf.Variable(json.dumps(metadata), trainable=False, name="metadata")
        self._transform = (make_transform(cfg.transform, cfg.window.sample_rate)
                           if cfg.transform_placement == "data" else None)
        window_spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32, name="windows")
        self.serve = tf.function(self._serve, input_signature=[AUDIO_SPEC, RATE_SPEC])
        self.classify_windows = tf.function(self._classify, input_signature=[window_spec])

    def signatures(self) -> dict:
        """For ``tf.saved_model.save(signatures=...)``.  The tf.functions themselves, not
        concrete functions of them: those would be stored a second time (measured: 9.2 MB
        instead of 4.8 MB, the resampling kernels twice)."""
        return {"serving_default": self.serve, "classify_windows": self.classify_windows}

    def _classify(self, windows):
        return {"probabilities": self.model(windows, training=False)}

    def _serve(self, audio, sample_rate):
        window = self.cfg.window
        audio = tf.debugging.assert_all_finite(audio, "audio has non-finite samples (NaN/inf)")
        # the whole input is held and resampled at once: its length is bounded, as stated in
        # the metadata (max_input_seconds); pipeline.predict streams files of any length
        limit = tf.cast(self.max_input_seconds * tf.cast(sample_rate, tf.float64), tf.int64)
        too_long = tf.debugging.assert_less_equal(tf.size(audio, out_type=tf.int64), limit, message=(
            f"too long: the SavedModel takes at most {self.max_input_seconds:g} s of audio "
            "(max_input_seconds in its metadata); cut the audio, or use pipeline.predict"))
        with tf.control_dependencies([too_long]):
            audio = tf.identity(audio)
        audio = resample(to_decode_rate(audio, sample_rate), SAMPLE_RATE, window.sample_rate)
        audio, count = pad_to_cover(audio, window)
        check = tf.debugging.assert_greater(count, 0, message=(
            f"too short: the model needs at least one {window.window_seconds:g} s window "
            f"({window.window_length} samples at {window.sample_rate} Hz)"))
        with tf.control_dependencies([check]):
            window_probs = self._window_probabilities(audio, count)
        song = tf.reduce_mean(window_probs, axis=0)
        return {
            "window_probabilities": window_probs,
            "probabilities": song,
            "genre": tf.gather(self.class_names, tf.argmax(song)),
            "class_names": self.class_names,
            "window_starts": tf.cast(tf.range(count), tf.float32) * window.step_seconds,
        }

    def _window_probabilities(self, audio, count):
        """[count, C]: windows cut and classified ``batch_size`` at a time."""
        window, size = self.cfg.window, self.cfg.batch_size
        classes = int(self.class_names.shape[0])

        def one_batch(first):
            n = tf.minimum(size, count - first)
            x = cut_windows(audio, first, n, window)
            if self._transform is not None:
                x = self._transform(x)
            probs = tf.cast(self.model(x, training=False), tf.float32)
            return tf.pad(probs, [[0, size - n], [0, 0]])

        batches = tf.map_fn(one_batch, tf.range(0, count, size), parallel_iterations=1,
                            fn_output_signature=tf.TensorSpec([size, classes], tf.float32))
        return tf.reshape(batches, [-1, classes])[:count]

