"""Input stalls: how much of a real ``model.fit`` step is spent waiting for the next batch.

The default training setup (cnn2d on mel, the default PipelineConfig, ``compile_model`` and
``fit`` on the repeated stream as ``pipeline.train`` does them) is fitted for ``epochs``
epochs; the last one is recorded with the TensorFlow profiler.  Keras fetches each batch inside its compiled train function
(``next(iterator)`` is an ``IteratorGetNext`` op), so the time a step waits for its batch is
the duration of that op's kernel, which the trace records as ``IteratorGetNextOp::DoCompute``:
microseconds when a prefetched batch is ready, the whole wait when it is not.

    input_wait_fraction = sum of those durations / wall time of the recorded epoch

(the denominator also counts Keras's Python loop and callbacks).  The first epoch, not
recorded, also waits once for the stream to start (the first block of windows to fill).  Why the profiler and not a
timing callback: the fetch happens inside the train step, where no callback can see it; a
Python-side wrapper around the dataset would add the very overhead it should measure.  The
profiler's host tracer costs a few percent of step time, on both sides of the fraction.
"""

from __future__ import annotations

import glob
import os
import tempfile
import time
from typing import Any

WAIT_EVENT = "IteratorGetNextOp::DoCompute"


def profile_epoch_callback(epoch: int, logdir: str):
    """A Keras callback that records epoch ``epoch`` with the profiler and times it."""
    import keras
    import tensorflow as tf

    class ProfileEpoch(keras.callbacks.Callback):
        seconds = None
        steps = 0

        def on_epoch_begin(self, e, logs=None):
            if e == epoch:
                options = tf.profiler.experimental.ProfilerOptions(
                    host_tracer_level=2, python_tracer_level=0, device_tracer_level=0)
                tf.profiler.experimental.start(logdir, options=options)
                self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1

        def on_epoch_end(self, e, logs=None):
            if e == epoch:
                self.seconds = time.perf_counter() - self._start
                tf.profiler.experimental.stop()

    return ProfileEpoch()


def wait_events(logdir: str) -> list[float]:
    """Durations (s) of every ``IteratorGetNextOp::DoCompute`` in the trace under ``logdir``."""
    try:
        from tsl.profiler.protobuf import xplane_pb2
    except ImportError:  # older layouts of the TensorFlow wheel
        from tensorflow.tsl.profiler.protobuf import xplane_pb2

    durations = []
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            ids = {i for i, m in plane.event_metadata.items() if m.name == WAIT_EVENT}
            for line in plane.lines:
                durations += [ev.duration_ps * 1e-12 for ev in line.events if ev.metadata_id in ids]
    return durations


def input_wait(cfg, songs_ds, num_classes: int, epochs: int = 2, model: str = "cnn2d") -> dict[str, Any]:
    """Fit ``model`` on ``cfg``'s training stream of ``songs_ds``; the last epoch's waiting."""
    from core.config import TrainConfig
    from models.registry import compile_model
    from pipeline.experiments.keras_training import build_keras_model
    from pipeline.experiments.seeding import seed_everything
    from pipeline.stream.dataset import batches_from_songs, count_windows

    seed_everything(cfg.seed)
    train = TrainConfig(model=model)
    net = compile_model(build_keras_model(cfg, train, num_classes),
                        learning_rate=train.learning_rate, optimizer=train.optimizer)
    ds = batches_from_songs(songs_ds, cfg, training=True, num_classes=num_classes)
    steps = -(-count_windows(songs_ds, cfg) // cfg.batch_size)
    with tempfile.TemporaryDirectory(prefix="gtzan_stalls_") as logdir:
        probe = profile_epoch_callback(epochs - 1, logdir)
        # as pipeline.experiments.keras_training fits: one endless stream, epochs in steps
        net.fit(ds.repeat(), steps_per_epoch=steps, epochs=epochs, callbacks=[probe], verbose=0)
        waits = wait_events(logdir)
    return {"input_wait_fraction": sum(waits) / probe.seconds, "stall_model": model,
            "stall_transform": cfg.transform.name, "stall_batch_size": cfg.batch_size,
            "stall_epoch_seconds": probe.seconds, "stall_steps": steps,
            "stall_step_ms": 1000 * probe.seconds / max(steps, 1),
            "stall_wait_ms_per_step": 1000 * sum(waits) / max(len(waits), 1),
            "stall_longest_wait_ms": 1000 * max(waits, default=0.0)}


def stall_line(result: dict[str, Any]) -> str:
    return (f"input stalls ({result['stall_model']} on {result['stall_transform']}, batch "
            f"{result['stall_batch_size']}, model.fit, one profiled epoch of "
            f"{result['stall_steps']} steps, {result['stall_step_ms']:.0f} ms/step): waiting for "
            f"the next batch {result['input_wait_fraction']:.1%} of the time (mean "
            f"{result['stall_wait_ms_per_step']:.1f} ms/step, longest "
            f"{result['stall_longest_wait_ms']:.0f} ms; limit 5 %)")
