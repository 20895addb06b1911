"""`python -m tuning.search`: Keras Tuner search over one approach's model and pipeline.

Searches the approach's model hyperparameters (layers/blocks, filters, kernel sizes, units,
dropout), training ones (learning rate, optimizer, batch size) and pipeline ones (window
length, sample rate, n_fft, hop length, n_mels / n_mfcc); each trial streams its own tf.data
pipeline.  The approach is --model/--transform, by default the best Keras approach of the last
`python -m pipeline.compare` report (reports/compare/results.csv), else cnn2d on mel.

scikit-learn approaches (--model musicnn, svc, rf) go through Keras Tuner's SklearnTuner: the
estimator's hyperparameters (the probe and its C, the musicnn weights and layer; C; trees and
leaves) and the pipeline's, each trial scored by a --cv-folds cross-validation *by song* over
the training songs (objective cv_song_accuracy: each held-out song decided by its windows' mean
probabilities).  musicnn's features come from the embedding store (one network pass per
weights and window step, kept on disk), so a trial costs probe fits.  --tuner grid tries every
combination (what `pipeline.experiments.probe_study` used to do for the probe).

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
import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

from core.config import PipelineConfig, TrainConfig
from core.errors import ConfigError
from pipeline.cli import flags
from pipeline.cli.entry import run_cli
from pipeline.experiments.locking import FolderLock
from tuning.compare_report import (  # noqa: F401 (re-exported: the CLI's documented helpers)
    DEFAULT_APPROACH, DEFAULT_COMPARE_RESULTS, best_of_compare_report, resolve_approach,
)
from tuning.project import (  # noqa: F401
    DEFAULT_DIRECTORY, SEARCH_FILE, prepare_project, project_dir_from_args, search_identity,
)

# Explicitly given flags that pin a hyperparameter of the space: argparse dest -> name.
PINNING_FLAGS = {
    "WindowConfig.window_seconds": "window_seconds",
    "WindowConfig.step_seconds": "step_seconds",
    "WindowConfig.sample_rate": "sample_rate",
    "TransformConfig.n_fft": "n_fft",
    "TransformConfig.hop_length": "hop_length",
    "TransformConfig.n_mels": "n_mels",
    "TransformConfig.n_mfcc": "n_mfcc",
    "PipelineConfig.batch_size": "batch_size",
    "TrainConfig.learning_rate": "learning_rate",
    "TrainConfig.optimizer": "optimizer",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tuning.search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  python -m tuning.search --max-trials 20 --epochs 15\n"
        "  python -m tuning.search --model lstm --transform mfcc --tuner bayesian \\\n"
        "      --objective val_song_accuracy --max-trials 30 --dataset-config gtzan\n"
        "  python -m tuning.search --tune model --choices filters=16,32 --fix dropout=0.3\n"
        "  python -m tuning.search --model cnn2d --transform mel --show-space\n"
        "  python -m tuning.search --model musicnn --dataset-config gtzan --max-trials 20\n"
        "  python -m tuning.search --model rf --transform mfcc --tuner bayesian --max-trials 30",
    )
    add_search_args(parser.add_argument_group("search"))
    r = parser.add_argument_group("retraining the best configuration")
    r.add_argument("--no-retrain", action="store_true", help="only search and summarise")
    r.add_argument("--retrain-dir", metavar="DIR",
                   help="run directory of the retrained best configuration (default: <directory>/<project>/best_run)")
    r.add_argument("--retrain-epochs", type=int, default=None,
                   help="epochs of the retraining (default: --epochs; early stopping applies)")
    flags.add_pipeline_args(parser)
    flags.add_train_args(parser)
    return parser


def add_search_args(g) -> None:
    """The search's own flags (the pipeline and training ones come from the config dataclasses)."""
    from tuning import OBJECTIVES, TUNE_PARTS, TUNERS

    g.add_argument("--tuner", choices=TUNERS, default="random",
                   help="search algorithm (default: random). grid: every combination in turn "
                   "(discrete entries only; --max-trials caps it). hyperband (Keras approaches): "
                   "--epochs is its maximum epochs per trial, and --max-trials caps its brackets")
    g.add_argument("--max-trials", type=int, default=10,
                   help="trials in the search (default: 10); a larger value extends a finished search")
    g.add_argument("--objective", choices=tuple(OBJECTIVES), default=None,
                   help="what the search maximises: " + "; ".join(f"{k}: {v}" for k, v in OBJECTIVES.items())
                   + " (default: val_accuracy for Keras approaches, cv_song_accuracy for "
                   "scikit-learn ones)")
    g.add_argument("--cv-folds", type=int, default=5,
                   help="scikit-learn approaches: folds of whole songs in each trial's "
                   "cross-validation over the training songs (default: 5)")
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


# --------------------------------------------------------------------------------------------
# setting up
def pinned_from_flags(args) -> dict[str, Any]:
    pinned = {name: getattr(args, dest) for dest, name in PINNING_FLAGS.items()
              if getattr(args, dest, None) is not None}
    pinned.update(flags.parse_hparams(flags.flag_value(args, TrainConfig, "hparams")))
    return pinned


def make_space(args, model: str, transform: str):
    from tuning.search_space import SearchSpace

    known = SearchSpace.known_names_of(model, transform)
    pinned = {k: v for k, v in pinned_from_flags(args).items() if k in known}  # others: base config
    fixed = {**pinned, **parse_assignments(args.fix, "--fix")}
    choices = parse_assignments(args.choices, "--choices", many=True)
    return SearchSpace.for_approach(model, transform, tune=args.tune, fixed=fixed, choices=choices)


def parse_assignments(items: Optional[list[str]], flag: str, many: bool = False) -> dict[str, Any]:
    """NAME=VALUE (``many``: NAME=V1,V2,...) strings to a dict; values parsed as JSON when they parse."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{flag} expects NAME=VALUE, got {item!r}")
        name, text = (s.strip() for s in item.split("=", 1))
        parts = [p.strip() for p in text.split(",")] if many else [text]
        parsed = [_json_or_text(p) for p in parts]
        out[name] = parsed if many else parsed[0]
    return out


def _json_or_text(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


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
    budget = (f"{base_train.epochs} epochs" if space.model_kind == "keras"
              else f"{args.cv_folds}-fold cross-validation by song")
    print(f"search: {space.model} on {space.transform} ({source}); tuner {args.tuner}, objective "
          f"{args.objective}, max {args.max_trials} trials, {budget}; role {role}")
    print("space:\n" + space.describe())
    if valid == 0:
        raise ConfigError("no valid combination of the pipeline hyperparameters; "
                          "check --choices/--fix (see --show-space)")
    if valid < total:
        print(f"  ({total - valid} of {total} pipeline combinations are invalid and never sampled)")


def check_objective_and_tuner(args, space) -> None:
    """Set the default objective of the approach's kind; ConfigError for one of the other kind,
    and for a grid over a continuous entry."""
    from tuning import DEFAULT_OBJECTIVE
    from tuning.estimator_search import SKLEARN_OBJECTIVES
    from tuning.search_space import discrete_values

    kind = space.model_kind
    args.objective = args.objective or DEFAULT_OBJECTIVE[kind]
    if (args.objective in SKLEARN_OBJECTIVES) != (kind == "sklearn"):
        raise ConfigError(f"--objective {args.objective} does not apply to {space.model} "
                          f"(a {kind} approach; its default is {DEFAULT_OBJECTIVE[kind]})")
    if args.tuner == "hyperband" and kind == "sklearn":
        raise ConfigError("hyperband allocates training epochs; a scikit-learn approach is "
                          "fitted once: use --tuner random, bayesian or grid")
    continuous = [n for n, e in space.entries.items() if discrete_values(e) is None]
    if args.tuner == "grid" and continuous:
        raise ConfigError(f"--tuner grid needs discrete values: give --choices or --fix for "
                          f"{', '.join(continuous)}")
    if args.cv_folds < 2:
        raise ConfigError("--cv-folds must be at least 2")


def run_search(args, project: Path, space, base, base_train, role: str):
    """The tuner over this project, searched (the chief serves, workers run trials)."""
    from tuning import tuners as tuners_lib
    from tuning.hypermodel import TrialHyperModel, make_objective

    if space.model_kind == "sklearn":
        return run_estimator_search(args, project, space, base, base_train)

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


def run_estimator_search(args, project: Path, space, base, base_train):
    """`run_search` for a scikit-learn approach: Keras Tuner's SklearnTuner, scored by song."""
    from tuning.estimator_search import EstimatorHyperModel, make_estimator_tuner

    hypermodel = EstimatorHyperModel(space, base, base_train, verbose=bool(args.verbose))
    tuner = make_estimator_tuner(
        args.tuner, hypermodel, objective=args.objective, max_trials=args.max_trials,
        seed=base.seed, cv_folds=args.cv_folds, directory=str(project.parent),
        project_name=project.name, num_initial_points=args.num_initial_points)
    for line in getattr(tuner.oracle, "repairs", None) or []:
        print(f"resume: {line}")
    tuner.search(verbose=args.verbose)
    return tuner


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.experiments.seeding import configure_determinism
    from tuning import keras_tuner_compat
    from tuning.roles import is_chief, is_worker

    if args.max_trials < 1:
        raise ConfigError("--max-trials must be at least 1")
    model, transform, source = resolve_approach(args)
    base, base_train = base_configs(args, model, transform)
    space = make_space(args, model, transform)
    check_objective_and_tuner(args, space)
    role = "worker" if is_worker() else "chief" if is_chief() else "standalone"
    describe_search(args, space, base, base_train, source, role)
    if args.show_space:
        return 0
    keras_tuner_compat.check_version()  # before anything is written
    configure_determinism(base_train.deterministic)
    project = project_dir_from_args(args)
    if role == "worker":  # the chief holds the project's lock; a worker only runs trials
        prepare_project(args, project, search_identity(args, space, base, base_train), role)
        tuner = run_search(args, project, space, base, base_train, role)
        print(f"worker {tuner.tuner_id}: no more trials; done")
        return 0
    from tuning.retrain import retrain_and_report
    from tuning.summary import write_summary

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

