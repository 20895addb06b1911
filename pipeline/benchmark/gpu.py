"""`python -m pipeline.bench --gpu`: windows/s of every transform and placement on a GPU.

For each transform (raw, fft, stft, mel, mfcc, musicnn) it times, on the same songs:

    data+xla      the default: the transform XLA-compiled inside tf.data (on the CPU)
    model+xla     tf.data yields int16-converted windows, the TransformLayer runs under
                  tf.function(jit_compile=True) on the GPU (as inside model.fit)
    model         the same without XLA
    gpu alone     the XLA transform on a batch already in GPU memory (no input pipeline)

and checks that the model-side transform really runs on the GPU: its output tensor must be
placed on a GPU device and the GPU's peak memory must grow while it runs (``gpu_ops_on_gpu``
in the JSON).  Refuses with a one-line error when TensorFlow sees no GPU.  Unmeasured until
someone runs it on a GPU machine (``make bench-gpu``); sized to finish in well under 4 minutes.
"""

from __future__ import annotations

import time
from typing import Any

from core.errors import UserError

GPU_TRANSFORMS = ("raw", "fft", "stft", "mel", "mfcc", "musicnn")
PLACEMENTS = {"data+xla": ("data", True), "model+xla": ("model", True), "model": ("model", False)}


def require_gpu() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise UserError("--gpu: TensorFlow sees no GPU here (tf.config.list_physical_devices)")
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def _on_gpu(cfg, batch_size: int) -> dict[str, Any]:
    """Device of the model-side transform's output, GPU peak memory growth, and the rate of
    the XLA transform on a GPU-resident batch."""
    import tensorflow as tf

    from pipeline.stream.transforms import TransformLayer

    layer = TransformLayer.from_pipeline_config(cfg)
    fn = tf.function(lambda x: layer(x), jit_compile=True)
    with tf.device("/GPU:0"):
        x = tf.random.normal([batch_size, cfg.window.window_length]) * 0.1
        tf.config.experimental.reset_memory_stats("GPU:0")
        before = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        out = fn(x)
        _ = out.numpy()
        grew = tf.config.experimental.get_memory_info("GPU:0")["peak"] > before
        start, calls = time.perf_counter(), 20
        for _ in range(calls):
            out = fn(x)
        _ = out.numpy()
    seconds = time.perf_counter() - start
    return {"output_device": out.device, "on_gpu": "GPU" in out.device and grew,
            "gpu_alone_windows_per_s": calls * batch_size / seconds}


def run_gpu(make_cfg, songs_ds, rounds: int = 2) -> dict[str, Any]:
    """Every transform x placement over ``songs_ds``: best of ``rounds`` passes (after a cold
    one).  ``make_cfg(transform, placement)`` gives the PipelineConfig."""
    from pipeline.benchmark.throughput import compare, pipeline_pass

    out: dict[str, Any] = {"device": f"GPU:{require_gpu()}", "transforms": {}}
    for name in GPU_TRANSFORMS:
        passes = {}
        for label, (placement, jit) in PLACEMENTS.items():
            cfg = make_cfg(name, placement)
            passes[label] = pipeline_pass(cfg, songs_ds, jit_compile=jit)
        speeds = compare(passes, rounds, log=lambda m: print(f"{name}: {m}", flush=True))
        cfg = make_cfg(name, "model")
        speeds["gpu alone"] = _on_gpu(cfg, cfg.batch_size)
        out["transforms"][name] = speeds
    out["gpu_ops_on_gpu"] = all(t["gpu alone"]["on_gpu"] for t in out["transforms"].values())
    return out


def gpu_table(result: dict[str, Any]) -> str:
    from pipeline.benchmark.throughput import table

    rows = [("transform", *PLACEMENTS, "GPU alone", "output on")]
    for name, r in result["transforms"].items():
        rows.append((name, *(f"{r[p]['windows_per_s']:.0f}" for p in PLACEMENTS),
                     f"{r['gpu alone']['gpu_alone_windows_per_s']:.0f}",
                     r["gpu alone"]["output_device"].split("device:")[-1]))
    return f"windows/s on {result['device']}\n" + table(rows)

