"""Where the time of the training stream goes: the graph timed stage by stage.

Each row streams the same songs through one more stage of ``make_dataset``'s training graph
than the row before, so the difference between two rows is what that stage costs:

    read+decode         load_songs: TFRecords -> int16 songs
    + windows           song_to_windows per song (parallel map)
    + shuffle blocks    song shuffle buffer, blocks of shuffle_buffer windows, permuted
    + batch             rebatch(batch_size)
    + to float          int16 -> float32 (placement "model": what the model would receive)
    + transform         the whole default pipeline (the XLA-compiled transform, prefetch)

and, apart, the XLA-compiled transform alone on a ready batch of random windows.  Wall time
and process CPU time (all threads) are both reported: on a shared machine the CPU time per
window is the steadier measure.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from core.config import PipelineConfig


def _time_pass(ds) -> dict[str, float]:
    start, cpu = time.perf_counter(), time.process_time()
    for _ in ds:
        pass
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}


def _stage_datasets(cfg: PipelineConfig, songs_ds) -> dict[str, Any]:
    """stage name -> the dataset that ends with that stage."""
    import tensorflow as tf

    from pipeline.stream import dataset as D

    AUTOTUNE = tf.data.AUTOTUNE
    per_song = songs_ds.map(lambda s: D.song_to_windows(s, cfg), num_parallel_calls=AUTOTUNE)
    unbatched = dataclasses.replace(cfg, batch_size=cfg.shuffle_buffer)
    model_cfg = dataclasses.replace(cfg, transform_placement="model")
    return {
        "read+decode": songs_ds,
        "+ windows": per_song,
        "+ shuffle blocks": D.training_windows(songs_ds, unbatched, D.SAMPLE_RATE),
        "+ batch": D.training_windows(songs_ds, cfg, D.SAMPLE_RATE),
        "+ to float": D.batches_from_songs(songs_ds, model_cfg, training=True),
        "+ transform": D.batches_from_songs(songs_ds, cfg, training=True),
    }


def stage_profile(cfg: PipelineConfig, songs_ds, rounds: int = 3) -> list[dict[str, Any]]:
    """Best of ``rounds`` passes per stage (after one warm-up pass), as rows of a table."""
    stages = _stage_datasets(cfg, songs_ds)
    total = sum(int(w["label"].shape[0]) for w in stages["+ windows"])
    best: dict[str, dict] = {}
    for ds in stages.values():
        _time_pass(ds)  # warm-up: tracing, XLA compilation, file cache
    for _ in range(rounds):  # alternate, so that a load change hits every stage alike
        for name, ds in stages.items():
            r = _time_pass(ds)
            if name not in best or r["cpu_seconds"] < best[name]["cpu_seconds"]:
                best[name] = r
    rows, previous = [], 0.0
    for name, r in best.items():
        per_window = 1000 * r["cpu_seconds"] / total
        rows.append({"stage": name, "windows": total, "seconds": r["seconds"],
                     "cpu_seconds": r["cpu_seconds"], "windows_per_s": total / r["seconds"],
                     "cpu_ms_per_window": per_window,
                     "stage_cpu_ms_per_window": per_window - previous})
        previous = per_window
    rows.append(_transform_alone(cfg))
    return rows


def _transform_alone(cfg: PipelineConfig, batches: int = 8) -> dict[str, Any]:
    """The compiled transform on a ready int16 batch, no tf.data around it."""
    import tensorflow as tf

    from pipeline.stream.transforms import compiled_transform

    fn = compiled_transform(cfg.transform, cfg.window.sample_rate)
    x = tf.cast(tf.random.normal([cfg.batch_size, cfg.window.window_length]) * 3000, tf.int16)
    fn(x).numpy()
    best = None
    for _ in range(3):
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(batches):
            fn(x).numpy()
        r = (time.perf_counter() - start, time.process_time() - cpu)
        best = r if best is None or r[1] < best[1] else best
    n = batches * cfg.batch_size
    return {"stage": "transform alone (XLA, one thread of work)", "windows": n,
            "seconds": best[0], "cpu_seconds": best[1], "windows_per_s": n / best[0],
            "cpu_ms_per_window": 1000 * best[1] / n, "stage_cpu_ms_per_window": None}


def stage_table(rows: list[dict[str, Any]]) -> str:
    from pipeline.benchmark.throughput import table

    out = [("stage (cumulative)", "windows/s", "CPU ms/window", "this stage")]
    for r in rows:
        own = r["stage_cpu_ms_per_window"]
        out.append((r["stage"], f"{r['windows_per_s']:.0f}", f"{r['cpu_ms_per_window']:.3f}",
                    "-" if own is None else f"{own:+.3f}"))
    return table(out)
