"""A search's project folder: where it lives, the settings it was started with (search.json).

A project resumes only with the settings it was started with (``max_trials`` may grow);
anything else is refused, so one folder never mixes two searches.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.config import DatasetConfig, PipelineConfig, TrainConfig
from core.errors import ConfigError
from core.files import write_json_atomic
from pipeline.cli import flags
from pipeline.experiments.locking import clear_locked_folder
from pipeline.experiments.run_dir import config_diff
from tuning.compare_report import resolve_approach

DEFAULT_DIRECTORY = "tuning_runs"
SEARCH_FILE = "search.json"
# search.json keys that may change between runs of one project (everything else may not).
RESUMABLE_CHANGES = ("max_trials",)


def project_dir_from_args(args) -> Path:
    model, transform, _ = resolve_approach(args)
    dataset = flags.flag_value(args, DatasetConfig, "name") or PipelineConfig().dataset.name
    name = args.project_name or f"{dataset}_{transform}_{model}_{args.tuner}"
    return Path(args.directory) / name


def search_identity(args, space, base: PipelineConfig, base_train: TrainConfig) -> dict:
    from models.registry import get_approach

    scoring = {"cv_folds": args.cv_folds} if get_approach(space.model).kind == "sklearn" else {}
    return {
        **scoring,
        "tuner": args.tuner,
        "objective": args.objective,
        "max_trials": args.max_trials,
        "hyperband_factor": args.hyperband_factor,
        "hyperband_iterations": args.hyperband_iterations,
        "num_initial_points": args.num_initial_points,
        "space": space.to_dict(),
        "pipeline": base.to_dict(),
        "train": base_train.to_dict(),
    }


def check_same_search(project: Path, identity: dict) -> None:
    """Refuse to resume a project that was started with other settings."""
    path = project / SEARCH_FILE
    if not path.exists():
        return
    old = json.loads(path.read_text())
    diff = [d for d in config_diff({k: v for k, v in old.items() if k not in RESUMABLE_CHANGES},
                             {k: v for k, v in identity.items() if k not in RESUMABLE_CHANGES})]
    if diff:
        raise ConfigError(
            f"{project} holds a search with other settings ({'; '.join(diff[:6])}); "
            "re-run with the same flags to resume it, or use --overwrite or another --project-name"
        )


def prepare_project(args, project: Path, identity: dict, role: str) -> None:
    """Start or check the project folder: --overwrite, same settings to resume, search.json."""
    if role == "worker":
        if (project / SEARCH_FILE).exists():
            check_same_search(project, identity)
        return
    if args.overwrite:
        clear_locked_folder(project)
    check_same_search(project, identity)
    write_json_atomic(project / SEARCH_FILE, identity)
