"""How close a transform runs to what the machine can do: analytic FLOPs and measured rates.

FLOPs per window are counted analytically (real floating-point operations, the usual
conventions), split into the FFT part and the rest:

* an rFFT of n real points: ``2.5 * n * log2(n)`` (half of the ``5 n log2 n`` of a complex
  FFT; the convention of FFTW's benchmarks);
* the Hann taper ``n_fft`` multiplies per frame; ``|z|^2`` 3 per bin; the dB scale 2 per value
  (log, max against the floor; the multiply by 10/ln 10 is folded in);
* the mel projection ``2 * nnz(filterbank)`` per frame: only the non-zero weights are work
  (a dense product would count 2 * bins * n_mels, ~8x more for 128 bands on 1025 bins);
* MFCC's DCT-II ``2 * n_mels * n_mfcc`` per frame (as a matrix product);
* raw: one operation per sample (int16 -> float).

The machine's rates are measured, on all cores, with TensorFlow: a float32 matrix product of
2048 x 2048 x 2048 (``2 * 2048**3`` FLOPs) gives the peak FLOP/s of dense work, and a batch of
8,192 rFFTs of 2,048 points (counted as above) the FLOP/s an FFT reaches.  ``floor_ms``, the
least time a window could take, counts the FFT part at the FFT rate and the rest at the
matrix rate; ``fraction_of_floor`` is that floor divided by the measured time per window.
"""

from __future__ import annotations

import math
import time
from typing import Any

from core import musicnn_input
from core.config import PipelineConfig, TransformConfig


def rfft_flops(n: int) -> float:
    return 2.5 * n * math.log2(n) if n > 1 else 0.0


def _mel_nonzeros(cfg: TransformConfig, sample_rate: int) -> int:
    import numpy as np

    from pipeline.stream.transforms import mel_filterbank

    return int(np.count_nonzero(mel_filterbank(cfg, sample_rate)))


def transform_flops(cfg: PipelineConfig) -> dict[str, float]:
    """{"fft": FLOPs in FFTs, "other": the rest, "total"} per window of ``cfg``."""
    from pipeline.stream.transforms import MUSICNN_STFT, num_frames

    t, n, rate = cfg.transform, cfg.window.window_length, cfg.window.sample_rate
    if t.name == "raw":
        return {"fft": 0.0, "other": float(n), "total": float(n)}
    if t.name == "fft":
        bins = n // 2 + 1
        return {"fft": rfft_flops(n), "other": 5.0 * bins + n, "total": rfft_flops(n) + 5.0 * bins + n}
    stft = MUSICNN_STFT if t.name == "musicnn" else t
    frames, bins = num_frames(n, stft), stft.n_fft // 2 + 1
    if t.name == "musicnn":
        frames = min(frames, musicnn_input.PATCH_FRAMES)
    fft = frames * rfft_flops(stft.n_fft)
    other = n + frames * (stft.n_fft + 3 * bins)  # to float, taper, |z|^2
    if t.name == "stft":
        other += 2 * frames * bins
    else:
        mel_rate = musicnn_input.SAMPLE_RATE if t.name == "musicnn" else rate
        other += frames * (2 * _mel_nonzeros(stft, mel_rate) + 2 * stft.n_mels)
    if t.name == "mfcc":
        other += frames * 2 * t.n_mels * t.n_mfcc
    return {"fft": float(fft), "other": float(other), "total": float(fft + other)}


def _best_seconds(fn, repeats: int = 3, calls: int = 3) -> float:
    fn()  # compile / warm up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def machine_rates() -> dict[str, float]:
    """Measured GFLOP/s of a large float32 matmul and of batched 2048-point rFFTs."""
    import tensorflow as tf

    a = tf.random.normal([2048, 2048])
    matmul = tf.function(lambda x: tf.linalg.matmul(x, x), jit_compile=True)
    frames = tf.random.normal([8192, 2048])
    rfft = tf.function(lambda x: tf.signal.rfft(x), jit_compile=True)
    mm_s = _best_seconds(lambda: matmul(a).numpy())
    fft_s = _best_seconds(lambda: rfft(frames).numpy())
    return {"matmul_gflops": 2 * 2048**3 / mm_s / 1e9,
            "rfft_gflops": 8192 * rfft_flops(2048) / fft_s / 1e9}


def efficiency(cfg: PipelineConfig, windows_per_s: float, rates: dict[str, float]) -> dict[str, Any]:
    """FLOPs of a window, the rate reached, and the fractions of the peak and of the floor."""
    f = transform_flops(cfg)
    floor_s = f["fft"] / (rates["rfft_gflops"] * 1e9) + f["other"] / (rates["matmul_gflops"] * 1e9)
    reached = windows_per_s * f["total"] / 1e9
    return {"mflop_per_window": f["total"] / 1e6, "fft_mflop_per_window": f["fft"] / 1e6,
            "gflops_reached": reached, "fraction_of_peak": reached / rates["matmul_gflops"],
            "floor_ms_per_window": 1000 * floor_s, "fraction_of_floor": floor_s * windows_per_s}
