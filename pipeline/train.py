"""`python -m pipeline.train`: train and evaluate one approach (transform x model).

Trains on the train split, keeps the epoch with the best validation accuracy, evaluates on the
test split at window and song level, and writes a run directory (see
pipeline/experiments/run_dir.py). Re-running the same command after an interruption resumes
from the last finished epoch; a finished run is reported, not retrained (--overwrite retrains).
"""

from __future__ import annotations

import argparse

from pipeline.cli import flags
from pipeline.cli.entry import run_cli


def default_run_dir(cfg, train) -> str:
    return f"runs/{cfg.dataset.name}_{cfg.transform.name}_{train.model}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python -m pipeline.train --transform mfcc --model lstm --epochs 10",
    )
    parser.add_argument("--run-dir", help="output run directory (default: runs/<dataset>_<transform>_<model>)")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing run in --run-dir")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="0 silent, 1 progress bars, 2 one line per epoch")
    flags.add_pipeline_args(parser)
    flags.add_train_args(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cfg = flags.pipeline_config_from_args(args).validate()
    train = flags.train_config_from_args(args).validate()

    from pipeline.experiments.evaluation import format_summary
    from pipeline.experiments.keras_training import get_strategy, worker_suffix
    from pipeline.experiments.run_dir import RunDir
    from pipeline.experiments.seeding import configure_determinism
    from pipeline.experiments.training import check_trainable, train_run

    strategy = get_strategy(train.strategy)  # first: multi-worker sets up its cluster here
    check_trainable(cfg, train)  # unknown model or bad pair: before any work
    run_dir = (args.run_dir or default_run_dir(cfg, train)) + worker_suffix(strategy)
    if not args.overwrite and RunDir(run_dir).is_evaluated():
        RunDir(run_dir).check_same_config(cfg, train)
        print(f"{run_dir} holds a finished run of this configuration: reporting it "
              "(--overwrite retrains)")
    configure_determinism(train.deterministic)
    result = train_run(cfg, train, run_dir, verbose=args.verbose, overwrite=args.overwrite,
                       strategy=strategy)
    print()
    print(format_summary(result, f"{train.model} on {cfg.transform.name} - {cfg.dataset.name} test split"))
    print(f"run directory: {run_dir} (metrics.json, confusion_matrix.png, training_curves.png)")
    return 0


if __name__ == "__main__":
    run_cli(main)
