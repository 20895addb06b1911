"""One interface over a trained run, Keras or scikit-learn: window features in, probabilities out.

Evaluation, prediction, comparison and tuning all go through ``Predictor``, and all build
their features with the pipeline config stored in the run, so what a model sees at test time is
computed by exactly the code it was trained with.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from typing import Iterable, Optional, Sequence

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from core.config import PipelineConfig, TrainConfig
from core.errors import RunDirError
from pipeline.experiments.run_dir import RunDir
from pipeline.stream.transforms import model_input_shape


class Predictor:
    """Window-level class probabilities from a Keras model or a scikit-learn pipeline.

    ``featurize`` (scikit-learn only) turns a batch of pipeline features into the vectors the
    estimator was fitted on (``models.registry.featurizer`` of the run's approach and
    hyperparameters).
    """

    def __init__(self, model, kind: str, pipeline: PipelineConfig, class_names: Sequence[str],
                 train: Optional[TrainConfig] = None, featurize=None):
        self.model = model
        self.kind = kind
        self.pipeline = pipeline
        self.train = train
        self.class_names = list(class_names)
        self.featurize = featurize
        self._transform = None  # pipeline.stream.dataset.batch_transform, built on first use
        if kind == "keras":
            # One trace for every batch size (the last batch of a split is smaller).
            spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)
            self._predict = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    @classmethod
    def from_run(cls, run_dir: os.PathLike | str) -> "Predictor":
        from models.registry import featurizer

        run = RunDir(run_dir)
        pipeline_cfg, train, extra = run.load_config()
        if not run.is_trained():
            raise RunDirError(
                f"{run.path} holds no trained model (model.keras or model.joblib with "
                "training.json): train it first with pipeline.train --run-dir"
            )
        model, kind = _load_model(run)
        if kind == "keras":
            _check_input_shape(model, pipeline_cfg, run)
        featurize = featurizer(train.model, train.hparams) if kind == "sklearn" else None
        return cls(model, kind, pipeline_cfg, extra["class_names"], train, featurize)

    def on_vectors(self) -> "Predictor":
        """This scikit-learn predictor taking the estimator's vectors directly (what the
        embedding store holds) instead of the pipeline's features."""
        return Predictor(self.model, self.kind, self.pipeline, self.class_names, self.train,
                         np.asarray)

    def batch_transform(self):
        """The run's compiled transform of a batch of windows (None with placement "model"),
        built once: every file predicted with this Predictor reuses its compilations."""
        if self._transform is None:
            from pipeline.stream.dataset import batch_transform

            self._transform = (batch_transform(self.pipeline),)
        return self._transform[0]

    def predict_batch(self, features) -> np.ndarray:
        """[B, ...] features of one batch -> [B, num_classes] probabilities."""
        if self.kind == "keras":
            return np.asarray(self._predict(features))
        vectors = np.asarray(self.featurize(tf.convert_to_tensor(features)))
        return sklearn_probabilities(self.model, vectors, len(self.class_names))

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


def _load_model(run: RunDir):
    """(model, kind) of a trained run; RunDirError when the file is damaged or unreadable."""
    path = run.model_file
    try:
        if path == run.sklearn_model:
            import joblib

            return joblib.load(path), "sklearn"
        import keras

        from pipeline.stream import transforms  # noqa: F401  (registers TransformLayer)

        return keras.models.load_model(path), "keras"
    # What a damaged or foreign file raises: a broken zip or pickle, a truncated stream, or
    # Keras refusing the archive's config (ValueError/TypeError/KeyError).
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, OSError,
            ValueError, TypeError, KeyError) as e:
        raise RunDirError(
            f"{path}: cannot load the trained model, it is damaged or was written by other "
            f"versions of the libraries ({type(e).__name__}: {e}); re-run pipeline.train with "
            "--overwrite"
        ) from e


def _check_input_shape(model, cfg: PipelineConfig, run: RunDir) -> None:
    """RunDirError when config.json describes other features than the model was built for."""
    expected = tuple(model_input_shape(cfg))
    actual = tuple(model.inputs[0].shape[1:])
    if actual != expected:
        raise RunDirError(
            f"{run.config_json} does not match {run.keras_model}: the config gives features of "
            f"shape {expected}, the model takes {actual} (was config.json edited or copied from "
            "another run?)"
        )


def sklearn_probabilities(model, vectors: np.ndarray, num_classes: int) -> np.ndarray:
    """predict_proba with one column per class, also for classes absent from training."""
    p = model.predict_proba(vectors)
    out = np.zeros((len(vectors), num_classes))
    out[:, np.asarray(model.classes_, dtype=int)] = p
    return out
