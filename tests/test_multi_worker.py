"""Multi-worker input: each worker reads only its share of the TFRecord files.

Two real MultiWorkerMirroredStrategy workers on 127.0.0.1 (TF_CONFIG) build their training
input with ``keras_training.fit_datasets`` — the function ``pipeline.train --strategy
multi-worker`` uses — and report every window they see in one epoch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

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
