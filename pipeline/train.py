"""`python -m pipeline.train`: train and evaluate one approach (transform x model).

Trains on the train split, keeps the epoch with the best validation accuracy, evaluates on the
test split at window and song level, and writes a run directory (see
pipeline/experiments/run_dir.py). Re-running the same command after an interruption resumes
from the last finished epoch; a finished run is reported, not retrained (--overwrite retrains).

An approach built on a pretrained network sets the pipeline it needs (--model musicnn: the
musicnn transform, 16 kHz, 2.976 s windows); a flag that contradicts it is refused.

--strategy multi-worker (TF_CONFIG names the cluster; every worker runs the same command):
the workers train one model together with the tf.distribute custom loop, the chief writes and
evaluates the run directory, the others keep only temporary checkpoints (docs/distributed.md).

--folds K: k-fold cross-validation by song. The songs of all splits are pooled into K
genre-stratified folds; each fold is trained and tested as a run of its own
(<run-dir>/fold_<i>, finished folds are reused) and the out-of-fold song accuracy is reported
with its spread across folds and a 95 % interval (<run-dir>/cv.json). --fold I trains fold I only.
--repeats R: every fold trained with R seeds (--seed, --seed + 1, ...; <run-dir>/repeat_<r>/fold_<i>,
<run-dir>/cv_repeats.json) for a seed-dependent (Keras) approach; the scikit-learn ones run once.
"""

from __future__ import annotations

import argparse

from core.config import DatasetConfig
from pipeline.cli import flags
from pipeline.cli.entry import run_cli


def default_run_dir(cfg, train, *, all_folds: bool = False) -> str:
    base = f"runs/{cfg.dataset.name}_{cfg.transform.name}_{train.model}"
    if not cfg.dataset.folds:
        return base
    return f"{base}_{cfg.dataset.folds}fold" + ("" if all_folds else f"/fold_{cfg.dataset.fold}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m pipeline.train --transform mfcc --model lstm --epochs 10\n"
        "  python -m pipeline.train --model musicnn --folds 5 --dataset-config gtzan",
    )
    parser.add_argument("--run-dir", help="output run directory (default: runs/<dataset>_<transform>_<model>)")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing run in --run-dir")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="0 silent, 1 progress bars, 2 one line per epoch")
    flags.add_pipeline_args(parser)
    flags.add_train_args(parser)
    flags.add_repeat_args(parser)
    return parser


def cross_validate(args, cfg, train) -> int:
    """--folds K without --fold: every fold, then the pooled out-of-fold figures."""
    from pipeline.experiments.crossval import CV_JSON, format_cv
    from pipeline.experiments.repeats import cross_validate_repeats, seeds_cell

    root = args.run_dir or default_run_dir(cfg, train, all_folds=True)
    summary = cross_validate_repeats(cfg, train, root, verbose=args.verbose,
                                     overwrite=args.overwrite,
                                     repeats=flags.repeat_config_from_args(args).repeats)
    print()
    print(format_cv(summary, f"{train.model} on {cfg.transform.name} - {cfg.dataset.name}, "
                             f"{cfg.dataset.folds}-fold cross-validation by song"))
    print(f"seeds: {seeds_cell(summary)}")
    print(f"folds: {root}/fold_<i>; figures: {root}/{CV_JSON}, {root}/confusion_matrix.png")
    return 0


def main(argv=None) -> int:
    args = flags.apply_approach_settings(build_parser().parse_args(argv))
    cfg = flags.pipeline_config_from_args(args).validate()
    train = flags.train_config_from_args(args).validate()
    flags.repeat_config_from_args(args)  # --repeats without --folds: refused before any work

    from pipeline.experiments.run_evaluation import format_summary
    from pipeline.experiments.keras_training import get_strategy, worker_suffix
    from pipeline.experiments.run_dir import RunDir
    from pipeline.experiments.seeding import configure_determinism
    from pipeline.experiments.training import check_trainable, train_run

    strategy = get_strategy(train.strategy)  # first: multi-worker sets up its cluster here
    check_trainable(cfg, train)  # unknown model or bad pair: before any work
    if cfg.dataset.folds and flags.flag_value(args, DatasetConfig, "fold") is None:
        configure_determinism(train.deterministic)
        return cross_validate(args, cfg, train)
    run_dir = (args.run_dir or default_run_dir(cfg, train)) + worker_suffix(strategy)
    if worker_suffix(strategy):  # a non-chief worker: trains in step, the chief writes the run
        from pipeline.experiments.distributed_training import train_worker

        configure_determinism(train.deterministic)
        train_worker(cfg, train, run_dir, strategy, verbose=args.verbose, overwrite=args.overwrite)
        return 0
    if not args.overwrite and RunDir(run_dir).is_evaluated():
        RunDir(run_dir).check_same_config(cfg, train)
        print(f"{run_dir} holds a finished run of this configuration: reporting it "
              "(--overwrite retrains)")
    configure_determinism(train.deterministic)
    result = train_run(cfg, train, run_dir, verbose=args.verbose, overwrite=args.overwrite,
                       strategy=strategy)
    from pipeline.experiments.distributed_training import finish_together

    finish_together(strategy)  # several workers: the others waited for this evaluation
    print()
    print(format_summary(result, f"{train.model} on {cfg.transform.name} - {cfg.dataset.name} test split"))
    print(f"run directory: {run_dir} (metrics.json, confusion_matrix.png, training_curves.png)")
    return 0


if __name__ == "__main__":
    run_cli(main)
