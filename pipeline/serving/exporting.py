"""A trained Keras run -> one SavedModel directory (and a TFLite file), written atomically.

The directory is what TF Serving, a mobile build or a colleague's notebook loads with
``tf.saved_model.load`` alone: no code of this project is needed to run it.  It is written
under a temporary name beside ``out_dir`` and renamed into place when complete, so a failed or
interrupted export never leaves a half-written model where a server would load it, and never
touches an existing export unless ``overwrite`` is given.

scikit-learn runs export only where the approach can rewrite its fitted estimator as the same
function in Keras (``models.registry.keras_equivalent``: the ``musicnn`` approach's logistic
probe, folded into a Dense layer after the frozen network).  The others (svc, rf, the musicnn
SVC probe) are refused with a ConfigError: their estimator is a pickle that needs scikit-learn
(of the same version) and this project's feature code to run, so it cannot be part of a
self-contained TensorFlow graph.  Use ``pipeline.predict`` or ``pipeline.serve`` for them.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from core.config import EXPORT_MAX_INPUT_SECONDS
from core.errors import ConfigError
from core.files import write_json_atomic
from pipeline.experiments.predictor import Predictor
from pipeline.serving.input_rates import SUPPORTED_RATES

METADATA_FILE = Path("assets.extra") / "gtzan_stream.json"  # beside the graph; TF ignores it
TFLITE_FILE = "window_model.tflite"


def load_keras_run(run_dir: os.PathLike | str) -> Predictor:
    """The run's Predictor with a Keras model giving [B, classes] (a scikit-learn run's Keras
    equivalent where its approach has one); ConfigError otherwise."""
    from models.registry import keras_equivalent
    from pipeline.experiments.ensemble import ENSEMBLE_JSON

    if (Path(run_dir) / ENSEMBLE_JSON).exists():
        raise ConfigError(
            f"{run_dir}: an ensemble of pipeline.compare --ensemble is not exportable (it is a "
            f"row of a comparison, its fusion weights per fold in {ENSEMBLE_JSON}, not a trained "
            "run); export its members' runs")
    predictor = Predictor.from_run(run_dir)
    if predictor.kind != "keras":
        train = predictor.train
        model = keras_equivalent(train.model, predictor.model, train.hparams)
        if model is None:
            raise ConfigError(
                f"{run_dir}: {train.model} is a scikit-learn approach and cannot be exported "
                "as a SavedModel (its estimator needs scikit-learn and this project's code); "
                "use pipeline.predict or pipeline.serve for it")
        predictor = Predictor(model, "keras", predictor.pipeline, predictor.class_names, train)
    out = tuple(predictor.model.outputs[0].shape[1:])
    if out != (len(predictor.class_names),):
        raise ConfigError(f"{run_dir}: the model outputs shape {out}, expected probabilities of "
                          f"the {len(predictor.class_names)} classes")
    return predictor


def run_metadata(predictor: Predictor, run_dir) -> dict:
    """What the export records about itself (also stored in the graph as ``metadata``)."""
    import keras
    import tensorflow as tf

    pipeline = predictor.pipeline.to_dict()
    pipeline["dataset"] = {"name": pipeline["dataset"]["name"]}  # not where it lived
    return {
        "run": Path(run_dir).name,
        "approach": predictor.train.model,
        "class_names": predictor.class_names,
        "pipeline": pipeline,
        "supported_sample_rates": list(SUPPORTED_RATES),
        "window_seconds": predictor.pipeline.window.window_seconds,
        "step_seconds": predictor.pipeline.window.step_seconds,
        # the served graph holds its whole input: longer audio is refused ("too long")
        "max_input_seconds": EXPORT_MAX_INPUT_SECONDS,
        "exported_with": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def export_run(run_dir, out_dir, *, overwrite: bool = False, tflite: bool = False) -> dict:
    """Write the run's SavedModel to ``out_dir`` (plus ``window_model.tflite`` with ``tflite``).

    Returns the metadata written, with ``saved_model_bytes`` and, with ``tflite``, the
    conversion report of ``tflite.convert_window_model``.
    """
    import tensorflow as tf

    from pipeline.serving.saved_model import GenreModule

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} already exists and is not empty; --overwrite replaces it")
    predictor = load_keras_run(run_dir)
    metadata = run_metadata(predictor, run_dir)
    module = GenreModule(predictor.model, predictor.pipeline, predictor.class_names, metadata)
    tmp = out.with_name(f".{out.name}.export-tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # left by an export that was killed
    try:
        tf.saved_model.save(module, str(tmp), signatures=module.signatures())
        metadata["saved_model_bytes"] = directory_bytes(tmp)
        if tflite:
            from pipeline.serving.tflite import convert_window_model

            metadata["tflite"] = convert_window_model(predictor, tmp / TFLITE_FILE)
        write_json_atomic(tmp / METADATA_FILE, metadata)
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return metadata


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is removed only once ``new`` is in."""
    old = target.with_name(f".{target.name}.export-old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
