"""A run directory: everything one trained approach leaves behind, and how to read it back.

    config.json        pipeline + training config (enough to rebuild the same pipeline and model)
    model.keras        trained Keras model (or model.joblib for scikit-learn approaches)
    metrics.json       test metrics (metrics_<split>.json for other splits)
    history.csv, training_curves.png, confusion_matrix.png, confusion_matrix_windows.png
    logs/              TensorBoard
    backup/            Keras BackupAndRestore state while training (gone once training ends)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from core.config import ConfigError, PipelineConfig, TrainConfig

CONFIG_VERSION = 1


class RunDirError(ConfigError):
    """A run directory that is missing, incomplete or from an incompatible config."""


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so a kill mid-write never leaves a truncated file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


class RunDir:
    def __init__(self, path: os.PathLike | str):
        self.path = Path(path)

    # --- paths -------------------------------------------------------------------------
    config_json = property(lambda self: self.path / "config.json")
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

    def is_finished(self) -> bool:
        return self.metrics_json("test").exists() and self.model_file.exists()

    def has_progress(self) -> bool:
        """Whether anything worth keeping was trained here (else only config.json, if that)."""
        return any(p.exists() for p in (
            self.backup_dir, self.history_csv, self.keras_model, self.sklearn_model,
            self.best_checkpoint, self.metrics_json("test"),
        ))

    # --- config ------------------------------------------------------------------------
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
        try:
            raw = json.loads(self.config_json.read_text())
            if raw.get("version") != CONFIG_VERSION:
                raise RunDirError(
                    f"{self.config_json}: config version {raw.get('version')!r}, "
                    f"this code reads version {CONFIG_VERSION}"
                )
            extra = {k: v for k, v in raw.items() if k not in ("version", "pipeline", "train")}
            return (
                PipelineConfig.from_dict(raw["pipeline"]).validate(),
                TrainConfig.from_dict(raw["train"]).validate(),
                extra,
            )
        except RunDirError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise RunDirError(f"{self.config_json}: incompatible or damaged config ({e})") from e

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


def _without_location(pipeline: dict) -> dict:
    dataset = {k: v for k, v in pipeline["dataset"].items() if k not in ("data_dir", "manual_dir")}
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
