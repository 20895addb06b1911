"""`python -m pipeline.evaluate --run RUN [--split test]`: re-evaluate a trained run.

Rebuilds the pipeline from the run's config.json, so the features are computed exactly as in
training, and writes metrics[_<split>].json and confusion matrices into the run directory
(what training recorded, in training.json, is left as it is).
"""

from __future__ import annotations

import argparse

from core.config import SPLITS
from pipeline.cli.entry import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by pipeline.train")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--data-dir", "--data_dir", help="TFDS data dir (default: the run's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.experiments.run_evaluation import evaluate_run, format_summary
    from pipeline.experiments.predictor import Predictor
    from pipeline.experiments.run_dir import RunDir

    run = RunDir(args.run)
    predictor = Predictor.from_run(run.path)
    if args.data_dir:
        predictor.pipeline.dataset.data_dir = args.data_dir
    with run.lock():
        result = evaluate_run(run, args.split, predictor=predictor, verbose=not args.quiet)
    print(format_summary(result, f"{args.run}: {args.split} split"))
    return 0


if __name__ == "__main__":
    run_cli(main)
