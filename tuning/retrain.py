"""The best configuration of a search, retrained into a normal run directory.

The run directory (default <directory>/<project>/best_run) works with
``python -m pipeline.evaluate --run DIR`` and ``python -m pipeline.predict FILE --run DIR``.
"""

from __future__ import annotations

from pathlib import Path

from core.config import PipelineConfig, TrainConfig
from core.errors import RunDirError
from pipeline.experiments.run_dir import RunDir
from tuning.summary import write_summary


def retrain_best(record: dict, space, base: PipelineConfig, base_train: TrainConfig,
                 run_dir: Path, epochs: int, verbose: int) -> dict:
    """Retrain a trial's configuration with pipeline.experiments.training.train_run into `run_dir`."""
    from pipeline.experiments.training import train_run
    from tuning.hypermodel import trial_configs

    cfg, train = trial_configs(space, record["values"], base, base_train, epochs=epochs)
    overwrite = False
    try:
        RunDir(run_dir).check_same_config(cfg, train)
    except RunDirError:
        print(f"{run_dir} holds an earlier best configuration; retraining the new best there")
        overwrite = True
    return train_run(cfg, train, run_dir, verbose=verbose, overwrite=overwrite)


def retrain_and_report(args, project: Path, tuner, space, base, base_train, summary) -> int:
    """Retrain the best trial into a run directory and print its test figures."""
    from pipeline.experiments.run_evaluation import format_summary

    best = summary["best_trials"][0]
    model, transform = space.model, space.transform
    run_dir = Path(args.retrain_dir) if args.retrain_dir else project / "best_run"
    epochs = args.retrain_epochs or base_train.epochs
    budget = (f"{epochs} epochs" if space.model_kind == "keras" else
              "refitted on train + validation" if base_train.refit else "fitted once")
    print(f"\nretraining trial {best['trial_id']} on the train split ({budget}) into {run_dir}")
    result = retrain_best(best, space, base, base_train, run_dir, epochs, args.verbose)
    keys = ("window_accuracy", "song_accuracy_mean_vote", "song_accuracy_majority_vote",
            "window_macro_f1", "song_macro_f1", "num_windows", "num_songs",
            "validation_window_accuracy", "validation_song_accuracy")
    best_run = {"trial_id": best["trial_id"], "run_dir": str(run_dir),
                "test": {k: result[k] for k in keys if k in result}}
    write_summary(project, tuner, space, args, model, transform, best_run=best_run)
    print()
    print(format_summary(result, f"best configuration (trial {best['trial_id']}): {model} on {transform}, test split"))
    print(f"run directory: {run_dir} (python -m pipeline.evaluate --run {run_dir})")
    return 0
