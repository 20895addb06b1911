"""`python -m pipeline.export --run RUN --out DIR`: a trained run as one self-contained SavedModel.

The SavedModel takes raw mono audio (float32 samples, shape [n]) and its sample rate (int32
scalar: 8000, 11025, 16000, 22050, 24000, 32000, 44100 or 48000 Hz) and returns the genre
probabilities of every window, the song's probabilities (mean over windows), the top genre and
the class names.  Resampling, windowing and the transform run inside the graph, traced from the
code the run was trained with, so TF Serving, a notebook or another program needs TensorFlow
only (``tf.saved_model.load(DIR)``).  Stereo audio is mixed down by the caller (mean of the
channels); audio shorter than one window is refused ("too short"), as pipeline.predict does.

--tflite also writes DIR/window_model.tflite: a batch of windows (or features, when the
transform does not convert) in, probabilities out.  Keras runs, and the musicnn probe (its
logistic regression becomes a Dense layer after the frozen network); the other scikit-learn
runs (svc, rf, the musicnn SVC probe) cannot be exported this way.  See docs/export.md.
"""

from __future__ import annotations

import argparse

from pipeline.cli.entry import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by pipeline.train")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="SavedModel directory to write (for TF Serving: MODELS/NAME/1)")
    parser.add_argument("--tflite", action="store_true",
                        help="also write DIR/window_model.tflite (the window-level part)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DIR")
    parser.add_argument("--check", nargs="+", metavar="AUDIO",
                        help="then run the export on these files: differences to pipeline.predict "
                             "and median latency (of --repeats calls)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per --check file")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.serving.exporting import export_run

    info = export_run(args.run, args.out, overwrite=args.overwrite, tflite=args.tflite)
    print(f"{args.out}: SavedModel of {info['approach']} ({info['pipeline']['transform']['name']}), "
          f"{info['saved_model_bytes'] / 1e6:.1f} MB; signature serving_default(audio, sample_rate)")
    if "tflite" in info:
        t = info["tflite"]
        print(f"{args.out}/{t['file']}: {t['input']} {t['input_shape']} in, probabilities out; "
              f"ops: {t['ops']}; {t['bytes'] / 1e6:.2f} MB")
        for failure in t["not_converted"]:  # the converter logs its own error for these
            print(f"  (tried first, did not convert: {failure})")
    if args.check:
        from pipeline.serving.checking import check_export, format_rows

        print(format_rows(check_export(args.out, args.run, args.check, args.repeats)))
    return 0


if __name__ == "__main__":
    run_cli(main)
