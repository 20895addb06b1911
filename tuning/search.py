"""`python -m tuning.search`: Keras Tuner search over one approach's model and pipeline.

Searches the approach's model hyperparameters (layers/blocks, filters, kernel sizes, units,
dropout), training ones (learning rate, optimizer, batch size) and pipeline ones (window
length, sample rate, n_fft, hop length, n_mels / n_mfcc); each trial streams its own tf.data
pipeline.  The approach is --model/--transform, by default the best Keras approach of the last
`python -m pipeline.compare` report (reports/compare/results.csv), else cnn2d on mel.

Every other pipeline/training flag sets the base configuration; a flag given explicitly pins
that hyperparameter (e.g. --sample-rate 22050 takes the sample rate out of the search).
--fix NAME=VALUE and --choices NAME=V1,V2 change single entries; --show-space prints the space.

Resumable: re-run the same command after an interruption and the search continues where it
stopped (finished trials are kept, an interrupted one runs again under its id); re-run with a
larger --max-trials to extend a finished search.  At the end: a table of the best trials
(also <directory>/<project>/summary.md and summary.json) and the best configuration retrained
on the train split into a normal run directory (default <directory>/<project>/best_run, for
`python -m pipeline.evaluate --run DIR` and `python -m pipeline.predict FILE --run DIR`), with
its test metrics.

Distributed: run the same command as a chief and as workers, with keras_tuner's environment
variables (see `python -m tuning.distributed --help`):
    KERASTUNER_TUNER_ID=chief  KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8000 python -m tuning.search ...
    KERASTUNER_TUNER_ID=tuner0 KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8000 python -m tuning.search ...
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Optional

from core.config import PipelineConfig, TrainConfig
from core.errors import ConfigError, RunDirError
from core.files import write_json_atomic
from pipeline.cli import flags
from pipeline.cli.entry import run_cli
from pipeline.experiments.locking import FolderLock, clear_locked_folder
from pipeline.experiments.run_dir import RunDir, config_diff

DEFAULT_APPROACH = ("cnn2d", "mel")
DEFAULT_COMPARE_RESULTS = "reports/compare/results.csv"
DEFAULT_DIRECTORY = "tuning_runs"
SEARCH_FILE = "search.json"
# Explicitly given flags that pin a hyperparameter of the space: argparse dest -> name.
PINNING_FLAGS = {
    "WindowConfig.window_seconds": "window_seconds",
    "WindowConfig.sample_rate": "sample_rate",
    "TransformConfig.n_fft": "n_fft",
    "TransformConfig.hop_length": "hop_length",
    "TransformConfig.n_mels": "n_mels",
    "TransformConfig.n_mfcc": "n_mfcc",
    "PipelineConfig.batch_size": "batch_size",
    "TrainConfig.learning_rate": "learning_rate",
    "TrainConfig.optimizer": "optimizer",
}
# search.json keys that may change between runs of one project (everything else may not).
RESUMABLE_CHANGES = ("max_trials",)


def build_parser() -> argparse.ArgumentParser:
    from tuning import OBJECTIVES, TUNERS
    from tuning.search_space import TUNE_PARTS

    parser = argparse.ArgumentParser(
        prog="python -m tuning.search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  python -m tuning.search --max-trials 20 --epochs 15\n"
        "  python -m tuning.search --model lstm --transform mfcc --tuner bayesian \\\n"
        "      --objective val_song_accuracy --max-trials 30 --dataset-config gtzan\n"
        "  python -m tuning.search --tune model --choices filters=16,32 --fix dropout=0.3\n"
        "  python -m tuning.search --model cnn2d --transform mel --show-space",
    )
    g = parser.add_argument_group("search")
    g.add_argument("--tuner", choices=TUNERS, default="random",
                   help="search algorithm (default: random). hyperband: --epochs is its maximum "
                   "epochs per trial, and --max-trials caps its brackets")
    g.add_argument("--max-trials", type=int, default=10,
                   help="trials in the search (default: 10); a larger value extends a finished search")
    g.add_argument("--objective", choices=tuple(OBJECTIVES), default="val_accuracy",
                   help="what the search maximises: " + "; ".join(f"{k}: {v}" for k, v in OBJECTIVES.items())
                   + " (default: val_accuracy)")
    g.add_argument("--directory", default=DEFAULT_DIRECTORY,
                   help=f"where searches live (default: {DEFAULT_DIRECTORY})")
    g.add_argument("--project-name",
                   help="the search's folder in --directory (default: <dataset>_<transform>_<model>_<tuner>)")
    g.add_argument("--overwrite", action="store_true",
                   help="discard an existing search of this project instead of resuming it")
    g.add_argument("--tune", choices=TUNE_PARTS, default="all",
                   help="which hyperparameters to search: all, model (model + training) or pipeline")
    g.add_argument("--fix", action="append", metavar="NAME=VALUE",
                   help="pin a hyperparameter (repeatable)")
    g.add_argument("--choices", action="append", metavar="NAME=V1,V2,...",
                   help="search these values of a hyperparameter (repeatable)")
    g.add_argument("--show-space", action="store_true", help="print the search space and exit")
    g.add_argument("--compare-results", default=DEFAULT_COMPARE_RESULTS, metavar="CSV",
                   help="compare report whose best Keras approach is searched when --model and "
                   f"--transform are not given (default: {DEFAULT_COMPARE_RESULTS})")
    g.add_argument("--hyperband-factor", type=int, default=3, help="hyperband: reduction factor (default: 3)")
    g.add_argument("--hyperband-iterations", type=int, default=1,
                   help="hyperband: sweeps over all brackets (default: 1)")
    g.add_argument("--num-initial-points", type=int, default=None,
                   help="bayesian: random trials before the Gaussian process (default: 3 x dimensions)")
    g.add_argument("--top", type=int, default=5, help="best trials in the summary table (default: 5)")
    g.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                   help="0 silent, 1 progress, 2 one line per epoch")
    r = parser.add_argument_group("retraining the best configuration")
    r.add_argument("--no-retrain", action="store_true", help="only search and summarise")
    r.add_argument("--retrain-dir", metavar="DIR",
                   help="run directory of the retrained best configuration (default: <directory>/<project>/best_run)")
    r.add_argument("--retrain-epochs", type=int, default=None,
                   help="epochs of the retraining (default: --epochs; early stopping applies)")
    flags.add_pipeline_args(parser)
    flags.add_train_args(parser)
    return parser


# --------------------------------------------------------------------------------------------
# which approach
def best_of_compare_report(path: Path, model: Optional[str] = None, transform: Optional[str] = None,
                           objective: str = "val_accuracy") -> Optional[tuple[str, str]]:
    """(model, transform) of the best Keras approach in a compare results.csv, or None.

    Ranked by song accuracy when the objective is song-level, else window accuracy (the other
    one breaks ties); rows not matching a given `model`/`transform` are skipped.
    """
    from models.registry import APPROACHES

    path = Path(path)
    if not path.exists():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    first, second = ("song_accuracy", "window_accuracy") if objective == "val_song_accuracy" \
        else ("window_accuracy", "song_accuracy")

    def number(row, key):
        try:
            return float(row.get(key, "nan"))
        except ValueError:
            return float("nan")

    candidates = [
        r for r in rows
        if r.get("model") in APPROACHES and APPROACHES[r["model"]].kind == "keras"
        and r.get("transform") in APPROACHES[r["model"]].transforms
        and (model is None or r["model"] == model) and (transform is None or r["transform"] == transform)
        and not math.isnan(number(r, first))
    ]
    if not candidates:
        return None
    best = max(candidates, key=lambda r: (number(r, first), number(r, second) if not math.isnan(number(r, second)) else -1))
    return best["model"], best["transform"]


def resolve_approach(args) -> tuple[str, str, str]:
    """(model, transform, where from) for the search."""
    model = getattr(args, "TrainConfig.model")
    transform = getattr(args, "TransformConfig.name")
    if model and transform:
        return model, transform, "command line"
    found = best_of_compare_report(args.compare_results, model, transform, args.objective)
    if found:
        return found[0], found[1], f"best Keras approach of {args.compare_results}"
    if model:
        from models.registry import get_approach

        accepted = get_approach(model).transforms
        return model, DEFAULT_APPROACH[1] if DEFAULT_APPROACH[1] in accepted else accepted[0], "default transform"
    if transform:
        return DEFAULT_APPROACH[0], transform, "default model"
    return DEFAULT_APPROACH[0], DEFAULT_APPROACH[1], "default (no compare report)"


def project_dir_from_args(args) -> Path:
    model, transform, _ = resolve_approach(args)
    dataset = getattr(args, "DatasetConfig.name") or PipelineConfig().dataset.name
    name = args.project_name or f"{dataset}_{transform}_{model}_{args.tuner}"
    return Path(args.directory) / name


# --------------------------------------------------------------------------------------------
# setting up
def pinned_from_flags(args) -> dict[str, Any]:
    pinned = {name: getattr(args, dest) for dest, name in PINNING_FLAGS.items()
              if getattr(args, dest, None) is not None}
    pinned.update(flags.parse_hparams(getattr(args, "TrainConfig.hparams")))
    return pinned


def make_space(args, model: str, transform: str):
    from tuning.search_space import SearchSpace, parse_assignments

    fixed = {**pinned_from_flags(args), **parse_assignments(args.fix, "--fix")}
    choices = parse_assignments(args.choices, "--choices", many=True)
    return SearchSpace.for_approach(model, transform, tune=args.tune, fixed=fixed, choices=choices)


def search_identity(args, space, base: PipelineConfig, base_train: TrainConfig) -> dict:
    return {
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


# --------------------------------------------------------------------------------------------
# summary
def trial_record(trial, space) -> dict:
    """One trial as a JSON-able dict: id, status, score, metrics at its best epoch, values."""
    from tuning.search_space import _plain

    metrics = {}
    for name in ("val_accuracy", "val_song_accuracy", "val_loss", "accuracy", "loss"):
        if trial.metrics.exists(name):
            metrics[name] = _plain(trial.metrics.get_last_value(name))
    values = {k: _plain(v) for k, v in trial.hyperparameters.values.items()}
    return {
        "trial_id": trial.trial_id,
        "status": trial.status,
        "score": None if trial.score is None else float(trial.score),
        "best_epoch": trial.best_step,
        "metrics": metrics,
        "values": values,
    }


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.2e}" if 0 < abs(v) < 1e-2 else f"{v:.4g}"
    return str(v)


def summary_table(records: list[dict], space, objective: str) -> str:
    """Markdown table of trials (best first): scores, then the searched hyperparameters."""
    from tuning.search_space import Fixed

    names = [n for n, e in space.entries.items() if not isinstance(e, Fixed)]
    scores = ["val_accuracy", "val_song_accuracy"]
    header = ["rank", "trial", *(f"{m} (objective)" if m == objective else m for m in scores),
              "epoch", *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, r in enumerate(records, 1):
        epoch = r["best_epoch"] + 1 if isinstance(r["best_epoch"], int) else None
        cells = [rank, r["trial_id"], *(r["metrics"].get(m) for m in scores), epoch,
                 *(r["values"].get(n) for n in names)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def write_summary(project: Path, tuner, space, args, model: str, transform: str,
                  best_run: Optional[dict] = None) -> dict:
    """summary.json (every trial, best first) and summary.md; returns the summary dict."""
    from tuning.search_space import Fixed

    oracle = tuner.oracle
    trials = list(oracle.trials.values())
    completed = [t for t in trials if t.status == "COMPLETED"]
    best = oracle.get_best_trials(len(completed)) if completed else []
    best = [t for t in best if t.status == "COMPLETED"]
    records = [trial_record(t, space) for t in best]
    others = [trial_record(t, space) for t in trials if t.status != "COMPLETED"]
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    summary = {
        "model": model, "transform": transform, "tuner": args.tuner, "objective": args.objective,
        "max_trials": args.max_trials, "trial_counts": counts,
        "fixed": {n: e.value for n, e in space.entries.items() if isinstance(e, Fixed)},
        "best_trials": records, "other_trials": others,
    }
    if best_run:
        summary["best_run"] = best_run
    write_json_atomic(project / "summary.json", summary)

    table = summary_table(records[: args.top], space, args.objective)
    md = [f"# Search: {model} on {transform} ({args.tuner}, objective {args.objective})", "",
          f"Trials: {', '.join(f'{v} {k.lower()}' for k, v in sorted(counts.items()))}.", "",
          f"Best {min(args.top, len(records))} of {len(records)} completed trials:", "", table, ""]
    if summary["fixed"]:
        md += ["Fixed: " + ", ".join(f"{k}={_cell(v)}" for k, v in summary["fixed"].items()), ""]
    from tuning.trial_effects import effects_markdown  # which parameters moved the objective
    md += effects_markdown(records, [n for n in space.entries if n not in summary["fixed"]],
                           args.objective)
    if best_run:
        test = best_run["test"]
        md += [f"Best configuration (trial {best_run['trial_id']}) retrained into "
               f"`{best_run['run_dir']}`: test window accuracy {test['window_accuracy']:.1%}, "
               f"song accuracy {test['song_accuracy_mean_vote']:.1%} "
               f"({test['num_songs']} songs).", ""]
    (project / "summary.md").write_text("\n".join(md))
    summary["table"] = table
    return summary


# --------------------------------------------------------------------------------------------
# retraining
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


# --------------------------------------------------------------------------------------------
def base_configs(args, model: str, transform: str) -> tuple[PipelineConfig, TrainConfig]:
    """The search's base configs: the flags, with the approach's model and transform, and
    what the approach implies where no flag was given (musicnn_finetune: its 16 kHz pipeline;
    a contradicting flag is a ConfigError)."""
    model_args = flags.apply_approach_settings(args, model)
    base = flags.pipeline_config_from_args(model_args)
    base = dataclasses.replace(base, transform=dataclasses.replace(base.transform, name=transform))
    base_train = dataclasses.replace(flags.train_config_from_args(model_args), model=model)
    return base.validate(), base_train.validate()


def describe_search(args, space, base, base_train, source: str, role: str) -> None:
    """Print what is searched; ConfigError when no pipeline combination is valid."""
    valid, total = space.count_valid(base, base_train)
    print(f"search: {space.model} on {space.transform} ({source}); tuner {args.tuner}, objective "
          f"{args.objective}, max {args.max_trials} trials, {base_train.epochs} epochs; role {role}")
    print("space:\n" + space.describe())
    if valid == 0:
        raise ConfigError("no valid combination of the pipeline hyperparameters; "
                          "check --choices/--fix (see --show-space)")
    if valid < total:
        print(f"  ({total - valid} of {total} pipeline combinations are invalid and never sampled)")


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


def retrain_and_report(args, project: Path, tuner, space, base, base_train, summary) -> int:
    """Retrain the best trial into a run directory and print its test figures."""
    from pipeline.experiments.evaluation import format_summary

    best = summary["best_trials"][0]
    model, transform = space.model, space.transform
    run_dir = Path(args.retrain_dir) if args.retrain_dir else project / "best_run"
    epochs = args.retrain_epochs or base_train.epochs
    print(f"\nretraining trial {best['trial_id']} on the train split ({epochs} epochs) into {run_dir}")
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


def run_search(args, project: Path, space, base, base_train, role: str):
    """The tuner over this project, searched (the chief serves, workers run trials)."""
    from tuning import tuners as tuners_lib
    from tuning.hypermodel import TrialHyperModel, make_objective

    hypermodel = TrialHyperModel(space, base, base_train, objective=args.objective)
    tuner = tuners_lib.make_tuner(
        args.tuner, hypermodel, objective=make_objective(args.objective),
        max_trials=args.max_trials, epochs=base_train.epochs, seed=base.seed,
        directory=str(project.parent), project_name=project.name,
        hyperband_factor=args.hyperband_factor, hyperband_iterations=args.hyperband_iterations,
        num_initial_points=args.num_initial_points,
    )
    for line in getattr(tuner.oracle, "repairs", None) or []:
        print(f"resume: {line}")
    tuner.search(verbose=args.verbose)
    return tuner


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.experiments.seeding import configure_determinism
    from tuning.roles import is_chief, is_worker

    if args.max_trials < 1:
        raise ConfigError("--max-trials must be at least 1")
    model, transform, source = resolve_approach(args)
    base, base_train = base_configs(args, model, transform)
    space = make_space(args, model, transform)
    role = "worker" if is_worker() else "chief" if is_chief() else "standalone"
    describe_search(args, space, base, base_train, source, role)
    if args.show_space:
        return 0
    configure_determinism(base_train.deterministic)
    project = project_dir_from_args(args)
    if role == "worker":  # the chief holds the project's lock; a worker only runs trials
        prepare_project(args, project, search_identity(args, space, base, base_train), role)
        tuner = run_search(args, project, space, base, base_train, role)
        print(f"worker {tuner.tuner_id}: no more trials; done")
        return 0
    with FolderLock(project, "tuning project"):
        prepare_project(args, project, search_identity(args, space, base, base_train), role)
        tuner = run_search(args, project, space, base, base_train, role)
        summary = write_summary(project, tuner, space, args, model, transform)
        print(f"\nbest trials ({args.objective}), {project / 'summary.md'}:")
        print(summary["table"])
        if not summary["best_trials"]:
            print("no trial completed; nothing to retrain")
            return 1
        if args.no_retrain:
            return 0
        return retrain_and_report(args, project, tuner, space, base, base_train, summary)


if __name__ == "__main__":
    run_cli(main)
