"""The Keras Tuner internals this project relies on, where Keras Tuner has no public form.

Everything else in ``tuning/`` uses Keras Tuner's public API only; what is here was read from
keras-tuner 1.4.7-1.4.8 and is checked against `SUPPORTED` (`check_version`, called when a
tuner is made; ``tests/test_compat.py`` fails on another version).  Why each piece exists:

- `oracle_file`, `trial_file`, `tuner_file`: where an Oracle and a Tuner keep their state; an
  Oracle does not expose its project folder.
- `AtomicStateFiles`: oracle.json and trial.json written atomically (temp + rename).  Keras
  Tuner writes them in place, so a kill mid-write leaves a file the resume cannot parse, and
  ``Oracle._save_trial`` is the only place trial.json is written.
- `retry_queue`, `count_as_run`: the queue of trials to run again and the run counts, which
  the resume repairs after a kill (``tuning.tuners``).
- `serve_oracle`: the chief's gRPC server, Keras Tuner's own servicer, but polled every second
  (not every 20 s) for the end of the search and stopped cleanly, so the chief goes on to the
  summary and the retraining.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import keras_tuner

from core.files import write_json_atomic
from core.versions import check_version as _check

SUPPORTED = (">=1.4.7", "<1.5")


def check_version(installed: str = keras_tuner.__version__) -> None:
    """UnsupportedVersionError unless `installed` is in `SUPPORTED`."""
    _check("keras-tuner", installed, SUPPORTED, __name__)


def oracle_file(oracle) -> str:
    return oracle._get_oracle_fname()


def trial_file(oracle, trial_id: str) -> str:
    return os.path.join(oracle._get_trial_dir(trial_id), "trial.json")


def tuner_file(tuner) -> str:
    """The file whose presence makes a Tuner reload its project."""
    return tuner._get_tuner_fname()


def retry_queue(oracle) -> list:
    """The oracle's queue of trial ids to run again (mutable)."""
    return oracle._retry_queue


def count_as_run(oracle, trial_id: str) -> None:
    """Record that `trial_id` ran, so an ended trial is not retried."""
    oracle._run_times[trial_id] = max(oracle._run_times[trial_id], 1)


def save_trial(oracle, trial) -> None:
    oracle._save_trial(trial)


def _is_local(path: str) -> bool:
    return "://" not in str(path)


class AtomicStateFiles:
    """Oracle mixin: oracle.json and trial_*/trial.json written atomically."""

    def save(self):
        fname = oracle_file(self)
        if _is_local(fname):
            write_json_atomic(Path(fname), self.get_state())
        else:  # pragma: no cover (cloud storage: keras_tuner's own writer)
            super().save()

    def _save_trial(self, trial):
        fname = trial_file(self, trial.trial_id)
        if _is_local(fname):
            write_json_atomic(Path(fname), trial.get_state())
        else:  # pragma: no cover
            super()._save_trial(trial)


def serve_oracle(oracle, address: str, poll_seconds: float = 1.0) -> None:
    """Serve `oracle` to the workers at `address` until every worker was told to stop."""
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer, exit_chief

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"the chief cannot listen on {address} (port in use?)")
    server.start()
    print(f"chief: oracle served on {address}; waiting for workers", flush=True)
    try:
        while not (servicer.stop_triggered and exit_chief(oracle)):
            time.sleep(poll_seconds)
    finally:
        server.stop(grace=2.0)
