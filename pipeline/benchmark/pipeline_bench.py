"""The pipeline benchmark: the librosa way vs this tf.data pipeline, on the same songs, in one
run (what `python -m pipeline.bench` runs; its --help says what each part measures).

Exit status (``exit_status``): 1 when the memory check grows more than 10 % from 1x to the
``--rss-factor`` x songs, or when a training step waits for its batch more than
``MAX_INPUT_WAIT`` of the time (the input-stall limit); 0 otherwise.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional

from core.config import DatasetConfig, PipelineConfig, TransformConfig

TRANSFORMS = ("raw", "fft", "stft", "mel", "mfcc", "musicnn")  # each with a librosa twin
MAX_INPUT_WAIT = 0.05  # fraction of model.fit's time spent waiting for the next batch


def make_cfg(args, placement: str = "data", transform: Optional[str] = None,
             batch_size: Optional[int] = None) -> PipelineConfig:
    from pipeline.benchmark.musicnn_features import musicnn_window

    cfg = PipelineConfig(
        dataset=DatasetConfig(name=args.dataset_config, data_dir=args.data_dir, manual_dir=args.manual_dir),
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
    argv = ["--data-dir", args.data_dir, "--dataset-config", args.dataset_config, "--split", args.split,
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
    _log(f"dataset gtzan_tfds/{args.dataset_config} ready in {args.data_dir} ({time.perf_counter() - t0:.1f} s)")
    songs_ds = load_songs(cfg.dataset, args.split).take(args.songs)
    songs_fn = lambda: songs_ds.as_numpy_iterator()  # noqa: E731  (the same songs, as numpy)
    args.songs = sum(1 for _ in songs_fn())
    result = {"transform": args.transform, "dataset": args.dataset_config, "device": _device(),
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

    print(f"\n{args.transform} on {args.songs} songs of gtzan_tfds/{args.dataset_config}, device "
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
    result.update({"songs": args.songs, "batch_size": args.batch_size, "dataset": args.dataset_config})
    print(gpu_table(result))
    print("transform ops on the GPU:", "yes" if result["gpu_ops_on_gpu"] else "NO")
    _write_json(args, result)
    return result




def child(args) -> int:
    """One fresh process of the memory check (``--child-repeat N``): stream N x the songs."""
    from pipeline.benchmark.memory import child_main
    from pipeline.benchmark.musicnn_features import feature_pass
    from pipeline.stream.dataset import load_songs

    cfg = make_cfg(args)
    return child_main(cfg, load_songs(cfg.dataset, args.split).take(args.songs),
                      args.child_repeat, feature_pass if args.transform == "musicnn" else None)


def exit_status(result: dict[str, Any]) -> int:
    """1 when a checked limit is broken (memory growth, input stalls), else 0."""
    memory_ok = result.get("rss_within_tolerance", True)
    stalls_ok = result.get("input_wait_fraction", 0.0) <= MAX_INPUT_WAIT
    if not stalls_ok:
        print(f"input stalls over the limit: {result['input_wait_fraction']:.1%} of the training "
              f"time waiting for batches (limit {MAX_INPUT_WAIT:.0%})")
    return 0 if memory_ok and stalls_ok else 1
