"""The resamplers against librosa.resample (soxr_hq): milliseconds per song, SNR and delay.

This project's polyphase resampler (``core.resample``) and tensorflow-io's
``tfio.audio.resample`` (a custom CPU-only op, when it loads) are run on the same songs.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from core.audio import int16_to_float


def run_resample(songs: list[np.ndarray], sr: int, rates=(11_025, 16_000)) -> dict[str, Any]:
    """Milliseconds per song and SNR vs librosa.resample (soxr_hq) of each resampler."""
    import librosa
    import tensorflow as tf

    from core.resample import resample

    floats = [int16_to_float(s) for s in songs]
    out: dict[str, Any] = {}
    for rate in rates:
        refs = [librosa.resample(f, orig_sr=sr, target_sr=rate) for f in floats]
        variants = {"tf_polyphase": lambda f: resample(tf.constant(f), sr, rate).numpy()}
        tfio_resample = _tfio_resample()
        if tfio_resample is not None:
            variants["tfio"] = lambda f: tfio_resample(tf.constant(f), sr, rate).numpy()
        variants["librosa_soxr_hq"] = lambda f: librosa.resample(f, orig_sr=sr, target_sr=rate)
        out[str(rate)] = {name: _measure(fn, floats, refs) for name, fn in variants.items()}
    return out


def synthetic_songs(count: int = 3) -> list[np.ndarray]:
    """``count`` synthetic 30 s int16 songs at 22,050 Hz (no dataset needed)."""
    from core.audio import float_to_int16
    from gtzan_tfds.synthetic_audio import generate_song_float

    genres = ("jazz", "rock", "classical", "metal", "pop")
    return [float_to_int16(generate_song_float(genres[i % 5], i, sr=22_050))
            for i in range(count)]


@functools.lru_cache(maxsize=1)
def _tfio_resample():
    """tfio.audio.resample, or None where tensorflow-io's native ops do not load."""
    try:
        import tensorflow_io as tfio
    except (ImportError, NotImplementedError) as e:
        print(f"note: no tensorflow-io row ({type(e).__name__}: {str(e)[:120]}); its ops load "
              "on TensorFlow 2.17 only: make venv-tfio")
        return None
    return tfio.audio.resample


def _measure(fn, floats, refs) -> dict[str, float]:
    fn(floats[0])  # warm-up
    start = time.perf_counter()
    ys = [fn(f) for f in floats]
    per_song = (time.perf_counter() - start) / len(floats)
    lag = best_lag(refs[0], ys[0])
    return {"ms_per_song": 1000 * per_song,
            "snr_db_vs_librosa": min(snr_db(ref, y) for ref, y in zip(refs, ys)),
            "delay_samples": lag,
            "snr_db_delay_removed": min(snr_db(ref, y, lag) for ref, y in zip(refs, ys))}


def snr_db(ref: np.ndarray, y: np.ndarray, lag: int = 0) -> float:
    """SNR of y (delayed by `lag` samples) against ref, over the part both cover."""
    y = y[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, y.dtype), y])
    n = min(len(ref), len(y))
    err = np.sum((ref[:n] - y[:n]) ** 2) + 1e-30
    return float(10 * np.log10(np.sum(ref[:n] ** 2) / err))


def best_lag(ref: np.ndarray, y: np.ndarray, max_lag: int = 64) -> int:
    """Delay of y relative to ref (tfio's resampler has one), from a cross-correlation."""
    a, b = ref[5000:25000], y[5000 - max_lag : 25000 + max_lag]
    corr = np.correlate(b, a, mode="valid")  # index i <-> lag i - max_lag
    return int(np.argmax(corr)) - max_lag


def resample_table(result: dict[str, Any]) -> str:
    from pipeline.benchmark.throughput import table

    rows = [("resample 22050 ->", "way", "ms/song", "SNR vs librosa", "delay removed")]
    for rate, row in result.items():
        for name, r in row.items():
            ref = name.startswith("librosa")
            rows.append((rate, name, f"{r['ms_per_song']:.1f}",
                         "-" if ref else f"{r['snr_db_vs_librosa']:.1f} dB",
                         "-" if ref else f"{r['snr_db_delay_removed']:.1f} dB "
                                         f"({r['delay_samples']:+d} samples)"))
    return table(rows)
