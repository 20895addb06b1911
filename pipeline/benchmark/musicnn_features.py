"""Windows per second of the ``musicnn`` approach's feature path, and its memory.

TFRecords -> songs resampled to 16 kHz -> 2.976 s windows -> batches -> the ``"musicnn"``
transform (in tf.data) -> the frozen pretrained network's features (``models.registry
.featurizer("musicnn")``, max_pool by default): everything the probe is fitted on and predicts
from, end to end.  ``pipeline.bench --transform musicnn`` runs it beside the transform alone,
in the same alternating rounds, and its memory check streams this path.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

from core.config import PipelineConfig
from pipeline.benchmark.throughput import rates

LABEL = "musicnn features"  # its row in the speed table


def musicnn_window(cfg: PipelineConfig) -> PipelineConfig:
    """``cfg`` with the window the musicnn approaches use (16 kHz, 2.976 s every 2.976 s)."""
    from models.registry import MUSICNN_WINDOW_SECONDS
    from core.musicnn_input import SAMPLE_RATE

    window = dataclasses.replace(cfg.window, sample_rate=SAMPLE_RATE,
                                 window_seconds=MUSICNN_WINDOW_SECONDS,
                                 step_seconds=MUSICNN_WINDOW_SECONDS)
    return dataclasses.replace(cfg, window=window).validate()


def feature_pass(cfg: PipelineConfig, songs_ds, *, jit_compile: bool = True,
                 hparams: Optional[dict] = None) -> Callable[[], dict[str, Any]]:
    """A function that streams the songs to musicnn features once and returns its rates."""
    from models.registry import featurizer
    from pipeline.stream.dataset import batches_from_songs

    featurize = featurizer("musicnn", hparams)
    ds = batches_from_songs(songs_ds, cfg, training=False, jit_compile=jit_compile)

    def one_pass() -> dict[str, Any]:
        start, cpu = time.perf_counter(), time.process_time()
        windows = 0
        for x, _y in ds:
            windows += int(featurize(x).numpy().shape[0])
        return rates(windows, time.perf_counter() - start, time.process_time() - cpu)

    return one_pass
