"""The seed study's transforms with librosa, one window at a time.

Both the benchmark's baseline (what the pipeline is timed against) and the parity reference of
``tests/test_transforms.py`` (what the pipeline's features must equal).  Every function takes
one float32 window and returns features in the pipeline's layout: ``(frames, bins)`` for the
time-frequency transforms, ``(bins,)`` for ``fft``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from core.config import TransformConfig


def _stft_kwargs(cfg: TransformConfig) -> dict:
    return dict(n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                center=cfg.center, pad_mode=cfg.pad_mode)


def stft_db(window: np.ndarray, cfg: TransformConfig, sr: int) -> np.ndarray:
    import librosa

    s = librosa.stft(window, **_stft_kwargs(cfg))
    return librosa.amplitude_to_db(np.abs(s), ref=1.0, amin=np.sqrt(cfg.amin), top_db=cfg.top_db).T


def mel_db(window: np.ndarray, cfg: TransformConfig, sr: int) -> np.ndarray:
    import librosa

    s = librosa.feature.melspectrogram(y=window, sr=sr, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                       fmax=cfg.fmax, power=2.0, **_stft_kwargs(cfg))
    return librosa.power_to_db(s, ref=1.0, amin=cfg.amin, top_db=cfg.top_db).T


def mfcc(window: np.ndarray, cfg: TransformConfig, sr: int) -> np.ndarray:
    import librosa

    return librosa.feature.mfcc(S=mel_db(window, cfg, sr).T, n_mfcc=cfg.n_mfcc, dct_type=2,
                                norm="ortho").T


def fft_db(window: np.ndarray, cfg: TransformConfig, sr: int) -> np.ndarray:
    import librosa

    return librosa.power_to_db(np.abs(np.fft.rfft(window)) ** 2, ref=1.0, amin=cfg.amin,
                               top_db=cfg.top_db)


def raw(window: np.ndarray, cfg: TransformConfig, sr: int) -> np.ndarray:
    return window


def musicnn(window: np.ndarray, cfg: TransformConfig, sr: int) -> np.ndarray:
    """The ``"musicnn"`` transform on one 16 kHz window, as musicnn's extractor computes it
    (librosa 0.7's reflect padding made explicit; the mel power rounded to float16, the log in
    float32 as the pipeline does): first 187 frames (core.musicnn_input)."""
    import librosa

    from core import musicnn_input as m

    mel = librosa.feature.melspectrogram(y=window, sr=m.SAMPLE_RATE, hop_length=m.HOP_LENGTH,
                                         n_fft=m.N_FFT, n_mels=m.N_MELS, pad_mode=m.PAD_MODE).T
    mel = mel.astype(np.float16).astype(np.float32)
    return np.log10(m.LOG_SCALE * mel + 1)[: m.PATCH_FRAMES]


REFERENCES = {"raw": raw, "fft": fft_db, "stft": stft_db, "mel": mel_db, "mfcc": mfcc,
              "musicnn": musicnn}


def librosa_transform(cfg: TransformConfig, sr: int) -> Callable[[np.ndarray], np.ndarray]:
    """One window -> the features of ``cfg.name``, computed with librosa."""
    reference = REFERENCES[cfg.name]
    return lambda window: reference(window, cfg, sr)
