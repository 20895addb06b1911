"""`python -m pipeline.compare`: every approach on the same data, seed and budget, in one report.

Trains the grid of transforms x models (invalid pairs skipped), reusing finished runs so a
re-run after an interruption only trains what is missing, and writes into one report directory:

    results.csv, results.md     approach, window/song accuracy, macro F1, training time, size
    accuracy.png                window and song accuracy of every approach, best first
    confusion_<approach>.png    song-level confusion matrices of the best approaches
    per_class.csv, per_class.md, per_class.png   per-genre song recall: easy and hard genres

--hparam KEY=VALUE applies to every approach that has the hyperparameter KEY.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from core.config import TRANSFORMS
from core.errors import ConfigError
from pipeline.cli import flags
from pipeline.cli.entry import run_cli

QUICK_PIPELINE = {"WindowConfig.window_seconds": 1.0, "WindowConfig.step_seconds": 1.0}
QUICK_TRAIN = {"TrainConfig.epochs": 2, "TrainConfig.pretrain_epochs": 1}


def build_parser() -> argparse.ArgumentParser:
    from pipeline.experiments.comparison import DEFAULT_MODELS

    parser = argparse.ArgumentParser(prog="python -m pipeline.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="approaches (default: all)")
    parser.add_argument("--transforms", nargs="+", default=list(TRANSFORMS), choices=TRANSFORMS,
                        help="transforms (default: all; invalid pairs are skipped)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="TRANSFORM:MODEL",
                        help="pairs to leave out of the grid, e.g. stft:lstm")
    parser.add_argument("--report-dir", default="reports/compare", help="where the report and runs go")
    parser.add_argument("--quick", action="store_true",
                        help="reduced grid, 2 epochs, 1 s windows on synthetic data (the tests use it)")
    parser.add_argument("--fresh", action="store_true", help="retrain runs even when finished")
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2), help="per-run Keras output")
    flags.add_pipeline_args(parser)
    flags.add_train_args(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:  # quick defaults apply only where the user gave no flag
        for key, value in {**QUICK_PIPELINE, **QUICK_TRAIN}.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    cfg = flags.pipeline_config_from_args(args).validate()
    train = flags.train_config_from_args(args).validate()

    from pipeline.experiments import comparison, report
    from pipeline.experiments.locking import FolderLock
    from pipeline.experiments.seeding import configure_determinism

    pairs = list(comparison.QUICK_GRID) if args.quick else comparison.grid(
        args.models, args.transforms, args.exclude)
    if not pairs:
        raise ConfigError("no valid (transform, model) pair in the requested grid")
    comparison.check_hparams_apply(pairs, train.hparams)
    report_dir = Path(args.report_dir)
    configure_determinism(train.deterministic)
    with FolderLock(report_dir, "comparison report"):
        if args.fresh and (report_dir / "runs").exists():
            shutil.rmtree(report_dir / "runs")
        print(f"{len(pairs)} approaches on {cfg.dataset.name}: "
              + ", ".join(comparison.approach_name(t, m) for t, m in pairs))
        results = comparison.run_grid(cfg, train, pairs, report_dir, verbose=args.verbose)
        print(report.write_report(results, report_dir, cfg.dataset.name))
    print(f"report: {report_dir}/results.md (+ results.csv, accuracy.png, per_class.png, confusion_*.png)")
    return 0


if __name__ == "__main__":
    run_cli(main)
