"""The genre of an audio file, window by window and for the whole song, with a trained run.

The file is decoded to 22,050 Hz mono as the dataset builder decodes songs
(``gtzan_tfds.audio_io.read_audio``), then resampled, windowed and transformed by the same
pipeline code the run was trained with (``features_from_audio``), streamed in batches so a long
file never has to fit in memory.  Used by ``python -m pipeline.predict``.
"""

from __future__ import annotations

import numpy as np

from core.audio import SAMPLE_RATE
from core.errors import AudioDecodeError
from pipeline.experiments import metrics
from pipeline.experiments.predictor import Predictor
from pipeline.stream.dataset import features_from_audio


def predict_audio(predictor: Predictor, audio: np.ndarray, batch_size: int | None = None) -> dict:
    """Window and song-level probabilities of float audio at 22,050 Hz (None when shorter
    than one window)."""
    cfg = predictor.pipeline
    probs = [predictor.predict_batch(x) for x in
             features_from_audio(audio, cfg, batch_size=batch_size or cfg.batch_size)]
    if not probs:
        return None
    window_probs = np.concatenate(probs)
    song = metrics.mean_probability_vote(window_probs)
    names = predictor.class_names
    return {
        "genre": names[int(song.argmax())],
        "majority_genre": names[metrics.majority_vote(window_probs)],
        "probabilities": {n: round(float(p), 6) for n, p in zip(names, song)},
        "window_seconds": cfg.window.window_seconds,
        "window_starts": [round(i * cfg.window.step_seconds, 3) for i in range(len(window_probs))],
        "window_probabilities": np.round(window_probs, 6).tolist(),
        "duration_seconds": round(len(audio) / SAMPLE_RATE, 3),
    }


def predict_file(predictor: Predictor, path, batch_size: int | None = None, *,
                 allow_truncated: bool = False) -> dict:
    """``predict_audio`` of one file, with its path; AudioDecodeError names the file.

    ``allow_truncated``: predict from the part of a truncated WAV/AU that is present (with a
    warning) instead of refusing the file.
    """
    from gtzan_tfds.audio_io import read_audio

    try:
        audio = read_audio(path, target_sr=SAMPLE_RATE, allow_truncated=allow_truncated)
    except AudioDecodeError as e:
        if e.reason.startswith("truncated"):
            raise AudioDecodeError.for_file(
                path, f"{e.reason} (--allow-truncated predicts from the part present)") from e
        raise
    result = predict_audio(predictor, audio, batch_size)
    if result is None:
        raise AudioDecodeError.for_file(
            path, f"too short: {len(audio) / SAMPLE_RATE:.2f} s, the model needs at least one "
            f"{predictor.pipeline.window.window_seconds:g} s window")
    return {"file": str(path), **result}
