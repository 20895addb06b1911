"""The run directory's lifecycle: what training and evaluation each write, resuming after a
kill at any point, one writer at a time, and datasets beyond the built-in configs.

Runs on gtzan_tfds/synthetic_small with 1.5 s windows (a few seconds per training).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import BusyError, ConfigError
from pipeline import evaluate, train
from pipeline.experiments.locking import FolderLock

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--window-seconds", "1.5", "--step-seconds", "1.5", "--epochs", "2", "--verbose", "0",
        "--dataset-config", "synthetic_small"]


def _train(run: Path, data_dir: str, *extra) -> int:
    return train.main([*FAST, "--data-dir", data_dir, "--run-dir", str(run), "--transform", "mfcc",
                       "--model", "cnn1d", *extra])


@pytest.fixture()
def run(tmp_path, small_data_dir) -> Path:
    run = tmp_path / "run"
    assert _train(run, small_data_dir) == 0
    return run


def _stamps(run: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()}


def test_evaluate_keeps_what_training_recorded(run):
    """Bug: evaluate rewrote metrics.json without the training fields, and a later compare
    crashed with KeyError 'transform'. Training's record now lives apart, untouched."""
    training = (run / "training.json").read_text()
    assert evaluate.main(["--run", str(run), "--quiet"]) == 0
    assert (run / "training.json").read_text() == training
    record = json.loads(training)
    assert record["model"] == "cnn1d" and record["transform"] == "mfcc"
    assert {"training_seconds", "validation_window_accuracy", "validation_song_accuracy"} <= set(record)
    metrics = json.loads((run / "metrics.json").read_text())
    assert "training_seconds" not in metrics and metrics["num_songs"] == 10


@pytest.mark.timeout(400)
def test_killed_after_the_model_save_is_evaluated_not_retrained(tmp_path, small_data_dir):
    """Bug: a kill after model.keras was saved but before metrics.json was written made the
    re-run train again from epoch 0. A real training process is SIGKILLed as soon as its
    model.keras appears (before the test split's metrics.json); the same command then
    evaluates the committed model and rewrites nothing that training wrote."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "pipeline.train", *FAST, "--data-dir", small_data_dir,
           "--run-dir", str(run), "--transform", "mfcc", "--model", "cnn1d"]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (run / "model.keras").exists():
        assert first.poll() is None, "training ended before it was killed"
        assert time.monotonic() < deadline, "model.keras never appeared"
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not (run / "metrics.json").exists(), "the kill came too late to test this point"
    before = _stamps(run)
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    after = _stamps(run)
    for name in ("model.keras", "training.json", "history.csv", "config.json"):
        assert after[name] == before[name], f"{name} was rewritten: the run was retrained"
    assert json.loads((run / "metrics.json").read_text())["num_songs"] == 10


def test_a_second_writer_is_refused_and_a_killed_one_releases_the_lock(tmp_path, small_data_dir):
    """Two trainings on one run directory would interleave their writes: the second is refused
    at once, naming the first; a SIGKILLed holder leaves nothing locked."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "pipeline.train", *FAST, "--data-dir", small_data_dir,
           "--run-dir", str(run), "--transform", "mfcc", "--model", "cnn1d", "--epochs", "500",
           "--patience", "500"]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_holder(run / ".lock", first)
        with pytest.raises(BusyError, match=rf"in use by process {first.pid} .*pipeline.train"):
            _train(run, small_data_dir, "--epochs", "500", "--patience", "500")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with FolderLock(run, "run directory"):  # the kill released it
        pass


def _wait_for_holder(lock: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == proc.pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError("the training never took its lock")


def test_folder_lock_names_the_holder_and_is_released(tmp_path):
    folder = tmp_path / "report"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pipeline.experiments.locking import FolderLock; "
         f"lock = FolderLock({str(folder)!r}, 'comparison report').acquire(); print('held', flush=True); "
         "time.sleep(600)"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match=rf"comparison report is in use by process {holder.pid}"):
            FolderLock(folder, "comparison report").acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = FolderLock(folder, "comparison report").acquire()
    lock.release()


@pytest.mark.timeout(300)
def test_training_killed_mid_run_resumes_from_its_backup(tmp_path, small_data_dir):
    """The fast version of the slow kill test: SIGKILL once an epoch is backed up; the same
    command resumes from there and every epoch is in history.csv once."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "pipeline.train", *FAST, "--data-dir", small_data_dir,
           "--run-dir", str(run), "--transform", "mfcc", "--model", "cnn1d", "--epochs", "6",
           "--patience", "100", "--verbose", "2"]
    metadata = run / "backup" / "training_metadata.json"
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 200
    while not (metadata.exists() and metadata.stat().st_size):
        assert first.poll() is None, "training ended before it was killed"
        assert time.monotonic() < deadline, "no epoch finished in time"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done = json.loads(metadata.read_text())["epoch"]
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=200)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from epoch {done + 1} of 6" in second.stdout
    epochs = [line.split(",")[0] for line in (run / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [str(i) for i in range(6)]
    assert (run / "metrics.json").exists() and not (run / "backup").exists()


def test_a_custom_dataset_config_trains_by_json_and_then_by_name(tmp_path, small_data_dir):
    """A config the README shows as JSON (like `tfds build --config '{...}'`) builds and
    trains, and once built it is found by its name."""
    data_dir = str(tmp_path / "tfds")
    custom = '{"name": "synthetic_tiny", "songs_per_genre": 3, "clip_seconds": 3.0}'
    base = ["--window-seconds", "1.5", "--step-seconds", "1.5", "--epochs", "1", "--verbose", "0",
            "--data-dir", data_dir,
            "--transform", "mfcc", "--model", "rf"]
    assert train.main([*base, "--dataset-config", custom, "--run-dir", str(tmp_path / "a")]) == 0
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["num_songs"] == 10 and metrics["num_windows"] == 20  # 1 test song a genre
    assert train.main([*base, "--dataset-config", "synthetic_tiny", "--run-dir", str(tmp_path / "b")]) == 0
    with pytest.raises(ConfigError, match="unknown dataset config 'synthetic_huge'.*JSON"):
        train.main([*base, "--dataset-config", "synthetic_huge", "--run-dir", str(tmp_path / "c")])
    assert not (tmp_path / "c").exists()
