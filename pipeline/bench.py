"""Benchmark: the librosa way vs this tf.data pipeline, on the same songs, in one run.

    python -m pipeline.bench --quick --json bench.json

(a) librosa, as the seed study did: read each song from the TFRecords, cut it into windows
    with numpy, and transform one window at a time with librosa (one process).
(b) this pipeline end to end: TFRecords -> int16 windows -> batches -> transform, in tf.data.
    The transform placements (--quick times the first only):
      data+xla   inside tf.data, XLA-compiled (tf.function(jit_compile=True)) - the default
      data       inside tf.data, plain tf.signal ops
      model+xla  tf.data yields raw windows; the transform runs as the model's first layer
                 (TransformLayer in an XLA-compiled function, as under model.fit(jit_compile))
      model      the same without XLA
    Each variant runs a cold pass (tracing, XLA compilation); then librosa and every variant
    run in alternating rounds (--rounds) and each way's best round counts, so that a busy,
    shared machine favours neither.  Windows per CPU-second (all threads) are reported too:
    a measure of efficiency that depends less on the load.
Memory: the default pipeline streams the songs for 1 epoch, for 10 epochs (new iterator each,
as model.fit does), and (not with --quick) 10x the songs in one stream, each in a fresh
subprocess.  Peak RSS
(ru_maxrss) of 10 epochs must stay within 10 % of 1 epoch.  The one long stream is reported
too: it lets the window shuffle buffer fill (2048 windows of int16, ~270 MB, more than the
synthetic split holds), after which memory stays flat.
Resampling: tensorflow-io's tfio.audio.resample and this package's polyphase resampler, timed
and compared (SNR) against librosa.resample (soxr_hq) on a few songs.

--json FILE writes: transform, songs, windows, librosa_windows_per_s, pipeline_windows_per_s
(data+xla), speedup, peak_rss_mb, peak_rss_mb_1x, peak_rss_mb_10x, rss_growth, device ("CPU" or
"GPU:<name>"), variants (every placement), resample (ms per song and SNR of each resampler).
The exit status is 1 when 10x the data needs more than 10 % more memory than 1x.

The dataset is the gtzan_tfds `synthetic` config (no download), built on first use into
--data-dir, or into a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional

import numpy as np

from pipeline.cli import entry as cli_common  # noqa: F401  (quiet TF start-up and library noise)
from core.config import TRANSFORMS, DatasetConfig, PipelineConfig, TransformConfig

RSS_TOLERANCE = 0.10  # 10x the data may use at most 10 % more peak memory than 1x


# --------------------------------------------------------------------------------------------
def _librosa_transform(cfg: TransformConfig, sr: int) -> Callable[[np.ndarray], np.ndarray]:
    """One window -> features with librosa (the seed study's per-window code path)."""
    import librosa

    common = dict(n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                  center=cfg.center, pad_mode=cfg.pad_mode)

    def mel_db(w):
        s = librosa.feature.melspectrogram(y=w, sr=sr, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                           fmax=cfg.fmax, **common)
        return librosa.power_to_db(s, ref=1.0, amin=cfg.amin, top_db=cfg.top_db)

    if cfg.name == "raw":
        return lambda w: w
    if cfg.name == "fft":
        return lambda w: librosa.power_to_db(np.abs(np.fft.rfft(w)) ** 2, ref=1.0,
                                             amin=cfg.amin, top_db=cfg.top_db)
    if cfg.name == "stft":
        return lambda w: librosa.amplitude_to_db(
            np.abs(librosa.stft(w, **common)), ref=1.0, amin=np.sqrt(cfg.amin), top_db=cfg.top_db
        )
    if cfg.name == "mel":
        return mel_db
    return lambda w: librosa.feature.mfcc(S=mel_db(w), n_mfcc=cfg.n_mfcc)


def run_librosa(cfg: PipelineConfig, songs_fn) -> dict[str, Any]:
    fn = _librosa_transform(cfg.transform, cfg.window.sample_rate)
    length, step = cfg.window.window_length, cfg.window.step_length
    start, cpu = time.perf_counter(), time.process_time()
    windows = 0
    for song in songs_fn():  # read from the TFRecords, as numpy
        audio = song["audio"].astype(np.float32) / 32768.0
        for s in range(0, len(audio) - length + 1, step):
            fn(audio[s : s + length])
            windows += 1
    return _rates(windows, time.perf_counter() - start, time.process_time() - cpu)


def _rates(windows: int, seconds: float, cpu_seconds: float) -> dict[str, Any]:
    return {"windows": windows, "seconds": seconds, "windows_per_s": windows / seconds,
            "windows_per_cpu_s": windows / max(cpu_seconds, 1e-9)}


def pipeline_pass(cfg: PipelineConfig, songs_ds, *, jit_compile: bool):
    """A function that streams the songs through the pipeline once and returns its rates."""
    import tensorflow as tf

    from pipeline.stream.dataset import batches_from_songs
    from pipeline.stream.transforms import TransformLayer

    ds = batches_from_songs(songs_ds, cfg, training=True, jit_compile=jit_compile)
    model_side = None
    if cfg.transform_placement == "model":
        layer = TransformLayer.from_pipeline_config(cfg)
        model_side = tf.function(lambda x: layer(x), jit_compile=jit_compile)

    def one_pass() -> dict[str, Any]:
        start, cpu = time.perf_counter(), time.process_time()
        windows = 0
        for x, _y in ds:
            if model_side is not None:
                x = model_side(x)
            windows += int(x.numpy().shape[0])  # .numpy(): the features really exist
        return _rates(windows, time.perf_counter() - start, time.process_time() - cpu)

    return one_pass


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = dict(max(runs, key=lambda r: r["windows_per_s"]))
    best["windows_per_cpu_s"] = max(r["windows_per_cpu_s"] for r in runs)
    return best


def run_resample(songs: list[np.ndarray], sr: int, rates=(11_025, 16_000)) -> dict[str, Any]:
    """Seconds per song and SNR vs librosa.resample (soxr_hq) of both TF resamplers."""
    import librosa
    import tensorflow as tf

    from core.resample import resample

    try:
        import tensorflow_io as tfio
    except Exception:  # noqa: BLE001  (optional in this comparison)
        tfio = None
    out: dict[str, Any] = {}
    for rate in rates:
        floats = [s.astype(np.float32) / 32768.0 for s in songs]
        refs = [librosa.resample(f, orig_sr=sr, target_sr=rate) for f in floats]
        variants = {"tf_polyphase": lambda f: resample(tf.constant(f), sr, rate).numpy()}
        if tfio is not None:
            variants["tfio"] = lambda f: tfio.audio.resample(tf.constant(f), sr, rate).numpy()
        variants["librosa_soxr_hq"] = lambda f: librosa.resample(f, orig_sr=sr, target_sr=rate)
        row = {}
        for name, fn in variants.items():
            fn(floats[0])  # warm-up
            start = time.perf_counter()
            ys = [fn(f) for f in floats]
            per_song = (time.perf_counter() - start) / len(floats)
            snrs = [_snr_db(ref, y) for ref, y in zip(refs, ys)]
            lag = _best_lag(refs[0], ys[0])
            aligned = [_snr_db(ref, y, lag) for ref, y in zip(refs, ys)]
            row[name] = {"ms_per_song": 1000 * per_song, "snr_db_vs_librosa": min(snrs),
                         "delay_samples": lag, "snr_db_delay_removed": min(aligned)}
        out[str(rate)] = row
    return out


def _snr_db(ref: np.ndarray, y: np.ndarray, lag: int = 0) -> float:
    """SNR of y (delayed by `lag` samples) against ref, over the part both cover."""
    y = y[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, y.dtype), y])
    n = min(len(ref), len(y))
    err = np.sum((ref[:n] - y[:n]) ** 2) + 1e-30
    return float(10 * np.log10(np.sum(ref[:n] ** 2) / err))


def _best_lag(ref: np.ndarray, y: np.ndarray, max_lag: int = 64) -> int:
    """Delay of y relative to ref (tfio's resampler has one), from a cross-correlation."""
    a, b = ref[5000:25000], y[5000 - max_lag : 25000 + max_lag]
    corr = np.correlate(b, a, mode="valid")  # index i <-> lag i - max_lag
    return int(np.argmax(corr)) - max_lag


# --------------------------------------------------------------------------------------------
def _device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU:{details.get('device_name', gpus[0].name)}"


def _make_cfg(args) -> PipelineConfig:
    cfg = PipelineConfig(dataset=DatasetConfig(name=args.dataset, data_dir=args.data_dir))
    cfg.transform = TransformConfig(name=args.transform)
    cfg.batch_size = args.batch_size
    return cfg.validate()


def _songs_ds(cfg: PipelineConfig, split: str, songs: int):
    from pipeline.stream.dataset import load_songs

    return load_songs(cfg.dataset, split).take(songs)


def _child_rss(args) -> int:
    """Subprocess body: stream the songs (repeated args.child_repeat times in one stream) for
    args.child_epochs epochs, print the peak RSS."""
    cfg = _make_cfg(args)
    songs = _songs_ds(cfg, args.split, args.songs).repeat(args.child_repeat)
    one_pass = pipeline_pass(cfg, songs, jit_compile=True)
    runs = [one_pass() for _ in range(args.child_epochs)]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"peak_rss_mb": peak_kb / 1024, "windows": sum(r["windows"] for r in runs)}))
    return 0


def _measure_rss(args, epochs: int, repeat: int = 1) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pipeline.bench", "--child-epochs", str(epochs),
           "--child-repeat", str(repeat),
           "--data-dir", args.data_dir, "--dataset", args.dataset, "--split", args.split,
           "--songs", str(args.songs), "--transform", args.transform,
           "--batch-size", str(args.batch_size)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"RSS subprocess failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    parser.add_argument("--rss-epochs", type=int, default=10,
                        help="epochs of the 'Nx' memory run, compared with 1 (default: 10)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer songs, default placement only: under a minute on 2 cores")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating timing rounds; each way's best counts "
                             "(default: 3, or 2 with --quick)")
    parser.add_argument("--skip-rss", action="store_true", help="do not run the memory check")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--child-epochs", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child-repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.songs = args.songs or (20 if args.quick else 80)
    args.rounds = args.rounds or (2 if args.quick else 3)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.child_epochs:
        return _child_rss(args)

    temp_dir = None
    if args.data_dir is None:
        temp_dir = tempfile.mkdtemp(prefix="gtzan_bench_")
        args.data_dir = temp_dir
    try:
        return _run(args)
    finally:
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _run(args) -> int:
    from pipeline.stream.dataset import ensure_built, load_songs

    cfg = _make_cfg(args)
    t0 = time.perf_counter()
    ensure_built(cfg.dataset)
    print(f"dataset gtzan_tfds/{args.dataset} ready in {args.data_dir} "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    songs_ds = _songs_ds(cfg, args.split, args.songs)

    def songs_fn():  # the same songs, read from the TFRecords as numpy
        return load_songs(cfg.dataset, args.split).take(args.songs).as_numpy_iterator()

    result: dict[str, Any] = {"transform": args.transform, "device": _device(),
                              "batch_size": args.batch_size, "cpu_count": os.cpu_count()}
    # The machine may be shared: the ways run in alternating rounds (librosa, then one warm
    # pass of every pipeline variant) and each way's best round counts.  Every variant first
    # runs a cold pass (tracing, XLA compilation), reported apart.  CPU seconds (all threads)
    # are reported as well.
    variants = [("data+xla", "data", True)]
    if not args.quick:
        variants += [("data", "data", False), ("model+xla", "model", True),
                     ("model", "model", False)]
    passes, cold = {}, {}
    for label, placement, jit in variants:
        print(f"pipeline, transform {label}: cold pass ...", flush=True)
        vcfg = _make_cfg(args)
        vcfg.transform_placement = placement
        passes[label] = pipeline_pass(vcfg, songs_ds, jit_compile=jit)
        cold[label] = passes[label]()
    lib_runs, pipe_runs = [], {label: [] for label in passes}
    for i in range(args.rounds):
        print(f"round {i + 1}/{args.rounds}: librosa, one window at a time ({args.songs} songs), "
              f"then the pipeline ...", flush=True)
        lib_runs.append(run_librosa(cfg, songs_fn))
        for label, one_pass in passes.items():
            pipe_runs[label].append(one_pass())
    lib = _best(lib_runs)
    pipe: dict[str, Any] = {}
    for label, runs in pipe_runs.items():
        best = _best(runs)
        pipe[label] = {"windows_per_s": best["windows_per_s"],
                       "windows_per_cpu_s": best["windows_per_cpu_s"],
                       "cold_windows_per_s": cold[label]["windows_per_s"],
                       "windows": best["windows"]}
    if pipe["data+xla"]["windows"] != lib["windows"]:
        raise RuntimeError(f"window counts differ: librosa {lib['windows']}, "
                           f"pipeline {pipe['data+xla']['windows']}")

    best = pipe["data+xla"]["windows_per_s"]
    result.update(songs=args.songs, windows=lib["windows"],
                  librosa_windows_per_s=lib["windows_per_s"], pipeline_windows_per_s=best,
                  speedup=best / lib["windows_per_s"],
                  librosa_windows_per_cpu_s=lib["windows_per_cpu_s"],
                  pipeline_windows_per_cpu_s=pipe["data+xla"]["windows_per_cpu_s"],
                  variants=pipe)

    if not args.skip_rss:
        k = args.rss_epochs
        print(f"memory: streaming the songs 1x and for {k} epochs"
              + ("" if args.quick else f", and {k}x in one stream") + ", each in a fresh "
              "process ...", flush=True)
        one, epochs = _measure_rss(args, 1), _measure_rss(args, k)
        growth = epochs["peak_rss_mb"] / one["peak_rss_mb"] - 1
        result.update(peak_rss_mb=max(one["peak_rss_mb"], epochs["peak_rss_mb"]),
                      peak_rss_mb_1x=one["peak_rss_mb"],
                      **{f"peak_rss_mb_{k}x": epochs["peak_rss_mb"]},
                      rss_growth=growth, rss_within_tolerance=growth <= RSS_TOLERANCE)
        if not args.quick:
            stream = _measure_rss(args, 1, repeat=k)
            result.update(peak_rss_mb=max(result["peak_rss_mb"], stream["peak_rss_mb"]),
                          **{f"peak_rss_mb_{k}x_songs_one_stream": stream["peak_rss_mb"]},
                          rss_growth_one_stream=stream["peak_rss_mb"] / one["peak_rss_mb"] - 1)

    songs = [s["audio"] for _, s in zip(range(2 if args.quick else 5), songs_fn())]
    print(f"resampling {len(songs)} songs ...", flush=True)
    result["resample"] = run_resample(songs, cfg.window.sample_rate)

    rows = [("way", "windows", "windows/s", "speedup", "windows/CPU-s", "cold windows/s")]
    rows.append(("librosa, per window", str(lib["windows"]), f"{lib['windows_per_s']:.0f}",
                 "1.0x", f"{lib['windows_per_cpu_s']:.0f}", "-"))
    for label, r in pipe.items():
        rows.append((f"pipeline, {label}", str(r["windows"]), f"{r['windows_per_s']:.0f}",
                     f"{r['windows_per_s'] / lib['windows_per_s']:.1f}x",
                     f"{r['windows_per_cpu_s']:.0f}", f"{r['cold_windows_per_s']:.0f}"))
    print()
    print(f"{args.transform} on {args.songs} songs of gtzan_tfds/{args.dataset}, "
          f"device {result['device']}, {os.cpu_count()} CPUs, batch {args.batch_size}")
    print(_table(rows))
    if "peak_rss_mb" in result:
        k = args.rss_epochs
        print(f"peak RSS: 1x {result['peak_rss_mb_1x']:.0f} MB; {k} epochs "
              f"{result[f'peak_rss_mb_{k}x']:.0f} MB ({result['rss_growth']:+.1%}; limit "
              f"+{RSS_TOLERANCE:.0%})")
        if f"peak_rss_mb_{k}x_songs_one_stream" in result:
            print(f"          {k}x the songs in one stream "
                  f"{result[f'peak_rss_mb_{k}x_songs_one_stream']:.0f} MB "
                  f"({result['rss_growth_one_stream']:+.1%}: the window shuffle buffer fills "
                  f"up to {PipelineConfig().shuffle_buffer} windows, then memory stays flat)")
    rrows = [("resample 22050 ->", "way", "ms/song", "SNR vs librosa", "delay removed")]
    for rate, row in result["resample"].items():
        for name, r in row.items():
            ref = name.startswith("librosa")
            rrows.append((rate, name, f"{r['ms_per_song']:.1f}",
                          "-" if ref else f"{r['snr_db_vs_librosa']:.1f} dB",
                          "-" if ref else f"{r['snr_db_delay_removed']:.1f} dB "
                                          f"({r['delay_samples']:+d} samples)"))
    print(_table(rrows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    ok = result.get("rss_within_tolerance", True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
