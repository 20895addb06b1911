"""Does an export predict what ``pipeline.predict`` predicts, and how fast?  (``--check``)

For each audio file: the SavedModel's probabilities (fed the decoded samples at the file's own
rate, stereo mixed down by the mean, as a caller would) against ``predict_file`` of the run,
and the median time of a call of the serving signature against that of ``predict_audio``.
Both resample with ``core.resample`` (the decoder for ``pipeline.predict``, the graph for the
SavedModel), so files at any supported rate agree to float rounding (``docs/export.md``).
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import soundfile as sf

from core.audio import SAMPLE_RATE
from gtzan_tfds.audio_io import read_audio
from pipeline.experiments.file_prediction import predict_audio, predict_file
from pipeline.experiments.predictor import Predictor


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def check_export(export_dir, run_dir, files, repeats: int = 5) -> list[dict]:
    """One row per file: differences to pipeline.predict and median latencies (seconds)."""
    import tensorflow as tf

    serve = tf.saved_model.load(os.fspath(export_dir)).signatures["serving_default"]
    predictor = Predictor.from_run(run_dir)
    rows = []
    for path in files:
        data, rate = sf.read(os.fspath(path), dtype="float32", always_2d=True)
        audio = tf.constant(data.mean(axis=1, dtype=np.float32))
        rate_t = tf.constant(rate, tf.int32)
        out = serve(audio=audio, sample_rate=rate_t)
        ref = predict_file(predictor, path)
        decoded = read_audio(path, target_sr=SAMPLE_RATE)
        rows.append({
            "file": os.path.basename(os.fspath(path)), "sample_rate": rate,
            "channels": data.shape[1], "seconds": round(len(data) / rate, 2),
            "windows": len(ref["window_starts"]),
            "max_window_diff": float(np.abs(out["window_probabilities"].numpy()
                                            - np.asarray(ref["window_probabilities"])).max()),
            "max_song_diff": float(np.abs(out["probabilities"].numpy()
                                          - np.asarray(list(ref["probabilities"].values()))).max()),
            "same_genre": out["genre"].numpy().decode() == ref["genre"],
            "saved_model_s": median_seconds(lambda: serve(audio=audio, sample_rate=rate_t), repeats),
            "predict_audio_s": median_seconds(lambda: predict_audio(predictor, decoded), repeats),
        })
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'file':40s} {'rate':>6s} ch {'sec':>6s} win {'max|dp| window':>14s} "
             f"{'song':>9s} genre  SavedModel  predict_audio"]
    for r in rows:
        lines.append(
            f"{r['file'][:40]:40s} {r['sample_rate']:6d} {r['channels']:2d} {r['seconds']:6.1f} "
            f"{r['windows']:3d} {r['max_window_diff']:14.1e} {r['max_song_diff']:9.1e} "
            f"{'same' if r['same_genre'] else 'DIFF':5s} {r['saved_model_s'] * 1e3:8.0f} ms "
            f"{r['predict_audio_s'] * 1e3:10.0f} ms")
    return "\n".join(lines)
