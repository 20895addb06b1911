"""The genre of an audio file, window by window and for the whole song, with a trained run.

``predict_file`` streams: the file is decoded in blocks (``gtzan_tfds.audio_io.stream_audio``,
the dataset builder's decoder: 22,050 Hz mono, resampled block by block), then resampled,
windowed and transformed batch by batch by the pipeline code the run was trained with
(``pipeline.stream.dataset.features_from_blocks``), and each batch is classified before the
next is decoded.  Memory is one block and one batch whatever the file's length (a 3-hour file
within a few MB of a 30 s one, docs/reliability.md); only the per-window probabilities (10
numbers per window) are kept.  Used by ``python -m pipeline.predict`` and the page.
"""

from __future__ import annotations

import time
from typing import Iterable, Iterator, Optional

import numpy as np

from core.audio import SAMPLE_RATE
from core.errors import AudioDecodeError, TimeLimitError
from pipeline.experiments import metrics
from pipeline.experiments.predictor import Predictor
from pipeline.stream.dataset import features_from_audio, features_from_blocks


def predict_audio(predictor: Predictor, audio: np.ndarray, batch_size: int | None = None) -> dict:
    """Window and song-level probabilities of float audio at 22,050 Hz (None when shorter
    than one window)."""
    cfg = predictor.pipeline
    probs = [predictor.predict_batch(x) for x in
             features_from_audio(audio, cfg, batch_size=batch_size or cfg.batch_size)]
    return _result(predictor, probs, len(audio))


def _result(predictor: Predictor, probs: list, num_samples: int) -> Optional[dict]:
    if not probs:
        return None
    cfg = predictor.pipeline
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
        "duration_seconds": round(num_samples / SAMPLE_RATE, 3),
    }


def predict_file(predictor: Predictor, path, batch_size: int | None = None, *,
                 allow_truncated: bool = False, max_seconds: Optional[float] = None,
                 deadline: Optional[float] = None) -> dict:
    """Streamed prediction of one file, with its path; AudioDecodeError names the file.

    ``allow_truncated``: predict from the part of a truncated WAV/AU that is present (with a
    warning) instead of refusing the file.  ``max_seconds``: refuse longer audio
    (AudioTooLongError: from the header before decoding where it states the length, else as
    soon as that much is decoded); None = any length.  ``deadline`` (``time.monotonic()``
    value): TimeLimitError once it passes, checked between blocks and batches.
    """
    from gtzan_tfds.audio_io import stream_audio

    cfg = predictor.pipeline
    blocks = _Counted(_checked_time(
        stream_audio(path, SAMPLE_RATE, allow_truncated=allow_truncated, max_seconds=max_seconds),
        path, deadline))
    probs = []
    try:
        features = features_from_blocks(blocks, cfg, batch_size or cfg.batch_size,
                                        transform=predictor.batch_transform())
        for x in _checked_time(features, path, deadline):
            probs.append(predictor.predict_batch(x))
    except AudioDecodeError as e:
        if e.reason.startswith("truncated"):
            raise AudioDecodeError.for_file(
                path, f"{e.reason} (--allow-truncated predicts from the part present)") from e
        raise
    result = _result(predictor, probs, blocks.samples)
    if result is None:
        raise AudioDecodeError.for_file(
            path, f"too short: {blocks.samples / SAMPLE_RATE:.2f} s, the model needs at least "
            f"one {cfg.window.window_seconds:g} s window")
    return {"file": str(path), **result}


class _Counted:
    """Passes blocks through, counting their samples."""

    def __init__(self, blocks: Iterable[np.ndarray]):
        self.blocks, self.samples = blocks, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for block in self.blocks:
            self.samples += len(block)
            yield block


def _checked_time(items: Iterable, path, deadline: Optional[float]) -> Iterator:
    for item in items:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeLimitError(f"{path}: stopped at the time limit of the request")
        yield item
