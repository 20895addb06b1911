"""`python -m pipeline.predict FILE... --run RUN`: the genre of any audio file.

Each file (wav, au, mp3, ogg, flac; any rate, mono or stereo, any length of at least one window)
is decoded to 22,050 Hz mono as the dataset builder does, then resampled, windowed and
transformed by the pipeline code the run was trained with, streamed in batches so a long file
never has to fit in memory. Prints the top genres per file, or with --json one JSON object per
line; --plot draws the per-window genre timeline. A file that cannot be read is reported and the
others still run; the exit status is 1 if any file failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pipeline.cli import entry as cli_common


def predict_file(predictor, path, batch_size: int | None = None, *,
                 allow_truncated: bool = False) -> dict:
    """Window and song-level probabilities of one file.

    ``allow_truncated``: predict from the part of a truncated WAV/AU that is present (with a
    warning) instead of refusing the file.
    """
    from gtzan_tfds.audio_io import AudioDecodeError, read_audio
    from gtzan_tfds.constants import SAMPLE_RATE
    from pipeline.experiments import metrics
    from pipeline.stream.dataset import features_from_audio

    cfg = predictor.pipeline
    try:
        audio = read_audio(path, target_sr=SAMPLE_RATE, allow_truncated=allow_truncated)
    except AudioDecodeError as e:
        if e.reason.startswith("truncated"):
            raise AudioDecodeError.for_file(
                path, f"{e.reason} (--allow-truncated predicts from the part present)") from e
        raise
    probs = [predictor.predict_batch(x) for x in
             features_from_audio(audio, cfg, batch_size=batch_size or cfg.batch_size)]
    if not probs:
        raise AudioDecodeError(
            f"{path}: too short: {len(audio) / SAMPLE_RATE:.2f} s, the model needs at least one "
            f"{cfg.window.window_seconds:g} s window"
        )
    window_probs = np.concatenate(probs)
    song = metrics.mean_probability_vote(window_probs)
    names = predictor.class_names
    return {
        "file": str(path),
        "genre": names[int(song.argmax())],
        "majority_genre": names[metrics.majority_vote(window_probs)],
        "probabilities": {n: round(float(p), 6) for n, p in zip(names, song)},
        "window_seconds": cfg.window.window_seconds,
        "window_starts": [round(i * cfg.window.step_seconds, 3) for i in range(len(window_probs))],
        "window_probabilities": np.round(window_probs, 6).tolist(),
        "duration_seconds": round(len(audio) / SAMPLE_RATE, 3),
    }


def plot_path(template: str, path: Path, many: bool) -> Path:
    out = Path(template)
    return out.with_name(f"{out.stem}_{Path(path).stem}{out.suffix}") if many else out


def main(argv=None) -> int:
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
    args = parser.parse_args(argv)

    from gtzan_tfds.audio_io import AudioDecodeError
    from pipeline.experiments.predictor import Predictor

    predictor = Predictor.from_run(args.run)
    failed = 0
    for path in args.files:
        try:
            result = predict_file(predictor, path, allow_truncated=args.allow_truncated)
        except (AudioDecodeError, FileNotFoundError, OSError, ValueError) as e:
            failed += 1
            message = str(e) if str(path) in str(e) else f"{path}: {e}"
            print(f"error: {message}", file=sys.stderr)
            if args.json:
                print(json.dumps({"file": str(path), "error": message}), flush=True)
            continue
        if args.plot:
            from pipeline.experiments import plots

            out = plot_path(args.plot, path, len(args.files) > 1)
            plots.plot_timeline(
                result["window_probabilities"], result["window_starts"], result["window_seconds"],
                predictor.class_names, out, title=Path(path).name,
                mean_vote=result["genre"], majority_vote=result["majority_genre"],
            )
            result["plot"] = str(out)
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            top = sorted(result["probabilities"].items(), key=lambda kv: -kv[1])[: args.top]
            ranked = ", ".join(f"{g} {p:.0%}" for g, p in top)
            print(f"{path}: {result['genre']}  ({ranked}; {len(result['window_starts'])} window(s), "
                  f"majority vote: {result['majority_genre']})"
                  + (f"  timeline: {result['plot']}" if args.plot else ""))
    if failed:
        print(f"{failed} of {len(args.files)} files failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    cli_common.run_cli(main)
