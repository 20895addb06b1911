"""The audio format every stored song has: mono int16 PCM at 22,050 Hz (GTZAN's own).

One place for the sample rate and the int16 <-> float convention (soundfile's and librosa's:
float = int / 32768), used by the dataset builder, the streaming pipeline, prediction and the
benchmark.  numpy only, so importing it costs nothing.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 22_050  # Hz: every stored song, whatever rate it was decoded from
INT16_SCALE = 32768.0  # float sample = int16 sample / INT16_SCALE


def int16_to_float(samples: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1)."""
    return np.asarray(samples, dtype=np.float32) / INT16_SCALE


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16 (x * 32768, rounded, clipped): exact for PCM16 input."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples
    return np.clip(np.rint(samples * INT16_SCALE), -32768, 32767).astype(np.int16)
