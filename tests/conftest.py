"""Shared test fixtures: where the repo and the optional shared data are.

`../shared/` (next to the repo root) holds real GTZAN clips for integration tests. A fresh clone
does not have it: tests that need it skip cleanly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
GTZAN_SAMPLE_DIR = SHARED_DIR / "data" / "gtzan_sample"  # genres/<genre>/<genre>.0000N.wav, 5/genre
GTZAN_AU_DIR = SHARED_DIR / "data" / "gtzan_au"  # <genre>/<genre>.00000.au, 1/genre
OUTSIDE_DIR = SHARED_DIR / "data" / "outside"  # non-GTZAN music (ogg), incl. one stereo 44.1 kHz


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def repo_env() -> dict[str, str]:
    """The environment for subprocesses (the `tfds` CLI, Beam workers, `python -c`): this
    checkout first on PYTHONPATH, so they run its code rather than an installed copy."""
    path = [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TFDS_DATA_DIR", None)
    return env


def _require(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"shared data not present: {path}")
    return path


@pytest.fixture(scope="session")
def gtzan_sample_dir() -> Path:
    """50 real GTZAN clips laid out as the archive unpacks (a valid --manual_dir)."""
    return _require(GTZAN_SAMPLE_DIR)


@pytest.fixture(scope="session")
def gtzan_au_dir() -> Path:
    """The sample's 00000 clips as the original Sun .au files."""
    return _require(GTZAN_AU_DIR)


@pytest.fixture(scope="session")
def outside_dir() -> Path:
    """Music that is not in GTZAN (for decoding/predicting unseen files)."""
    return _require(OUTSIDE_DIR)


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory) -> str:
    """A TFDS data dir holding the tiny `synthetic_small` config (40 songs x 9 s), built once."""
    import tensorflow_datasets as tfds

    import gtzan_tfds  # noqa: F401  (registers the builder)

    data_dir = tmp_path_factory.mktemp("tfds_small")
    tfds.builder("gtzan_tfds/synthetic_small", data_dir=str(data_dir)).download_and_prepare()
    return str(data_dir)


@pytest.fixture
def kill_when():
    """``kill_when(proc, condition)``: SIGKILL ``proc`` (a subprocess.Popen) the moment
    ``condition()`` holds; fails if the process ends first or nothing happens in ``timeout`` s."""
    import signal
    import time

    def kill(proc, condition, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert proc.poll() is None, "the process ended before it could be killed"
            assert time.monotonic() < deadline, "the moment to kill it never came"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    return kill


@pytest.fixture
def network_windows(monkeypatch) -> dict:
    """Counts the windows passed through the frozen musicnn network, every way into it
    (``counted["windows"]``)."""
    from models import musicnn_probe

    counted = {"windows": 0}
    for factory in ("_all_layers", "_extractor"):
        real = getattr(musicnn_probe, factory)

        def counting(*args, _real=real):
            fn = _real(*args)

            def run(x):
                counted["windows"] += int(x.shape[0])
                return fn(x)
            return run
        monkeypatch.setattr(musicnn_probe, factory, counting)
    return counted
