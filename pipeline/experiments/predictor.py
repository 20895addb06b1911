"""One interface over a trained run, Keras or scikit-learn: window features in, probabilities out.

Evaluation, prediction and comparison all go through `Predictor`, and all build their features
with the pipeline config stored in the run, so what a model sees at test time is computed by
exactly the code it was trained with.
"""

from __future__ import annotations

import os
from typing import Iterable, Optional

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from gtzan_tfds.constants import GENRES
from pipeline.experiments import metrics as metrics_lib
from core.config import ConfigError, PipelineConfig, TrainConfig
from pipeline.experiments.run_dir import RunDir, RunDirError


class Predictor:
    """Window-level class probabilities from a Keras model or a scikit-learn pipeline."""

    def __init__(self, model, kind: str, pipeline: PipelineConfig, train: Optional[TrainConfig] = None,
                 class_names=GENRES):
        self.model = model
        self.kind = kind
        self.pipeline = pipeline
        self.train = train
        self.class_names = list(class_names)
        if kind == "keras":
            # One trace for every batch size (the last batch of a split is smaller).
            spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)
            self._predict = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    @classmethod
    def from_run(cls, run_dir: os.PathLike | str) -> "Predictor":
        run = RunDir(run_dir)
        pipeline_cfg, train, extra = run.load_config()
        if not (run.sklearn_model.exists() or run.keras_model.exists()):
            raise RunDirError(f"{run.path} has no trained model (model.keras or model.joblib)")
        model_file = run.model_file
        try:
            if model_file == run.sklearn_model:
                import joblib

                model, kind = joblib.load(model_file), "sklearn"
            else:
                import keras

                from pipeline.stream import transforms  # noqa: F401  (registers TransformLayer)

                model, kind = keras.models.load_model(model_file), "keras"
        except Exception as e:  # noqa: BLE001  (zip, h5, pickle and Keras errors alike)
            raise RunDirError(
                f"{model_file}: cannot load the trained model, it is damaged or was written by "
                f"other versions of the libraries ({type(e).__name__}: {e}); "
                "re-run pipeline.train with --overwrite"
            ) from e
        if kind == "keras":
            _check_input_shape(model, pipeline_cfg, run)
        return cls(model, kind, pipeline_cfg, train, extra.get("class_names", GENRES))

    def predict_batch(self, features) -> np.ndarray:
        """[B, ...] features of one batch -> [B, num_classes] probabilities."""
        if self.kind == "keras":
            return np.asarray(self._predict(features))
        from models.sklearn_baselines import pool_features

        pooled = np.asarray(pool_features(tf.convert_to_tensor(features)))
        return sklearn_probabilities(self.model, pooled, len(self.class_names))

    def predict_dataset(self, batches: Iterable, desc: str = "predicting", verbose: bool = True):
        """Run over (features, label, song_id) batches; returns probabilities, labels, song ids."""
        probs, labels, ids = [], [], []
        for x, y, s in tqdm(batches, desc=desc, unit="batch", disable=not verbose, leave=False):
            probs.append(self.predict_batch(x))
            labels.append(np.asarray(y))
            ids.extend(np.asarray(s).tolist())
        if not probs:
            return np.zeros((0, len(self.class_names))), np.zeros(0, np.int64), []
        return np.concatenate(probs), np.concatenate(labels), ids


def _check_input_shape(model, cfg: PipelineConfig, run: RunDir) -> None:
    """RunDirError when config.json describes other features than the model was built for."""
    from pipeline.experiments.training import model_input_shape  # late: training imports this module

    expected = tuple(model_input_shape(cfg))
    actual = tuple(model.inputs[0].shape[1:])
    if actual != expected:
        raise RunDirError(
            f"{run.config_json} does not match {run.keras_model}: the config gives features of "
            f"shape {expected}, the model takes {actual} (was config.json edited or copied from "
            "another run?)"
        )


def sklearn_probabilities(model, pooled: np.ndarray, num_classes: int) -> np.ndarray:
    """predict_proba with one column per class, also for classes absent from training."""
    p = model.predict_proba(pooled)
    out = np.zeros((len(pooled), num_classes))
    out[:, np.asarray(model.classes_, dtype=int)] = p
    return out


def evaluate_split(predictor: Predictor, split: str = "test", verbose: bool = True) -> dict:
    """Metrics of a predictor on one split of the dataset its run was trained on."""
    from pipeline.stream.dataset import make_dataset

    ds = make_dataset(predictor.pipeline, split, training=False, with_song_id=True)
    probs, labels, ids = predictor.predict_dataset(ds, desc=f"evaluating {split}", verbose=verbose)
    if not len(probs):
        raise no_windows_error(predictor.pipeline, split)
    return metrics_lib.evaluate_windows(probs, labels, ids, predictor.class_names)


def no_windows_error(cfg: PipelineConfig, split: str) -> ConfigError:
    """The error for a split none of whose songs is as long as one window."""
    w = cfg.window
    return ConfigError(
        f"split {split!r} of gtzan_tfds/{cfg.dataset.name} gives no windows: every song is "
        f"shorter than one {w.window_seconds:g} s window (--window-seconds); use shorter "
        "windows, or --pad-end true to zero-pad a song's last partial window"
    )


def require_windows(cfg: PipelineConfig, split: str) -> None:
    """ConfigError unless ``split`` gives at least one window with ``cfg``.

    Reads songs until the first window (one song when any is long enough; the whole split
    only when none is), so a split with no windows fails before training, not after.
    """
    from pipeline.stream.dataset import load_songs, song_to_windows

    songs = load_songs(cfg.dataset, split)
    counts = songs.map(lambda song: tf.shape(song_to_windows(song, cfg)["window"])[0])
    if not any(int(n) > 0 for n in counts):
        raise no_windows_error(cfg, split)


def write_evaluation(run: RunDir, split: str, result: dict, title: str = "") -> None:
    """metrics json and confusion-matrix PNGs (song and window level) for one split."""
    from pipeline.experiments import plots
    from pipeline.experiments.run_dir import write_json_atomic

    names = result["class_names"]
    plots.plot_confusion_matrix(
        result["confusion_matrix_song"], names, run.confusion_png(split, "song"),
        f"{title}\n{split}: song accuracy {result['song_accuracy_mean_vote']:.1%} "
        f"({result['num_songs']} songs, mean-probability vote)",
    )
    plots.plot_confusion_matrix(
        result["confusion_matrix_window"], names, run.confusion_png(split, "window"),
        f"{title}\n{split}: window accuracy {result['window_accuracy']:.1%} "
        f"({result['num_windows']} windows)",
    )
    # Last: a run counts as finished once its metrics exist (RunDir.is_finished), so a kill
    # before this line leaves it unfinished rather than finished without its figures.
    write_json_atomic(run.metrics_json(split), result)


def format_summary(result: dict, title: str = "") -> str:
    """A small table of the headline numbers, for the terminal."""
    rows = [
        ("windows", f"{result['num_windows']}"),
        ("songs", f"{result['num_songs']}"),
        ("window accuracy", f"{result['window_accuracy']:.1%}"),
        ("song accuracy (mean-probability vote)", f"{result['song_accuracy_mean_vote']:.1%}"),
        ("song accuracy (majority vote)", f"{result['song_accuracy_majority_vote']:.1%}"),
        ("window macro F1", f"{result['window_macro_f1']:.3f}"),
        ("song macro F1", f"{result['song_macro_f1']:.3f}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [title, "-" * (width + 12)] if title else []
    lines += [f"{k:<{width}}  {v:>8}" for k, v in rows]
    return "\n".join(lines)
