"""The input the pretrained musicnn networks expect: one home for its constants.

musicnn (Pons & Serra 2019) was trained on log-compressed mel spectrograms computed with
librosa 0.7 from 16 kHz mono audio: ``melspectrogram(y, sr=16000, n_fft=512, hop_length=256,
n_mels=96)`` (power 2, Slaney mel, centred frames padded by reflection), transposed to
``(frames, 96)``, cast to float16, then ``log10(10000 * mel + 1)``; the networks read patches
of 187 frames (3 s).  ``pipeline.stream.transforms`` computes these features (transform name
``"musicnn"``); ``models.musicnn`` builds the networks for ``(PATCH_FRAMES, N_MELS)`` patches.
Both read the numbers below, and ``core.config`` validates windows against them.

A window of ``N`` samples has ``1 + N // HOP_LENGTH`` centred frames; the transform keeps the
first ``PATCH_FRAMES``, so any window of at least ``MIN_WINDOW_LENGTH`` samples (47,616 at
16 kHz, 2.976 s) works; the pipeline's default 3 s window (48,000 samples, 188 frames) loses
its last frame.
"""

from __future__ import annotations

from typing import Optional

from core.errors import ConfigError

SAMPLE_RATE = 16_000  # Hz
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
PAD_MODE = "reflect"  # librosa 0.7's centre padding (0.10+ defaults to "constant")
PATCH_FRAMES = 187  # frames per patch (3 s)
LOG_SCALE = 10_000.0  # features = log10(LOG_SCALE * mel + 1)
MIN_WINDOW_LENGTH = (PATCH_FRAMES - 1) * HOP_LENGTH  # shortest window giving PATCH_FRAMES frames


def check_window(sample_rate: int, window_length: Optional[int] = None) -> None:
    """ConfigError unless windows at ``sample_rate`` of ``window_length`` samples fit musicnn."""
    if sample_rate != SAMPLE_RATE:
        raise ConfigError(
            f"the musicnn transform needs {SAMPLE_RATE} Hz windows (sample_rate "
            f"{SAMPLE_RATE}), got {sample_rate} Hz"
        )
    if window_length is not None and window_length < MIN_WINDOW_LENGTH:
        raise ConfigError(
            f"the musicnn transform needs windows of at least {MIN_WINDOW_LENGTH} samples "
            f"({MIN_WINDOW_LENGTH / SAMPLE_RATE:g} s at {SAMPLE_RATE} Hz) for {PATCH_FRAMES} "
            f"frames, got {window_length}"
        )
