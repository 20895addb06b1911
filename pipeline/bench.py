"""`python -m pipeline.bench`: the librosa way vs this tf.data pipeline, on the same songs, in one run.

    python -m pipeline.bench --json bench.json                      # synthetic songs (built here)
    python -m pipeline.bench --dataset-config gtzan --manual-dir /path/to/gtzan_sample --json real.json
    python -m pipeline.bench --quick                                # < 2 minutes on 2 cores
    python -m pipeline.bench --gpu --json bench_gpu.json            # on a GPU machine
    python -m pipeline.bench build --config synthetic [--beam OPTIONS]   # one tfds build
    python -m pipeline.bench resample [--audio FILE_44K]                  # the decoder's resampler

Speed (pipeline/benchmark/throughput.py): librosa one window at a time, as the seed study did,
against the pipeline end to end (TFRecords -> int16 windows -> batches -> transform) with the
transform in tf.data or in the model, with and without XLA (--quick times the default only);
alternating rounds, each way's best round counts.  Then every transform (raw, fft, stft, mel,
mfcc, musicnn) against its librosa loop, with its FLOPs per window
and the fraction of the machine's FLOP limit reached (pipeline/benchmark/flops.py).
Stages (pipeline/benchmark/stages.py): where the time of the training stream goes.
Input stalls (pipeline/benchmark/stalls.py): the fraction of a real model.fit (cnn2d on mel,
default settings) spent waiting for the next batch.
Memory (pipeline/benchmark/memory.py): peak RSS streaming 1x and --rss-factor x the songs (in
one stream, each in a fresh process after the same warm-up). Exit status 1 when memory grows
more than 10 % or a training step waits for its batch more than 5 % of the time.
Resampling (pipeline/benchmark/resampling.py): this project's resampler and tensorflow-io's
(where it loads: `make venv-tfio`, TF 2.17) against librosa.resample (soxr_hq): time and SNR.
`build` and `resample` (pipeline/benchmark/build_bench.py): the builder's own figures.
GPU (--gpu, pipeline/benchmark/gpu.py): windows/s of every transform and placement on the GPU,
and a check that the transform ops run there; nothing else.

--json FILE writes: transform, songs, windows, librosa_windows_per_s, pipeline_windows_per_s
(data+xla), speedup, variants (every placement), transforms (per transform: windows/s, speedup,
FLOPs, fraction_of_peak, fraction_of_floor), machine (measured GFLOP/s), stages,
input_wait_fraction, peak_rss_mb_1x, peak_rss_mb_<N>x, rss_growth, device ("CPU" or
"GPU:<name>"), resample (ms per song and SNR of each resampler).

The dataset is a gtzan_tfds config (--dataset-config: `synthetic` by default, no download;
`gtzan` with --manual-dir), built on first use into --data-dir, or into a temporary directory that is
removed afterwards.

--transform musicnn: the musicnn approaches' pipeline (16 kHz, 2.976 s windows), and beside the
transform the whole feature path of the `musicnn` approach (transform + frozen pretrained
network, pipeline/benchmark/musicnn_features.py) in the same rounds: musicnn_windows_per_s in
the JSON; the memory check then streams that path.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from typing import Optional

from pipeline.benchmark import pipeline_bench
from pipeline.cli.deprecation import DeprecatedAlias
from pipeline.cli.entry import run_cli

SUBCOMMANDS = ("build", "resample")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transform", choices=pipeline_bench.TRANSFORMS, default="mel",
                        help="transform of the headline comparison (default: mel, the seed study's)")
    parser.add_argument("--dataset-config", default="synthetic",
                        help="gtzan_tfds config to read (default: synthetic, builds itself; "
                        "gtzan needs --manual-dir)")
    parser.add_argument("--dataset", action=DeprecatedAlias, dest="dataset_config",
                        help=argparse.SUPPRESS)
    parser.add_argument("--manual-dir", "--manual_dir", default=None,
                        help="a GTZAN download (or the 50-clip sample), to build --dataset-config gtzan")
    parser.add_argument("--data-dir", "--data_dir", default=None,
                        help="TFDS data dir (default: a temporary one, removed at the end)")
    parser.add_argument("--split", default="train", help="split to read (default: train)")
    parser.add_argument("--songs", type=int, default=None,
                        help="songs to time (default: 80, or 20 with --quick; fewer if the split has fewer)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="windows per batch in the pipeline (default: 64)")
    parser.add_argument("--rss-factor", type=int, default=10,
                        help="the memory check streams this many times the songs, compared with 1x "
                        "(default: 10)")
    parser.add_argument("--rss-repeats", type=int, default=None,
                        help="fresh processes per factor in the memory check; the lowest peak of "
                        "each counts (default: 1, or 3 with --transform musicnn, whose batch "
                        "activations make single peaks vary by about 15 %%)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer songs, default placement and headline transform only")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating timing rounds; each way's best counts (default: 3, or 2 with --quick)")
    parser.add_argument("--skip-rss", action="store_true", help="do not run the memory check")
    parser.add_argument("--skip-stalls", action="store_true", help="do not measure input stalls")
    parser.add_argument("--gpu", action="store_true",
                        help="GPU benchmark only: every transform and placement on the GPU")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--child-repeat", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def build_builder_parser() -> argparse.ArgumentParser:
    from pipeline.benchmark import build_bench

    parser = argparse.ArgumentParser(prog="python -m pipeline.bench",
                                     description=build_bench.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    res = sub.add_parser("resample", help="time and SNR of the decoder's resampler")
    res.add_argument("--audio", help="a 44.1 kHz audio file (default: a synthetic song)")
    res.add_argument("--tfio", action="store_true",
                     help="instead: the pipeline's resampler, tensorflow-io's (where its ops "
                     "load: `make venv-tfio`, TF 2.17) and librosa's, 22.05 -> 11.025 / 16 kHz")
    bld = sub.add_parser("build", help="songs/s and peak memory of one tfds build")
    bld.add_argument("--config", required=True, help="config name or JSON, as for tfds build")
    bld.add_argument("--beam", help="--beam_pipeline_options for tfds build (default: no Beam)")
    bld.add_argument("--manual-dir", help="--manual_dir for tfds build")
    bld.add_argument("--data-dir", help="where to build and log (tfds_build.log); default: a "
                     "temporary dir, removed")
    bld.add_argument("--max-rss-gib", type=float,
                     help="stop the build when its processes hold more memory than this")
    return parser


def builder_main(argv: list[str]) -> int:
    from pipeline.benchmark import build_bench

    args = build_builder_parser().parse_args(argv)
    if args.command == "resample" and args.tfio:
        from pipeline.benchmark import resampling

        print(resampling.resample_table(resampling.run_resample(resampling.synthetic_songs(),
                                                                22_050)))
        return 0
    if args.command == "resample":
        print(json.dumps(build_bench.resample_figures(args.audio)))
        return 0
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="gtzan_bench_")
    try:
        print(json.dumps(build_bench.build_figures(args.config, args.beam, data_dir,
                                                   args.manual_dir, args.max_rss_gib)))
    finally:
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        return builder_main(argv)
    args = build_parser().parse_args(argv)
    args.songs = args.songs or (20 if args.quick else 80)
    args.rounds = args.rounds or (2 if args.quick else 3)
    if args.child_repeat:
        return pipeline_bench.child(args)
    temp_dir = None
    if args.data_dir is None:
        temp_dir = args.data_dir = tempfile.mkdtemp(prefix="gtzan_bench_")
    try:
        if args.gpu:
            return 0 if pipeline_bench.run_gpu_bench(args)["gpu_ops_on_gpu"] else 1
        result = pipeline_bench.run(args)
        pipeline_bench.report(args, result)
    finally:
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)
    return pipeline_bench.exit_status(result)


if __name__ == "__main__":
    run_cli(main)
