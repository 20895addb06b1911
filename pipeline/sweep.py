"""`python -m pipeline.sweep`: how the transform's parameters change accuracy, k-fold by song.

Runs every approach of the grid (--models x --transforms, as `pipeline.compare`) at every
setting of the --sweep axes, each setting with the k-fold song-level evaluation (--folds K,
default 5) and, with --repeats R, R seeds per fold where the approach depends on the seed:

    python -m pipeline.sweep --dataset-config gtzan --manual-dir ~/gtzan --folds 5 \\
        --models svc rf --transforms mfcc --sweep n_mfcc=13,20,40 --sweep hop_length=256,512,1024

--sweep-grid product (default) runs every combination of the axes; one-at-a-time varies each
axis alone, the other parameters at the flags' values. Sweepable: window_seconds,
step_seconds, sample_rate, n_fft, hop_length, win_length, n_mels, fmin, fmax, n_mfcc. A
parameter an approach does not use (n_mels for musicnn, n_mfcc for mel) is not varied for it.
Settings that cannot run (n_mels > n_fft/2+1, hop > n_fft, a window shorter than n_fft, ...)
are skipped and listed with the reason. Finished runs are reused (report-dir/runs/<transform>_
<model>/<setting>/fold_<i>): a killed sweep resumes where it stopped; --report-only writes the
report of what has finished so far without training.

Report (--report-dir): sweep.md and sweep.csv (accuracy per setting with its 95 % interval,
fold and seed spread, the paired test against the approach's best setting, and the time and
frequency resolution of each setting: ms per frame, FFT window in ms, Hz per bin, mel bands,
MFCC), the parameters that moved the accuracy, and sweep_<parameter>.png plots.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import ConfigError
from pipeline import compare
from pipeline.cli import flags
from pipeline.cli.entry import run_cli

DEFAULT_FOLDS = 5


def build_parser() -> argparse.ArgumentParser:
    parser = compare.build_parser()  # the grid, data, pipeline, training and --repeats flags
    parser.prog = "python -m pipeline.sweep"
    parser.description = __doc__
    parser.set_defaults(report_dir="reports/sweep")
    parser.add_argument("--sweep", action="append", default=None, metavar="NAME=V1,V2,...",
                        help="a swept parameter and its values (repeatable: one per parameter)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the report from the finished runs, train nothing (the "
                        "settings not run yet are listed as such)")
    flags.add_sweep_args(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        raise ConfigError("--quick is compare's smoke grid; give the sweep its own flags")
    if getattr(args, "DatasetConfig.folds") is None:
        setattr(args, "DatasetConfig.folds", DEFAULT_FOLDS)
    if getattr(args, "DatasetConfig.fold") is not None:
        raise ConfigError("a sweep cross-validates every fold: leave --fold out")
    cfg = flags.pipeline_config_from_args(args).validate()
    train = flags.train_config_from_args(args).validate()
    repeats = flags.repeat_config_from_args(args).repeats
    grid = flags.sweep_config_from_args(args).sweep_grid

    from pipeline.experiments import comparison_runs, sweep, sweep_report
    from pipeline.experiments.locking import FolderLock
    from pipeline.experiments.seeding import configure_determinism

    axes = sweep.parse_axes(args.sweep)
    pairs = comparison_runs.grid(args.models or comparison_runs.default_models(), args.transforms,
                            args.exclude)
    if not pairs:
        raise ConfigError("no valid (transform, model) pair in the requested grid")
    comparison_runs.check_hparams_apply(pairs, train.hparams)
    jobs = compare.make_jobs(args, pairs, explicit_models=args.models is not None)
    cells = sweep.plan(jobs, axes, grid)
    report_dir = Path(args.report_dir)
    configure_determinism(train.deterministic)
    with FolderLock(report_dir, "sweep report"):
        print(f"{sum(not c.skipped for c in cells)} settings to run ({len(cells)} planned) "
              f"on {cfg.dataset.name}, {cfg.dataset.folds}-fold, {grid} grid")
        sweep.run_cells(cells, report_dir, repeats=repeats, verbose=args.verbose,
                        report_only=args.report_only)
        print(sweep_report.write_sweep_report(cells, list(axes), report_dir, cfg.dataset.name,
                                              grid))
    print(f"report: {report_dir}/sweep.md (+ sweep.csv, sweep_<parameter>.png)")
    return 0


if __name__ == "__main__":
    run_cli(main)
