"""Windows per second: the seed study's librosa loop against the streaming pipeline.

(a) librosa, as the seed study did: read each song from the TFRecords, resample it with
    librosa when the pipeline's rate is not 22,050 Hz, cut it into windows with numpy, and
    transform one window at a time with librosa (one process).
(b) this pipeline end to end: TFRecords -> int16 windows -> batches -> transform, in tf.data,
    with the transform in one of four placements (``VARIANTS``).
Each variant runs a cold pass first (tracing, XLA compilation), reported apart; then librosa
and every variant run in alternating rounds and each way's best round counts, so that a busy,
shared machine favours neither.  Windows per CPU-second (all threads) are reported too: a
measure of efficiency that depends less on the load.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import numpy as np

from core.audio import SAMPLE_RATE, int16_to_float
from core.config import PipelineConfig
from pipeline.benchmark.librosa_reference import librosa_transform

# label -> (transform placement, XLA): the default first
VARIANTS = {
    "data+xla": ("data", True),  # inside tf.data, XLA-compiled: the default
    "data": ("data", False),  # inside tf.data, plain tf.signal ops
    "model+xla": ("model", True),  # the model's first layer, as under model.fit(jit_compile)
    "model": ("model", False),
}


def rates(windows: int, seconds: float, cpu_seconds: float) -> dict[str, Any]:
    return {"windows": windows, "seconds": seconds, "windows_per_s": windows / seconds,
            "windows_per_cpu_s": windows / max(cpu_seconds, 1e-9)}


def librosa_pass(cfg: PipelineConfig, songs_fn: Callable[[], Iterable[dict]]) -> Callable[[], dict]:
    """A function that runs the librosa loop over the songs once and returns its rates."""
    import librosa

    fn = librosa_transform(cfg.transform, cfg.window.sample_rate)
    length, step = cfg.window.window_length, cfg.window.step_length
    rate = cfg.window.sample_rate

    def one_pass() -> dict[str, Any]:
        start, cpu = time.perf_counter(), time.process_time()
        windows = 0
        for song in songs_fn():  # read from the TFRecords, as numpy
            audio = int16_to_float(song["audio"])
            if rate != SAMPLE_RATE:
                audio = librosa.resample(audio, orig_sr=SAMPLE_RATE, target_sr=rate)
            for s in range(0, len(audio) - length + 1, step):
                fn(audio[s : s + length])
                windows += 1
        return rates(windows, time.perf_counter() - start, time.process_time() - cpu)

    return one_pass


def pipeline_pass(cfg: PipelineConfig, songs_ds, *, jit_compile: bool) -> Callable[[], dict]:
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
        return rates(windows, time.perf_counter() - start, time.process_time() - cpu)

    return one_pass


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    top = dict(max(runs, key=lambda r: r["windows_per_s"]))
    top["windows_per_cpu_s"] = max(r["windows_per_cpu_s"] for r in runs)
    return top


def compare(passes: dict[str, Callable[[], dict]], rounds: int, log=print) -> dict[str, dict]:
    """Cold pass of every way but "librosa", then ``rounds`` alternating rounds of all;
    returns each way's best round (and its cold rate)."""
    cold = {label: one_pass() for label, one_pass in passes.items() if label != "librosa"}
    runs: dict[str, list] = {label: [] for label in passes}
    for i in range(rounds):
        log(f"round {i + 1}/{rounds}: " + ", then ".join(passes) + " ...")
        for label, one_pass in passes.items():
            runs[label].append(one_pass())
    out = {label: best(r) for label, r in runs.items()}
    for label, r in cold.items():
        out[label]["cold_windows_per_s"] = r["windows_per_s"]
    return out


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def speed_table(results: dict[str, dict]) -> str:
    lib = results["librosa"]
    rows = [("way", "windows", "windows/s", "speedup", "windows/CPU-s", "cold windows/s")]
    for label, r in results.items():
        name = "librosa, per window" if label == "librosa" else f"pipeline, {label}"
        rows.append((name, str(r["windows"]), f"{r['windows_per_s']:.0f}",
                     f"{r['windows_per_s'] / lib['windows_per_s']:.1f}x",
                     f"{r['windows_per_cpu_s']:.0f}",
                     f"{r['cold_windows_per_s']:.0f}" if "cold_windows_per_s" in r else "-"))
    return table(rows)
