"""`python -m pipeline.bench`: the librosa way vs this tf.data pipeline, on the same songs, in one run.

    python -m pipeline.bench --quick --json bench.json

Speed (pipeline/benchmark/throughput.py): librosa one window at a time, as the seed study did,
against the pipeline end to end (TFRecords -> int16 windows -> batches -> transform) with the
transform in tf.data or in the model, with and without XLA (--quick times the default only);
alternating rounds, each way's best round counts.
Memory (pipeline/benchmark/memory.py): peak RSS streaming 1x and --rss-factor x the songs (in
one stream, each in a fresh process); more than 10 % growth fails the benchmark (exit 1).
Resampling (pipeline/benchmark/resampling.py): this project's resampler and tensorflow-io's
against librosa.resample (soxr_hq): time and SNR.

--json FILE writes: transform, songs, windows, librosa_windows_per_s, pipeline_windows_per_s
(data+xla), speedup, variants (every placement), peak_rss_mb_1x, peak_rss_mb_<N>x, rss_growth,
device ("CPU" or "GPU:<name>"), resample (ms per song and SNR of each resampler).

--transform musicnn: the musicnn approaches' pipeline (16 kHz, 2.976 s windows), and beside the
transform the whole feature path of the `musicnn` approach (transform + frozen pretrained
network, pipeline/benchmark/musicnn_features.py) in the same rounds: musicnn_windows_per_s in
the JSON; the memory check then streams that path.

The dataset is the gtzan_tfds `synthetic` config (no download), built on first use into
--data-dir, or into a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from typing import Any, Optional

from core.config import TRANSFORMS, DatasetConfig, PipelineConfig, TransformConfig
from pipeline.cli.entry import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transform", choices=TRANSFORMS, default="mel",
                        help="transform to time (default: mel, the seed study's)")
    parser.add_argument("--dataset", default="synthetic",
                        help="gtzan_tfds config to read (default: synthetic, builds itself)")
    parser.add_argument("--data-dir", default=None,
                        help="TFDS data dir (default: a temporary one, removed at the end)")
    parser.add_argument("--split", default="train", help="split to read (default: train)")
    parser.add_argument("--songs", type=int, default=None,
                        help="songs to time (default: 80, or 20 with --quick)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="windows per batch in the pipeline (default: 64)")
    parser.add_argument("--rss-factor", type=int, default=10,
                        help="the memory check streams this many times the songs, compared with 1x "
                        "(default: 10)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer songs, default placement only: under a minute on 2 cores")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating timing rounds; each way's best counts (default: 3, or 2 with --quick)")
    parser.add_argument("--skip-rss", action="store_true", help="do not run the memory check")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--child-repeat", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def make_cfg(args, placement: str = "data") -> PipelineConfig:
    from pipeline.benchmark.musicnn_features import musicnn_window

    cfg = PipelineConfig(dataset=DatasetConfig(name=args.dataset, data_dir=args.data_dir),
                         transform=TransformConfig(name=args.transform),
                         batch_size=args.batch_size, transform_placement=placement)
    return musicnn_window(cfg) if args.transform == "musicnn" else cfg.validate()


def _device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU:{details.get('device_name', gpus[0].name)}"


def _child_argv(args) -> list[str]:
    return ["--data-dir", args.data_dir, "--dataset", args.dataset, "--split", args.split,
            "--songs", str(args.songs), "--transform", args.transform,
            "--batch-size", str(args.batch_size)]


def run(args) -> dict[str, Any]:
    from pipeline.benchmark import memory, musicnn_features, resampling, throughput
    from pipeline.stream.dataset import ensure_built, load_songs

    cfg = make_cfg(args)
    t0 = time.perf_counter()
    ensure_built(cfg.dataset)
    print(f"dataset gtzan_tfds/{args.dataset} ready in {args.data_dir} ({time.perf_counter() - t0:.1f} s)", flush=True)
    songs_ds = load_songs(cfg.dataset, args.split).take(args.songs)
    songs_fn = lambda: songs_ds.as_numpy_iterator()  # noqa: E731  (the same songs, as numpy)
    variants = list(throughput.VARIANTS)[:1] if args.quick else list(throughput.VARIANTS)
    passes = {"librosa": throughput.librosa_pass(cfg, songs_fn)}
    for label in variants:
        placement, jit = throughput.VARIANTS[label]
        passes[label] = throughput.pipeline_pass(make_cfg(args, placement), songs_ds, jit_compile=jit)
    if args.transform == "musicnn":
        passes[musicnn_features.LABEL] = musicnn_features.feature_pass(cfg, songs_ds)
    speeds = throughput.compare(passes, args.rounds, log=lambda m: print(m, flush=True))
    lib, default = speeds.pop("librosa"), speeds[variants[0]]
    if default["windows"] != lib["windows"]:
        raise RuntimeError(f"window counts differ: librosa {lib['windows']}, pipeline {default['windows']}")
    result = {"transform": args.transform, "device": _device(), "batch_size": args.batch_size,
              "cpu_count": os.cpu_count(), "songs": args.songs, "windows": lib["windows"],
              "librosa_windows_per_s": lib["windows_per_s"],
              "pipeline_windows_per_s": default["windows_per_s"],
              "speedup": default["windows_per_s"] / lib["windows_per_s"],
              "librosa_windows_per_cpu_s": lib["windows_per_cpu_s"],
              "pipeline_windows_per_cpu_s": default["windows_per_cpu_s"], "variants": speeds,
              "speed_table": throughput.speed_table({"librosa": lib, **speeds})}
    if musicnn_features.LABEL in speeds:
        result["musicnn_windows_per_s"] = speeds[musicnn_features.LABEL]["windows_per_s"]
    if not args.skip_rss:
        print(f"memory: streaming 1x and {args.rss_factor}x the songs, each in a fresh process ...", flush=True)
        result.update(memory.compare_rss(_child_argv(args), args.rss_factor))
    songs = [s["audio"] for _, s in zip(range(2 if args.quick else 5), songs_fn())]
    print(f"resampling {len(songs)} songs ...", flush=True)
    result["resample"] = resampling.run_resample(songs, cfg.window.sample_rate)
    return result


def report(args, result: dict[str, Any]) -> None:
    from pipeline.benchmark.memory import rss_line
    from pipeline.benchmark.resampling import resample_table

    print(f"\n{args.transform} on {args.songs} songs of gtzan_tfds/{args.dataset}, device "
          f"{result['device']}, {result['cpu_count']} CPUs, batch {args.batch_size}")
    print(result.pop("speed_table"))
    if "rss_growth" in result:
        print(rss_line(result))
    print(resample_table(result["resample"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    args.songs = args.songs or (20 if args.quick else 80)
    args.rounds = args.rounds or (2 if args.quick else 3)
    if args.child_repeat:
        from pipeline.benchmark.memory import child_main
        from pipeline.stream.dataset import load_songs

        from pipeline.benchmark.musicnn_features import feature_pass

        cfg = make_cfg(args)
        return child_main(cfg, load_songs(cfg.dataset, args.split).take(args.songs),
                          args.child_repeat, feature_pass if args.transform == "musicnn" else None)
    temp_dir = None
    if args.data_dir is None:
        temp_dir = args.data_dir = tempfile.mkdtemp(prefix="gtzan_bench_")
    try:
        result = run(args)
        report(args, result)
    finally:
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)
    return 0 if result.get("rss_within_tolerance", True) else 1


if __name__ == "__main__":
    run_cli(main)
