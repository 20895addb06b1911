"""`python -m pipeline.bench`: the librosa way vs this tf.data pipeline, on the same songs, in one run.

    python -m pipeline.bench --json bench.json                      # synthetic songs (built here)
    python -m pipeline.bench --dataset gtzan --manual-dir /path/to/gtzan_sample --json real.json
    python -m pipeline.bench --quick                                # < 2 minutes on 2 cores
    python -m pipeline.bench --gpu --json bench_gpu.json            # on a GPU machine

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
one stream, each in a fresh process after the same warm-up); more than 10 % growth fails the
benchmark (exit 1).
Resampling (pipeline/benchmark/resampling.py): this project's resampler and tensorflow-io's
against librosa.resample (soxr_hq): time and SNR.
GPU (--gpu, pipeline/benchmark/gpu.py): windows/s of every transform and placement on the GPU,
and a check that the transform ops run there; nothing else.

--json FILE writes: transform, songs, windows, librosa_windows_per_s, pipeline_windows_per_s
(data+xla), speedup, variants (every placement), transforms (per transform: windows/s, speedup,
FLOPs, fraction_of_peak, fraction_of_floor), machine (measured GFLOP/s), stages,
input_wait_fraction, peak_rss_mb_1x, peak_rss_mb_<N>x, rss_growth, device ("CPU" or
"GPU:<name>"), resample (ms per song and SNR of each resampler).

The dataset is a gtzan_tfds config (`synthetic` by default, no download; `gtzan` with
--manual-dir), built on first use into --data-dir, or into a temporary directory that is
removed afterwards.

--transform musicnn: the musicnn approaches' pipeline (16 kHz, 2.976 s windows), and beside the
transform the whole feature path of the `musicnn` approach (transform + frozen pretrained
network, pipeline/benchmark/musicnn_features.py) in the same rounds: musicnn_windows_per_s in
the JSON; the memory check then streams that path.
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

TRANSFORMS = ("raw", "fft", "stft", "mel", "mfcc", "musicnn")  # each with a librosa twin


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transform", choices=TRANSFORMS, default="mel",
                        help="transform of the headline comparison (default: mel, the seed study's)")
    parser.add_argument("--dataset", default="synthetic",
                        help="gtzan_tfds config to read (default: synthetic, builds itself; "
                        "gtzan needs --manual-dir)")
    parser.add_argument("--manual-dir", "--manual_dir", default=None,
                        help="a GTZAN download (or the 50-clip sample), to build --dataset gtzan")
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


def make_cfg(args, placement: str = "data", transform: Optional[str] = None,
             batch_size: Optional[int] = None) -> PipelineConfig:
    from pipeline.benchmark.musicnn_features import musicnn_window

    cfg = PipelineConfig(
        dataset=DatasetConfig(name=args.dataset, data_dir=args.data_dir, manual_dir=args.manual_dir),
        transform=TransformConfig(name=transform or args.transform),
        batch_size=batch_size or args.batch_size, transform_placement=placement)
    return musicnn_window(cfg) if cfg.transform.name == "musicnn" else cfg.validate()


def _device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU:{details.get('device_name', gpus[0].name)}"


def _child_argv(args) -> list[str]:
    argv = ["--data-dir", args.data_dir, "--dataset", args.dataset, "--split", args.split,
            "--songs", str(args.songs), "--transform", args.transform,
            "--batch-size", str(args.batch_size)]
    return argv + (["--manual-dir", args.manual_dir] if args.manual_dir else [])


def _log(message: str) -> None:
    print(message, flush=True)


def headline(args, songs_ds, songs_fn) -> dict[str, Any]:
    """librosa against every placement (--quick: the default only) for --transform."""
    from pipeline.benchmark import musicnn_features, throughput

    cfg = make_cfg(args)
    variants = list(throughput.VARIANTS)[:1] if args.quick else list(throughput.VARIANTS)
    passes = {"librosa": throughput.librosa_pass(cfg, songs_fn)}
    for label in variants:
        placement, jit = throughput.VARIANTS[label]
        passes[label] = throughput.pipeline_pass(make_cfg(args, placement), songs_ds, jit_compile=jit)
    if args.transform == "musicnn":
        passes[musicnn_features.LABEL] = musicnn_features.feature_pass(cfg, songs_ds)
    speeds = throughput.compare(passes, args.rounds, log=_log)
    lib, default = speeds.pop("librosa"), speeds[variants[0]]
    if default["windows"] != lib["windows"]:
        raise RuntimeError(f"window counts differ: librosa {lib['windows']}, pipeline {default['windows']}")
    extra = {}
    if musicnn_features.LABEL in speeds:
        extra["musicnn_windows_per_s"] = speeds[musicnn_features.LABEL]["windows_per_s"]
    return {**extra, "windows": lib["windows"],
            "librosa_windows_per_s": lib["windows_per_s"],
            "pipeline_windows_per_s": default["windows_per_s"],
            "speedup": default["windows_per_s"] / lib["windows_per_s"],
            "librosa_windows_per_cpu_s": lib["windows_per_cpu_s"],
            "pipeline_windows_per_cpu_s": default["windows_per_cpu_s"], "variants": speeds,
            "speed_table": throughput.speed_table({"librosa": lib, **speeds})}


def per_transform(args, songs_ds, songs_fn, result: dict[str, Any]) -> dict[str, Any]:
    """Every transform (--quick: the headline one) against its librosa loop, with FLOPs."""
    from pipeline.benchmark import flops, throughput

    rates = flops.machine_rates()
    names = (args.transform,) if args.quick else TRANSFORMS
    out = {}
    for name in names:
        cfg = make_cfg(args, transform=name)
        if name == args.transform:  # timed already, in the headline comparison
            r = {"librosa": {"windows_per_s": result["librosa_windows_per_s"]},
                 "pipeline": {"windows_per_s": result["pipeline_windows_per_s"]}}
        else:
            passes = {"pipeline": throughput.pipeline_pass(cfg, songs_ds, jit_compile=True),
                      "librosa": throughput.librosa_pass(cfg, songs_fn)}
            r = throughput.compare(passes, args.rounds, log=lambda m: _log(f"{name}: {m}"))
        speed = r["pipeline"]["windows_per_s"]
        lib = r.get("librosa", {}).get("windows_per_s")
        out[name] = {"pipeline_windows_per_s": speed, "librosa_windows_per_s": lib,
                     "speedup": speed / lib if lib else None,
                     **flops.efficiency(cfg, speed, rates)}
    return {"transforms": out, "machine": rates}


def transforms_table(result: dict[str, Any]) -> str:
    from pipeline.benchmark.throughput import table

    m = result["machine"]
    rows = [("transform", "librosa w/s", "pipeline w/s", "speedup", "MFLOP/window",
             "GFLOP/s", "of peak", "of floor")]
    for name, r in result["transforms"].items():
        lib = r["librosa_windows_per_s"]
        rows.append((name, f"{lib:.0f}" if lib else "-", f"{r['pipeline_windows_per_s']:.0f}",
                     f"{r['speedup']:.1f}x" if r["speedup"] else "-",
                     f"{r['mflop_per_window']:.2f}", f"{r['gflops_reached']:.1f}",
                     f"{r['fraction_of_peak']:.1%}", f"{r['fraction_of_floor']:.0%}"))
    return (f"machine: float32 matmul {m['matmul_gflops']:.0f} GFLOP/s (peak), 2048-point rFFT "
            f"{m['rfft_gflops']:.0f} GFLOP/s (all cores)\n" + table(rows))


def run(args) -> dict[str, Any]:
    from pipeline.benchmark import memory, resampling, stages, stalls
    from pipeline.stream.dataset import class_names, ensure_built, load_songs

    cfg = make_cfg(args)
    t0 = time.perf_counter()
    ensure_built(cfg.dataset)
    _log(f"dataset gtzan_tfds/{args.dataset} ready in {args.data_dir} ({time.perf_counter() - t0:.1f} s)")
    songs_ds = load_songs(cfg.dataset, args.split).take(args.songs)
    songs_fn = lambda: songs_ds.as_numpy_iterator()  # noqa: E731  (the same songs, as numpy)
    args.songs = sum(1 for _ in songs_fn())
    result = {"transform": args.transform, "dataset": args.dataset, "device": _device(),
              "batch_size": args.batch_size, "cpu_count": os.cpu_count(), "songs": args.songs,
              "load_average": os.getloadavg()[0]}
    result.update(headline(args, songs_ds, songs_fn))
    result.update(per_transform(args, songs_ds, songs_fn, result))
    _log("stages of the training stream ...")
    result["stages"] = stages.stage_profile(cfg, songs_ds, rounds=1 if args.quick else args.rounds)
    if not args.skip_stalls:
        _log("input stalls: cnn2d on mel, default settings, model.fit ...")
        stall_cfg = PipelineConfig(dataset=cfg.dataset).validate()  # the defaults: batch 32, mel
        result.update(stalls.input_wait(stall_cfg, songs_ds, len(class_names(cfg.dataset))))
    if not args.skip_rss:
        _log(f"memory: streaming 1x and {args.rss_factor}x the songs, each in a fresh process ...")
        repeats = args.rss_repeats or (3 if args.transform == "musicnn" else 1)
        result.update(memory.compare_rss(_child_argv(args), args.rss_factor, repeats))
    songs = [s["audio"] for _, s in zip(range(2 if args.quick else 5), songs_fn())]
    _log(f"resampling {len(songs)} songs ...")
    result["resample"] = resampling.run_resample(songs, cfg.window.sample_rate)
    return result


def report(args, result: dict[str, Any]) -> None:
    from pipeline.benchmark.memory import rss_line
    from pipeline.benchmark.resampling import resample_table
    from pipeline.benchmark.stages import stage_table
    from pipeline.benchmark.stalls import stall_line

    print(f"\n{args.transform} on {args.songs} songs of gtzan_tfds/{args.dataset}, device "
          f"{result['device']}, {result['cpu_count']} CPUs, batch {args.batch_size}, load "
          f"average {result['load_average']:.1f} at the start")
    print(result.pop("speed_table"))
    print(transforms_table(result))
    print(stage_table(result["stages"]))
    if "input_wait_fraction" in result:
        print(stall_line(result))
    if "rss_growth" in result:
        print(rss_line(result))
    print(resample_table(result["resample"]))
    _write_json(args, result)


def _write_json(args, result: dict[str, Any]) -> None:
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")


def run_gpu_bench(args) -> dict[str, Any]:
    from pipeline.benchmark.gpu import gpu_table, require_gpu, run_gpu
    from pipeline.stream.dataset import ensure_built, load_songs

    require_gpu()  # before building anything
    cfg = make_cfg(args)
    ensure_built(cfg.dataset)
    songs_ds = load_songs(cfg.dataset, args.split).take(args.songs)
    result = run_gpu(lambda name, placement: make_cfg(args, placement, name), songs_ds,
                     rounds=args.rounds)
    result.update({"songs": args.songs, "batch_size": args.batch_size, "dataset": args.dataset})
    print(gpu_table(result))
    print("transform ops on the GPU:", "yes" if result["gpu_ops_on_gpu"] else "NO")
    _write_json(args, result)
    return result


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
        if args.gpu:
            return 0 if run_gpu_bench(args)["gpu_ops_on_gpu"] else 1
        result = run(args)
        report(args, result)
    finally:
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)
    return 0 if result.get("rss_within_tolerance", True) else 1


if __name__ == "__main__":
    run_cli(main)
