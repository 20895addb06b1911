"""`python -m pipeline.evaluate --run RUN [--split test]`: re-evaluate a saved run.

Rebuilds the pipeline from the run's config.json, so the features are computed exactly as in
training, and writes metrics[_<split>].json and confusion matrices into the run directory.
"""

from __future__ import annotations

import argparse

from pipeline.cli import entry as cli_common
from core.config import SPLITS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by pipeline.train")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--data-dir", "--data_dir", help="TFDS data dir (default: the run's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from pipeline.experiments.predictor import Predictor, evaluate_split, format_summary, write_evaluation
    from pipeline.experiments.run_dir import RunDir

    predictor = Predictor.from_run(args.run)
    if args.data_dir:
        predictor.pipeline.stream.dataset.data_dir = args.data_dir
    result = evaluate_split(predictor, args.split, verbose=not args.quiet)
    train = predictor.train
    write_evaluation(RunDir(args.run), args.split, result,
                     f"{train.model} on {predictor.pipeline.transform.name}")
    print(format_summary(result, f"{args.run}: {args.split} split"))
    return 0


if __name__ == "__main__":
    cli_common.run_cli(main)
