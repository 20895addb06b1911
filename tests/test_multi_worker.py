"""Multi-worker training: real MultiWorkerMirroredStrategy workers on 127.0.0.1 (TF_CONFIG).

- each worker reads only its share of the TFRecord files (two workers report every window
  they see in one epoch of ``keras_training.fit_datasets``'s input);
- ``pipeline.train --strategy multi-worker`` on two workers trains one model with the custom
  loop (``distributed_training``), and a worker killed mid-epoch, then the cluster restarted,
  resumes from the last checkpoint and finishes one complete run directory;
- on one worker the custom loop trains exactly as ``model.fit`` does.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import re
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import json, sys
from pipeline.experiments.keras_training import fit_datasets, get_strategy
strategy = get_strategy("multi-worker")  # first, before any other TF op
from core.config import DatasetConfig, PipelineConfig, TransformConfig, WindowConfig
cfg = PipelineConfig(dataset=DatasetConfig(name="synthetic_small", data_dir=sys.argv[1]),
                     window=WindowConfig(window_seconds=1.5, step_seconds=1.5),
                     transform=TransformConfig(name="raw"), batch_size=8)
train_ds, _ = fit_datasets(cfg, strategy, with_song_id=True)
seen = []
for _x, _y, song_ids in train_ds:  # this worker's own input (Keras splits it among replicas)
    seen += [s.decode() for s in song_ids.numpy()]
from core.errors import ConfigError
from pipeline.experiments.keras_training import check_strategy
try:  # model.fit itself cannot run across workers with Keras 3.15: refused with the reason
    check_strategy(strategy)
    refusal = None
except ConfigError as e:
    refusal = str(e)
json.dump({"seen": seen, "refusal": refusal}, open(sys.argv[2], "w"))
"""


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.timeout(300)
def test_two_workers_together_see_every_song_once_per_epoch(small_data_dir, tmp_path):
    import tensorflow_datasets as tfds

    from core.config import DatasetConfig
    from pipeline.stream.dataset import load_songs

    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2")
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, small_data_dir, str(tmp_path / f"seen{index}.json")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for proc in procs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out[-3000:]
    reports = [json.loads((tmp_path / f"seen{i}.json").read_text()) for i in range(2)]
    seen = [r["seen"] for r in reports]
    assert all("keras-team/keras#20585" in r["refusal"] for r in reports)

    split = [s["song_id"].numpy().decode()
             for s in load_songs(DatasetConfig(name="synthetic_small", data_dir=small_data_dir), "train")]
    songs = [set(s) for s in seen]
    assert songs[0] and songs[1], "a worker got no song"
    assert not songs[0] & songs[1], "a song was read by both workers"
    assert songs[0] | songs[1] == set(split)
    windows = Counter(seen[0] + seen[1])
    assert set(windows.values()) == {6}, "every window of a 9 s song once (six 1.5 s windows)"
    files = tfds.builder("gtzan_tfds/synthetic_small", data_dir=small_data_dir).info.splits["train"].num_shards
    assert files >= 2


# --------------------------------------------------------------------------------------------
# the custom loop on one worker against model.fit
@pytest.mark.timeout(300)
def test_custom_loop_on_one_worker_trains_as_fit_does(small_data_dir, tmp_path):
    """Same seed, data and batches: the loop's per-epoch figures and final weights are fit's
    (both take the first epoch's best model and write the same records)."""
    import tensorflow as tf

    from core.config import DatasetConfig, PipelineConfig, TrainConfig, TransformConfig, WindowConfig
    from pipeline.experiments.distributed_training import HISTORY_COLUMNS, fit_distributed
    from pipeline.experiments.keras_training import fit_keras, read_history
    from pipeline.experiments.run_dir import RunDir
    from pipeline.experiments.seeding import seed_everything

    cfg = PipelineConfig(dataset=DatasetConfig(name="synthetic_small", data_dir=small_data_dir),
                         window=WindowConfig(window_seconds=1.5, step_seconds=1.5),
                         transform=TransformConfig(name="mfcc"), batch_size=16)
    train = TrainConfig(model="cnn1d", epochs=2)
    models, runs = {}, {}
    for name, fit in (("fit", fit_keras), ("custom", fit_distributed)):
        runs[name] = RunDir(tmp_path / name)
        runs[name].path.mkdir()
        seed_everything(cfg.seed)
        models[name], info = fit(cfg, train, runs[name], 10, 0, tf.distribute.get_strategy())
        assert info["epochs_trained"] == 2
    fit_history, custom_history = (read_history(runs[n].history_csv) for n in ("fit", "custom"))
    assert list(custom_history) == list(fit_history) == list(HISTORY_COLUMNS[1:])
    for key in fit_history:
        np.testing.assert_allclose(custom_history[key], fit_history[key], rtol=1e-5, err_msg=key)
    for a, b in zip(models["fit"].get_weights(), models["custom"].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for name in ("best.keras", "training_curves.png", "logs/train", "logs/validation"):
        assert (runs["custom"].path / name).exists(), name



def test_custom_loop_refuses_what_it_cannot_do(monkeypatch):
    from types import SimpleNamespace

    from core.config import PipelineConfig, TrainConfig
    from core.errors import ConfigError
    from pipeline.experiments import distributed_training

    two_replicas = SimpleNamespace(num_replicas_in_sync=2)
    with pytest.raises(ConfigError, match="--batch-size 9 is the global batch: it must divide among the 2"):
        distributed_training.check_distributed(PipelineConfig(batch_size=9), TrainConfig(), two_replicas)
    distributed_training.check_distributed(PipelineConfig(batch_size=8), TrainConfig(), two_replicas)
    monkeypatch.setattr(distributed_training, "several_workers", lambda strategy: True)
    with pytest.raises(ConfigError, match="encoder_classifier: its first training stage"):
        distributed_training.check_distributed(
            PipelineConfig(batch_size=8), TrainConfig(model="encoder_classifier"), two_replicas)
    distributed_training.check_distributed(PipelineConfig(batch_size=8), TrainConfig(model="cnn2d"),
                                           two_replicas)


# --------------------------------------------------------------------------------------------
# pipeline.train --strategy multi-worker: two workers, one killed mid-epoch and the job restarted
TRAIN_ARGS = ["--window-seconds", "1.5", "--step-seconds", "1.5", "--dataset-config", "synthetic_small",
              "--transform", "mfcc", "--model", "cnn1d", "--epochs", "2", "--batch-size", "8",
              "--checkpoint-steps", "3", "--strategy", "multi-worker", "--verbose", "2"]


def _start_workers(workers, args, logs):
    procs = []
    for index, log in enumerate(logs):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2",
                   PYTHONPATH=str(ROOT))
        procs.append(subprocess.Popen([sys.executable, "-m", "pipeline.train", *args], cwd=ROOT,
                                      env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT))
    return procs


def _wait(proc, deadline):
    try:
        return proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker {proc.args} still running at the deadline")


@pytest.mark.timeout(600)
def test_two_workers_train_one_run_and_resume_after_a_worker_is_killed(small_data_dir, tmp_path, capsys):
    import soundfile as sf

    from pipeline import evaluate, predict

    run = tmp_path / "run"
    args = [*TRAIN_ARGS, "--data-dir", small_data_dir, "--run-dir", str(run)]
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    logs = [tmp_path / f"w{i}.{attempt}.log" for attempt in "ab" for i in range(2)]
    procs = []
    deadline = time.monotonic() + 540
    try:
        procs = _start_workers(workers, args, logs[:2])
        checkpoint = run / "backup" / "checkpoint"  # the chief's first mid-epoch checkpoint
        while not checkpoint.exists():
            assert all(p.poll() is None for p in procs), logs[0].read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGKILL)  # worker 1 dies mid-epoch 1
        assert _wait(procs[1], deadline) == -signal.SIGKILL
        # TF: the other workers of a MultiWorkerMirroredStrategy fail (heartbeats stop) ...
        assert _wait(procs[0], deadline) == 2, logs[0].read_text()[-3000:]
        assert "error: another worker of the cluster stopped" in logs[0].read_text()
        assert not (run / "model.keras").exists() and (run / "backup").is_dir()
        procs = _start_workers(workers, args, logs[2:])  # ... and the job is restarted
        for proc, log in zip(procs, logs[2:]):
            assert _wait(proc, deadline) == 0, log.read_text()[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    chief_log = logs[2].read_text()
    assert re.search(r"resuming at epoch \d of 2, step \d+", chief_log), chief_log[-3000:]
    assert "trained in step with the chief" in logs[3].read_text()

    # one complete run directory, the chief's; nothing left by the other worker or the backup
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".log")) == ["run"]
    for name in ("config.json", "training.json", "model.keras", "metrics.json", "history.csv",
                 "training_curves.png", "confusion_matrix.png"):
        assert (run / name).exists(), name
    assert not (run / "backup").exists() and not (run / "best.keras").exists()
    assert list((run / "logs" / "train").iterdir()) and list((run / "logs" / "validation").iterdir())
    training = json.loads((run / "training.json").read_text())
    assert training["training_loop"] == "custom" and training["replicas"] == 2
    assert training["epochs_trained"] == 2
    with open(run / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]  # each epoch once
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_songs"] == 10 and 0.0 <= metrics["window_accuracy"] <= 1.0
    # the run is an ordinary one: pipeline.evaluate and pipeline.predict read it
    assert evaluate.main(["--run", str(run), "--split", "validation", "--quiet"]) == 0
    assert json.loads((run / "metrics_validation.json").read_text())["num_songs"] == 10
    song = tmp_path / "song.wav"
    sf.write(song, 0.1 * np.random.default_rng(0).standard_normal(3 * 22050).astype(np.float32), 22050)
    assert predict.main([str(song), "--run", str(run), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out.splitlines()[-1])["window_probabilities"]) == 2


# --------------------------------------------------------------------------------------------
# equality: two workers against one, for the same seed, data and global batch
EQUALITY_WORKER = """
import json, sys
import numpy as np
from pipeline.experiments.keras_training import build_keras_model, get_strategy
strategy = get_strategy("multi-worker")  # first, before any other TF op
import tensorflow as tf
from core.config import DatasetConfig, PipelineConfig, TrainConfig, TransformConfig, WindowConfig
from models.registry import compile_model
from pipeline.experiments.distributed_training import Steps, distributed_dataset, is_chief
from pipeline.experiments.seeding import configure_determinism, seed_everything
from pipeline.stream.dataset import make_dataset
configure_determinism(True)
cfg = PipelineConfig(dataset=DatasetConfig(name="synthetic_small", data_dir=sys.argv[1]),
                     window=WindowConfig(window_seconds=1.5, step_seconds=1.5),
                     transform=TransformConfig(name="mfcc"), batch_size=16)
STEPS = 16  # two epochs of the 120 training windows


def slices(context):  # every worker reads the whole stream and takes its part of each full batch
    per = context.get_per_replica_batch_size(cfg.batch_size)
    part = lambda x, y: tuple(t[context.input_pipeline_id * per:(context.input_pipeline_id + 1) * per]
                              for t in (x, y))
    whole = lambda x, y: tf.shape(y)[0] == cfg.batch_size  # a worker's slice is never empty
    return make_dataset(cfg, "train", training=True).repeat().filter(whole).map(part)


inputs, dropout = sys.argv[3], float(sys.argv[4])  # one model per process (see the test)
seed_everything(cfg.seed)
with strategy.scope():
    model = build_keras_model(cfg, TrainConfig(model="cnn1d", hparams={"dropout": dropout}), 10)
    if inputs == "slices+syncbn":  # BatchNorm statistics of the global batch, not per replica
        import keras
        sync = lambda layer: (keras.layers.BatchNormalization(**{**layer.get_config(), "synchronized": True})
                              if isinstance(layer, keras.layers.BatchNormalization)
                              else layer.__class__.from_config(layer.get_config()))
        weights, model = model.get_weights(), keras.models.clone_model(model, clone_function=sync)
        model.set_weights(weights)
    compile_model(model)
    model.optimizer.build(model.trainable_variables)
steps = Steps(strategy, model, model.optimizer, False)
ds = (distributed_dataset(cfg, strategy, "train", training=True) if inputs == "files"
      else strategy.distribute_datasets_from_function(slices))
it = iter(ds)
losses = [float(s[0] / s[2]) for s in (steps.train(it).numpy() for _ in range(STEPS))]
val = steps.validate(distributed_dataset(cfg, strategy, "validation", training=False))
out = {"losses": losses, "val_loss": val[0] / val[2], "val_accuracy": val[1] / val[2],
       "weights": [w.tolist() for w in model.get_weights()]}
if is_chief(strategy):
    json.dump(out, open(sys.argv[2], "w"))
"""


def _run_cluster(n, script, args, timeout):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(n)]
    procs = []
    try:
        for index in range(n):
            tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2",
                       PYTHONPATH=str(ROOT))
            procs.append(subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outs = [proc.communicate(timeout=timeout)[0] for proc in procs]
        for index, (proc, out) in enumerate(zip(procs, outs)):
            assert proc.returncode == 0, f"worker {index}:\n{out[-3000:]}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _relative_difference(a, b) -> float:
    a = np.concatenate([np.ravel(w) for w in a])
    b = np.concatenate([np.ravel(w) for w in b])
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_workers_train_as_one_worker_within_the_stated_tolerance(small_data_dir, tmp_path):
    """The figures docs/distributed.md quotes (printed; pytest -s shows them).

    Same seed, data and global batch (16), 16 steps of cnn1d on mfcc.  With "slices" (and no
    dropout) every worker takes its half of the same full global batches one worker sees: the
    two runs differ only by per-replica BatchNorm statistics (8 windows instead of 16) and by
    the order of the sums; with "slices+syncbn" (BatchNormalization(synchronized=True)) only by
    the order of the sums.  With "files" (what pipeline.train does: each worker reads its own
    files) the global batches hold other windows as well, so the runs take other paths."""
    modes = (("files", "0.3"), ("slices", "0.0"), ("slices+syncbn", "0.0"))
    runs = {(n, inputs, dropout) for n in (1, 2) for inputs, dropout in modes
            if (n, inputs) != (1, "slices+syncbn")}  # one worker: syncbn is plain BatchNorm
    results = {}
    for n, inputs, dropout in sorted(runs):
        out = tmp_path / f"{n}_{inputs}_{dropout}.json"
        _run_cluster(n, EQUALITY_WORKER, [small_data_dir, str(out), inputs, dropout], 600)
        results[n, inputs, dropout] = json.loads(out.read_text())
    figures = {}
    for inputs, dropout in modes:
        one = results[1, inputs.replace("+syncbn", ""), dropout]
        two = results[2, inputs, dropout]
        figures[f"{inputs}, dropout {dropout}"] = {
            "weights": _relative_difference(one["weights"], two["weights"]),
            "first_loss": abs(one["losses"][0] - two["losses"][0]),
            "last_loss": abs(one["losses"][-1] - two["losses"][-1]),
            "val_loss": abs(one["val_loss"] - two["val_loss"]),
            "val_accuracy": abs(one["val_accuracy"] - two["val_accuracy"]),
        }
    print(json.dumps(figures, indent=1))
    print(json.dumps({f"{n} {i} {d}": {k: v for k, v in r.items() if k != "weights"}
                      for (n, i, d), r in results.items()}, indent=1))
    same = figures["slices, dropout 0.0"]  # per-replica BatchNorm statistics: close, not equal
    assert 0 < same["first_loss"] < 0.05 and same["weights"] < 0.1 and same["val_loss"] < 0.1
    synced = figures["slices+syncbn, dropout 0.0"]  # and without them: float rounding only
    one, two = results[1, "slices", "0.0"], results[2, "slices+syncbn", "0.0"]
    np.testing.assert_allclose(two["losses"], one["losses"], atol=1e-5)
    assert synced["weights"] < 1e-5 and synced["val_loss"] < 1e-5 and synced["val_accuracy"] == 0
