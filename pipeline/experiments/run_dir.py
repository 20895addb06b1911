"""A run directory: everything one trained approach leaves behind, its lifecycle and its lock.

    config.json        what was asked: pipeline + training config, class names (written first)
    training.json      what training knows: approach, timings, size, validation figures
    model.keras        the trained Keras model (model.joblib for scikit-learn approaches)
    metrics.json       test-split evaluation (metrics_<split>.json for the other splits)
    history.csv, training_curves.png, confusion_matrix*.png, logs/ (TensorBoard)
    backup/, best.keras   Keras BackupAndRestore state and best checkpoint while training
    .lock              held by the process writing the run (see locking.py)

Lifecycle: training writes training.json, then commits the model file with an atomic rename
(the run is *trained* from then on), then removes its backup; evaluation writes only
metrics*.json and the confusion matrices, never training.json.  A trained run whose metrics are
missing (a kill after the model was saved) is evaluated again, not retrained.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from core.config import PipelineConfig, TrainConfig
from core.errors import ConfigError, RunDirError
from core.files import write_json_atomic
from pipeline.experiments.locking import LOCK_FILE, FolderLock, clear_locked_folder

CONFIG_VERSION = 2  # 2: training.json apart from metrics.json


class RunDir:
    def __init__(self, path: os.PathLike | str):
        self.path = Path(path)

    # --- paths -------------------------------------------------------------------------
    config_json = property(lambda self: self.path / "config.json")
    training_json = property(lambda self: self.path / "training.json")
    keras_model = property(lambda self: self.path / "model.keras")
    sklearn_model = property(lambda self: self.path / "model.joblib")
    backup_dir = property(lambda self: self.path / "backup")
    logs_dir = property(lambda self: self.path / "logs")
    history_csv = property(lambda self: self.path / "history.csv")
    curves_png = property(lambda self: self.path / "training_curves.png")
    best_checkpoint = property(lambda self: self.path / "best.keras")

    def metrics_json(self, split: str = "test") -> Path:
        return self.path / ("metrics.json" if split == "test" else f"metrics_{split}.json")

    def confusion_png(self, split: str = "test", level: str = "song") -> Path:
        suffix = "" if split == "test" else f"_{split}"
        kind = "" if level == "song" else "_windows"
        return self.path / f"confusion_matrix{kind}{suffix}.png"

    @property
    def model_file(self) -> Path:
        return self.sklearn_model if self.sklearn_model.exists() else self.keras_model

    # --- state -------------------------------------------------------------------------
    def lock(self) -> FolderLock:
        """The run's writer lock (``with run.lock(): ...``)."""
        return FolderLock(self.path, "run directory")

    def is_trained(self) -> bool:
        """Training finished: its record and the committed model file are both there."""
        return self.training_json.exists() and self.model_file.exists()

    def is_evaluated(self, split: str = "test") -> bool:
        return self.is_trained() and self.metrics_json(split).exists()

    def has_progress(self) -> bool:
        """Whether anything worth keeping was trained here (else only config.json, if that)."""
        return any(p.exists() for p in (
            self.backup_dir, self.history_csv, self.keras_model, self.sklearn_model,
            self.best_checkpoint, self.training_json,
        ))

    def clear(self) -> None:
        """Remove everything in the run directory except its lock (``--overwrite``)."""
        clear_locked_folder(self.path)

    def remove_if_empty(self) -> None:
        """Remove the folder when it holds nothing but its lock (a run refused before any work)."""
        if self.path.is_dir() and {p.name for p in self.path.iterdir()} <= {LOCK_FILE}:
            shutil.rmtree(self.path)

    # --- records -----------------------------------------------------------------------
    def save_config(self, pipeline: PipelineConfig, train: TrainConfig, **extra: Any) -> None:
        write_json_atomic(
            self.config_json,
            {"version": CONFIG_VERSION, "pipeline": pipeline.to_dict(), "train": train.to_dict(), **extra},
        )

    def load_config(self) -> tuple[PipelineConfig, TrainConfig, dict[str, Any]]:
        if not self.path.is_dir():
            raise RunDirError(f"run directory {self.path} does not exist")
        if not self.config_json.exists():
            raise RunDirError(
                f"{self.path} is not a run directory: no config.json "
                "(create one with `python -m pipeline.train ... --run-dir DIR`)"
            )
        raw = self._read_json(self.config_json)
        if raw.get("version") != CONFIG_VERSION:
            raise RunDirError(
                f"{self.config_json}: config version {raw.get('version')!r}, this code reads "
                f"version {CONFIG_VERSION}; retrain it with pipeline.train --overwrite"
            )
        extra = {k: v for k, v in raw.items() if k not in ("version", "pipeline", "train")}
        try:  # a section missing, unknown or missing fields, values of the wrong kind or range
            pipeline = PipelineConfig.from_dict(raw["pipeline"]).validate()
            train = TrainConfig.from_dict(raw["train"]).validate()
        except (KeyError, TypeError, ConfigError) as e:
            raise RunDirError(f"{self.config_json}: incompatible or damaged config ({e})") from e
        return pipeline, train, extra

    def save_training(self, info: dict[str, Any]) -> None:
        write_json_atomic(self.training_json, info)

    def load_training(self) -> dict[str, Any]:
        return self._read_json(self.training_json)

    def load_metrics(self, split: str = "test") -> dict[str, Any]:
        return self._read_json(self.metrics_json(split))

    def summary(self, split: str = "test") -> dict[str, Any]:
        """What reports show: the split's metrics with the training record beside them."""
        return {**self.load_metrics(split), **self.load_training()}

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except ValueError as e:
            raise RunDirError(f"{path}: damaged JSON ({e})") from e
        if not isinstance(data, dict):
            raise RunDirError(f"{path}: expected a JSON object")
        return data

    def check_same_config(self, pipeline: PipelineConfig, train: TrainConfig) -> None:
        """Refuse to resume a run that was started with another configuration.

        Where the data lives (data_dir, manual_dir) is not part of what was trained: a run
        resumes after the dataset moved, or after a first attempt with a wrong --manual-dir.
        """
        if not self.config_json.exists():
            return
        old_pipeline, old_train, _ = self.load_config()
        old = {"pipeline": _without_location(old_pipeline.to_dict()), "train": old_train.to_dict()}
        new = {"pipeline": _without_location(pipeline.to_dict()), "train": train.to_dict()}
        if old != new:
            diff = config_diff(old, new)
            raise RunDirError(
                f"{self.path} holds a run with another configuration ({'; '.join(diff[:6])}); "
                "use another --run-dir, or the same flags to resume it"
            )


# Where the data lives and how features reach the model, not what was trained.
LOCATION_FIELDS = ("data_dir", "manual_dir", "embeddings", "embedding_dir")


def _without_location(pipeline: dict) -> dict:
    dataset = {k: v for k, v in pipeline["dataset"].items() if k not in LOCATION_FIELDS}
    return {**pipeline, "dataset": dataset}


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Nested dict differences as "a.b: old -> new" lines."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out
