"""`python -m pipeline.compare`: every approach on the same data, seed and budget, in one report.

Trains the grid of transforms x models (invalid pairs skipped), reusing finished runs so a
re-run after an interruption only trains what is missing, and writes into one report directory:

    results.csv, results.md     approach, window/song accuracy, macro F1, training time, size
    accuracy.png                window and song accuracy of every approach, best first
    confusion_<approach>.png    song-level confusion matrices of the best approaches
    per_class.csv, per_class.md, per_class.png   per-genre song recall: easy and hard genres

--hparam KEY=VALUE applies to every approach that has the hyperparameter KEY.

Approaches built on the pretrained musicnn networks (musicnn, musicnn_finetune: in the default
grid when the musicnn wheel is installed) take only the musicnn transform and bring its
pipeline (16 kHz, 2.976 s windows); a pipeline flag that contradicts it is refused for a model
named in --models, and leaves that model out of the default grid (with a note).

--folds K: k-fold cross-validation by song of every approach on the same folds
(runs/<transform>_<model>/fold_<i>); the report gives the out-of-fold song accuracy, its
spread across folds, its 95 % interval and the number of songs (crossval_report.py).

--ensemble MODEL MODEL ... (with --folds): one more row, the late fusion of those approaches
(scikit-learn ones: musicnn, rf, svc), its weights chosen per fold by an inner
cross-validation on that fold's training songs only, and its paired test against the best
single approach (pipeline/experiments/ensemble.py).

--repeats R (with --folds): every fold of a seed-dependent (Keras) approach trained with R seeds
(runs/<transform>_<model>/repeat_<r>/fold_<i>), the table showing the spread across seeds
beside the spread across folds (pipeline/experiments/repeats.py).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from core.config import TRANSFORMS, DatasetConfig
from core.errors import ConfigError
from pipeline.cli import flags
from pipeline.cli.entry import run_cli

QUICK_PIPELINE = {"WindowConfig.window_seconds": 1.0, "WindowConfig.step_seconds": 1.0}
QUICK_TRAIN = {"TrainConfig.epochs": 2, "TrainConfig.pretrain_epochs": 1}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None,
                        help="approaches (default: all; the musicnn ones when installed)")
    parser.add_argument("--transforms", nargs="+", default=list(TRANSFORMS), choices=TRANSFORMS,
                        help="transforms (default: all; invalid pairs are skipped)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="TRANSFORM:MODEL",
                        help="pairs to leave out of the grid, e.g. stft:lstm")
    parser.add_argument("--report-dir", default="reports/compare", help="where the report and runs go")
    parser.add_argument("--quick", action="store_true",
                        help="reduced grid, 2 epochs, 1 s windows on synthetic data (the tests use it)")
    parser.add_argument("--fresh", action="store_true", help="retrain runs even when finished")
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2), help="per-run Keras output")
    parser.add_argument("--ensemble", nargs="+", default=None, metavar="MODEL",
                        help="with --folds: add the late fusion of these approaches of the grid "
                        "(MODEL or TRANSFORM:MODEL, scikit-learn ones), its weights chosen out of "
                        "fold on each fold's training songs")
    flags.add_pipeline_args(parser)
    flags.add_train_args(parser)
    flags.add_repeat_args(parser)
    return parser


def make_jobs(args, pairs, explicit_models: bool) -> list:
    """One job per pair, each with its model's configs; a pair whose model cannot take the
    flags is a ConfigError when the model was named, else left out with a note."""
    from pipeline.experiments import comparison_runs

    all_folds = flags.flag_value(args, DatasetConfig, "fold") is None
    jobs = []
    for transform, model in pairs:
        try:
            model_args = flags.apply_approach_settings(args, model)
            jobs.append(comparison_runs.make_job(
                transform, model, flags.pipeline_config_from_args(model_args),
                flags.train_config_from_args(model_args), all_folds=all_folds))
        except ConfigError as e:
            if explicit_models:
                raise ConfigError(f"{comparison_runs.approach_name(transform, model)}: {e}") from e
            print(f"note: {comparison_runs.approach_name(transform, model)} left out of the default "
                  f"grid: {e}")
    return jobs


def _add_ensemble(args, jobs, results: list, report_dir: Path) -> str:
    """With --ensemble: its cross-validated summary appended to ``results``; returns its
    paired comparison with the best single approach ("" without --ensemble)."""
    from pipeline.experiments import ensemble

    names = ensemble.optional_names(args.ensemble)
    if not names:
        return ""
    summary, root = ensemble.cross_validate_ensemble(jobs, names, report_dir, args.verbose)
    results.append((summary, root))
    return ensemble.paired_with_best_single(results, summary)


def _append_note(report_dir: Path, note: str) -> None:
    from core.files import write_text_atomic

    results_md = report_dir / "results.md"
    write_text_atomic(results_md, results_md.read_text() + "\n" + note + "\n")
    print("\n" + note)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:  # quick defaults apply only where the user gave no flag
        for key, value in {**QUICK_PIPELINE, **QUICK_TRAIN}.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    cfg = flags.pipeline_config_from_args(args).validate()
    train = flags.train_config_from_args(args).validate()
    repeats = flags.repeat_config_from_args(args).repeats  # refused without --folds

    from pipeline.experiments import comparison_runs, crossval_report, comparison_report
    from pipeline.experiments.locking import FolderLock
    from pipeline.experiments.seeding import configure_determinism

    pairs = list(comparison_runs.QUICK_GRID) if args.quick else comparison_runs.grid(
        args.models or comparison_runs.default_models(), args.transforms, args.exclude)
    if not pairs:
        raise ConfigError("no valid (transform, model) pair in the requested grid")
    comparison_runs.check_hparams_apply(pairs, train.hparams)
    jobs = make_jobs(args, pairs, explicit_models=args.models is not None)
    if not jobs:
        raise ConfigError("no approach of the grid can run with these flags")
    if args.ensemble:  # refused before any training
        from pipeline.experiments.ensemble import check_members, optional_names

        check_members(jobs, optional_names(args.ensemble))
    report_dir = Path(args.report_dir)
    configure_determinism(train.deterministic)
    with FolderLock(report_dir, "comparison report"):
        if args.fresh and (report_dir / "runs").exists():
            shutil.rmtree(report_dir / "runs")
        print(f"{len(jobs)} approaches on {cfg.dataset.name}: "
              + ", ".join(comparison_runs.approach_name(j.transform, j.model) for j in jobs))
        results = comparison_runs.run_grid(jobs, report_dir, verbose=args.verbose,
                                           repeats=repeats)
        ensemble_note = _add_ensemble(args, jobs, results, report_dir)
        if jobs and jobs[0].all_folds:
            print(crossval_report.write_cv_report(results, report_dir, cfg.dataset.name))
            if ensemble_note:
                _append_note(report_dir, ensemble_note)
        else:
            print(comparison_report.write_report(results, report_dir, cfg.dataset.name))
    print(f"report: {report_dir}/results.md (+ results.csv, accuracy.png, per_class.png, confusion_*.png)")
    return 0


if __name__ == "__main__":
    run_cli(main)
