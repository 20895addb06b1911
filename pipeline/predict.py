"""`python -m pipeline.predict FILE... --run RUN`: the genre of any audio file.

Each file (wav, au, mp3, ogg, flac; any rate, mono or stereo, any length of at least one window)
is decoded to 22,050 Hz mono as the dataset builder does, then resampled, windowed and
transformed by the pipeline code the run was trained with, all streamed: the file is decoded,
resampled and predicted block by block, so memory does not grow with its length (a 3-hour file
needs about what a 30 s one does; --max-audio-seconds refuses longer files if you want). Prints the top genres per file, or with --json one JSON object per
line; --plot draws the per-window genre timeline. A file that cannot be read is reported and the
others still run; the exit status is 1 if any file failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli.entry import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    parser.add_argument("--run", required=True, help="run directory written by pipeline.train")
    parser.add_argument("--json", action="store_true", help="one JSON object per file per line")
    parser.add_argument("--top", type=int, default=3, help="genres to print per file")
    parser.add_argument("--allow-truncated", action="store_true",
                        help="predict a truncated WAV/AU file from the part present (refused by default)")
    parser.add_argument("--plot", metavar="PNG",
                        help="write the per-window genre timeline (FILE stem appended with several files)")
    from core.config import PredictConfig
    from pipeline.cli.flags import add_dataclass_args

    add_dataclass_args(parser, PredictConfig, "limits")
    return parser


def plot_path(template: str, path: Path, many: bool) -> Path:
    out = Path(template)
    return out.with_name(f"{out.stem}_{Path(path).stem}{out.suffix}") if many else out


def _plot(result: dict, predictor, out: Path) -> None:
    from pipeline.experiments import plots

    plots.plot_timeline(
        result["window_probabilities"], result["window_starts"], result["window_seconds"],
        predictor.class_names, out, title=Path(result["file"]).name,
        mean_vote=result["genre"], majority_vote=result["majority_genre"],
    )


def _line(result: dict, top: int) -> str:
    best = sorted(result["probabilities"].items(), key=lambda kv: -kv[1])[:top]
    ranked = ", ".join(f"{g} {p:.0%}" for g, p in best)
    return (f"{result['file']}: {result['genre']}  ({ranked}; {len(result['window_starts'])} "
            f"window(s), majority vote: {result['majority_genre']})"
            + (f"  timeline: {result['plot']}" if "plot" in result else ""))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from core.errors import AudioDecodeError
    from pipeline.experiments.file_prediction import predict_file
    from pipeline.experiments.predictor import Predictor

    from core.config import PredictConfig
    from pipeline.cli.flags import config_from_args

    limits = config_from_args(args, PredictConfig).validate()
    predictor = Predictor.from_run(args.run)
    failed = 0
    for path in args.files:
        try:
            result = predict_file(predictor, path, allow_truncated=args.allow_truncated,
                                  max_seconds=limits.max_audio_seconds)
        except AudioDecodeError as e:  # this file is bad; the others still run
            failed += 1
            print(f"error: {e}", file=sys.stderr)
            if args.json:
                print(json.dumps({"file": str(path), "error": str(e)}), flush=True)
            continue
        if args.plot:
            result["plot"] = str(plot_path(args.plot, path, len(args.files) > 1))
            _plot(result, predictor, Path(result["plot"]))
        print(json.dumps(result) if args.json else _line(result, args.top), flush=True)
    if failed:
        print(f"{failed} of {len(args.files)} files failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    run_cli(main)
