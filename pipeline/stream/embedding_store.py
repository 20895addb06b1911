"""The embedding store: a frozen network's outputs for every window of every song, computed once.

Why it exists: the ``musicnn`` approach is a probe on a frozen network, and the network's pass
is its whole cost (about 24 windows/s on 2 cores); the probe on top fits in seconds.  Without a
store every run, every fold of ``--folds K``, every ``compare`` and tuner trial passes every
song through the network again: K passes for a K-fold run where one would do.

A store is a derived dataset beside the songs, TFRecords like them:

    <root>/<network>-<key[:16]>/
        store.json                       what it holds: the key and every input of it, layers
                                         and their sizes, windows and songs per split, files
        <split>.tfrecord-<i>-of-<n>      tf.train.Example per window, in the evaluation
                                         stream's order: song_id, label, window (index in its
                                         song), split, and one float list per stored layer

``<root>`` is ``DatasetConfig.embedding_dir``, or by default beside the dataset:
``<data_dir>/gtzan_tfds_embeddings/<config>/<version>``.

**The key** is the SHA-256 of every input that changes the stored numbers: the network and its
weights (``FrozenFeatures.identity``: a checksum of the checkpoint files and the feature code's
version), the stored layers, the window and input config (``WindowConfig``, ``TransformConfig``),
TensorFlow's version, and the dataset's fingerprint (builder, config, version, each split's
shard lengths and bytes, and the name, size and modification time of every file of the built
dataset: a rebuild rewrites them).  Any change gives a new key, hence a new store; nothing is
ever read from a store of other inputs.  Fold settings are not in the key: a store holds every
song of every split, and a fold is a filter by song id (``pipeline.stream.folds``).

**Written atomically**: into a temporary folder beside it, ``store.json`` last, then renamed
into place.  A killed build leaves only a ``.tmp-*`` folder nobody reads; two processes
building the same store at once both finish, one rename wins, the other's copy is removed.

**Built in one process** by ``EmbeddingStore.ensure``, with a progress bar; the stream is the
same ``make_dataset(training=False)`` the approach would read otherwise, so its vectors are
those of the streamed path (``tests/test_embedding_store.py``).  Not built with Beam (yet).

**Read once per process and layer** (``EmbeddingStore.windows``): one pass over the files
parses the layer asked for (``tf.io.parse_example`` on batches of records; the other layers'
bytes are skipped), and every split of every fold, train, validation and test evaluation
alike, is a selection of that reading by song id, in the records' order.  A 5-fold run reads
the store once, not 15 times.  Memory: windows x the layer's size x 4 bytes (30 MB for
``max_pool`` on 10,000 windows).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from core.config import SPLITS, PipelineConfig, TrainConfig
from core.errors import ConfigError
from core.files import write_json_atomic
from pipeline.stream import folds

STORE_FORMAT = 1  # bump when the layout of the records changes
STORE_JSON = "store.json"
WINDOWS_PER_FILE = 4096  # ~28 MB of musicnn's three layers per file
DEFAULT_ROOT = "gtzan_tfds_embeddings"
READ_BATCH = 1024  # records parsed per tf.io.parse_example call when a store is read

# (store folder, layer, its files' names, sizes and times) -> StoredWindows: every fold, split
# and run of a process reads its layer of a store from the files once (30 MB for musicnn's
# max_pool on 10,000 windows), not once per split and fold.
_WINDOWS_CACHE: dict[tuple, "StoredWindows"] = {}


def dataset_fingerprint(builder) -> dict:
    """What identifies a built dataset's contents: TFDS's record of it and its files."""
    root = Path(builder.data_dir)
    files = sorted(p for p in root.iterdir() if p.is_file() and ".tfrecord" in p.name)
    return {
        "builder": builder.name, "config": builder.info.config_name,
        "version": str(builder.version),
        "splits": {name: {"shard_lengths": list(info.shard_lengths),
                          "num_bytes": int(info.num_bytes)}
                   for name, info in sorted(builder.info.splits.items())},
        "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files],
    }


def store_inputs(cfg: PipelineConfig, features, builder) -> dict:
    """Everything the stored numbers depend on (hashed into the key)."""
    return {
        "format": STORE_FORMAT, "network": features.name, "identity": features.identity,
        "layers": list(features.layers),
        "window": dataclasses.asdict(cfg.window), "transform": dataclasses.asdict(cfg.transform),
        "tensorflow": tf.__version__, "dataset": dataset_fingerprint(builder),
    }


def store_key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def default_root(builder) -> Path:
    version_dir = Path(builder.data_dir)  # <data_dir>/gtzan_tfds/<config>/<version>
    return version_dir.parents[2] / DEFAULT_ROOT / version_dir.parent.name / version_dir.name


def store_for(cfg: PipelineConfig, train: Optional[TrainConfig], *, verbose: bool = True,
              build: bool = True) -> Optional["EmbeddingStore"]:
    """The built store ``train``'s approach reads on ``cfg`` (built now when missing, unless
    ``build`` is off), or None where the approach has no frozen features,
    ``cfg.dataset.embeddings`` is off, or (``build=False``) the store is not built yet."""
    from models.registry import frozen_features

    if train is None or not cfg.dataset.embeddings:
        return None
    features = frozen_features(train.model, train.hparams)
    if features is None:
        return None
    if not build:
        return EmbeddingStore.find(cfg, features)
    return EmbeddingStore.ensure(cfg, features, verbose=verbose)


class EmbeddingStore:
    """One built store, read for one pipeline config (its dataset, folds and batch size)."""

    def __init__(self, path: Path, cfg: PipelineConfig, features, info: dict):
        self.path, self.cfg, self.features, self.info = Path(path), cfg, features, info

    @classmethod
    def ensure(cls, cfg: PipelineConfig, features, *, verbose: bool = True) -> "EmbeddingStore":
        """The store of ``features`` on ``cfg``'s dataset and windows; built first if missing."""
        return cls._open(cfg, features, build=True, verbose=verbose)

    @classmethod
    def find(cls, cfg: PipelineConfig, features) -> Optional["EmbeddingStore"]:
        """The store of ``features`` on ``cfg``'s dataset and windows if it is built, else None."""
        return cls._open(cfg, features, build=False, verbose=False)

    @classmethod
    def _open(cls, cfg: PipelineConfig, features, *, build: bool, verbose: bool):
        from pipeline.stream.dataset import ensure_built

        builder = ensure_built(cfg.dataset)
        inputs = store_inputs(cfg, features, builder)
        key = store_key(inputs)
        root = Path(cfg.dataset.embedding_dir).expanduser() if cfg.dataset.embedding_dir \
            else default_root(builder)
        path = root / f"{features.name}-{key[:16]}"
        if not (path / STORE_JSON).exists():
            if not build:
                return None
            _build(path, cfg, features, builder, {"key": key, "inputs": inputs}, verbose)
        info = _read_info(path)
        if info.get("key") != key:
            raise ConfigError(f"{path / STORE_JSON}: holds the store {info.get('key')!r}, not "
                              f"{key!r}; remove {path} and run again")
        return cls(path, cfg, features, info)

    # --- reading --------------------------------------------------------------------------
    def _songs(self, split: str) -> Optional[list[str]]:
        if not self.cfg.dataset.folds:
            return None  # the dataset's own split: the records say which
        from pipeline.stream.dataset import ensure_built

        return folds.fold_song_ids(ensure_built(self.cfg.dataset), self.cfg.dataset, split)

    def windows(self, layer: Optional[str] = None) -> "StoredWindows":
        """Every window of the store, ``layer`` only, read once per process (``read_windows``)."""
        layer = layer or self.features.layer
        if layer not in self.info["layers"]:
            raise ConfigError(f"{self.path / STORE_JSON}: no layer {layer!r}; stored: "
                              f"{', '.join(self.info['layers'])}")
        files = [self.path / f for f in self.info["files"]]
        # A rebuilt store (same folder, new files) is read again: its files' sizes and times
        # are part of the cache key.
        key = (str(self.path), layer,
               tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))
        if key not in _WINDOWS_CACHE:
            # (a store of no windows has no dims: nothing was computed)
            _WINDOWS_CACHE[key] = read_windows(files, layer, self.info["dims"].get(layer, 0))
        return _WINDOWS_CACHE[key]

    def _select(self, split: str, layer: Optional[str]):
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        stored = self.windows(layer)
        songs = self._songs(split)
        if songs is None:
            keep = stored.splits == split.encode()
        else:
            keep = np.isin(stored.song_ids, np.asarray([s.encode() for s in songs]))
        return stored.vectors[keep], stored.labels[keep], stored.song_ids[keep].tolist()

    def count(self, split: str) -> int:
        """How many windows ``split`` (of the fold, with folds) holds."""
        return len(self._select(split, None)[2])

    def arrays(self, split: str, layer: Optional[str] = None):
        """(vectors [n, d], labels [n], song ids [n] as bytes) of every window of ``split`` (of
        the fold, with folds), the songs in the order the store holds them, a song's windows in
        order; from the process's one reading of the store (``windows``)."""
        x, y, ids = self._select(split, layer)
        if not ids:
            raise ConfigError(f"split {split!r} of {self.cfg.dataset.name} has no windows")
        return x, y, ids

    def batches(self, split: str, layer: Optional[str] = None) -> tf.data.Dataset:
        """``arrays`` of ``split`` as batches ``(vectors [B, d], label [B], song_id [B])`` of the
        config's batch size (none for a split without windows)."""
        x, y, ids = self._select(split, layer)
        ids = tf.constant(ids, tf.string, shape=[len(ids)])
        return tf.data.Dataset.from_tensor_slices((x, y, ids)).batch(self.cfg.batch_size)


@dataclasses.dataclass(frozen=True)
class StoredWindows:
    """One layer of every window of a store, in the records' order."""
    vectors: np.ndarray   # [n, d] float32
    labels: np.ndarray    # [n] int64
    song_ids: np.ndarray  # [n] bytes (numpy "S")
    splits: np.ndarray    # [n] bytes: the dataset's own split of each window


def read_windows(files: list[Path], layer: str, dims: int) -> StoredWindows:
    """Parse ``layer`` (and song id, label, split) of every record of ``files``, READ_BATCH
    records per ``tf.io.parse_example`` call; the other layers' bytes are skipped unparsed."""
    spec = {"song_id": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
            "split": tf.io.FixedLenFeature([], tf.string),
            layer: tf.io.FixedLenFeature([dims], tf.float32)}
    parts = []
    if files:  # a store of no windows has no files
        ds = tf.data.TFRecordDataset([str(f) for f in files]).batch(READ_BATCH)
        parts = [{k: v.numpy() for k, v in batch.items()}
                 for batch in ds.map(lambda r: tf.io.parse_example(r, spec)).prefetch(1)]
    if not parts:
        return StoredWindows(np.zeros((0, dims), np.float32), np.zeros(0, np.int64),
                             np.zeros(0, "S1"), np.zeros(0, "S1"))

    def column(name, dtype=None):
        values = np.concatenate([p[name] for p in parts])
        return values.astype(dtype) if dtype else values

    return StoredWindows(column(layer), column("label"), column("song_id", "S"),
                         column("split", "S"))


def _read_info(path: Path) -> dict:
    try:
        return json.loads((path / STORE_JSON).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path / STORE_JSON}: unreadable embedding store ({e}); remove "
                          f"{path} and run again") from e


def _example(layers: dict, i: int, label: int, song_id: bytes, window: int, split: str) -> bytes:
    feature = {
        "song_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[song_id])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "window": tf.train.Feature(int64_list=tf.train.Int64List(value=[window])),
        "split": tf.train.Feature(bytes_list=tf.train.BytesList(value=[split.encode()])),
        **{name: tf.train.Feature(float_list=tf.train.FloatList(value=values[i]))
           for name, values in layers.items()},
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


class _ShardWriter:
    """Examples of one split into ``<split>.tfrecord-<i>`` files of WINDOWS_PER_FILE each."""

    def __init__(self, folder: Path, split: str):
        self.folder, self.split, self.files, self.count, self.writer = folder, split, [], 0, None

    def write(self, record: bytes) -> None:
        if self.count % WINDOWS_PER_FILE == 0:
            self.close()
            self.files.append(f"{self.split}.tfrecord-{len(self.files):05d}")
            self.writer = tf.io.TFRecordWriter(str(self.folder / self.files[-1]))
        self.writer.write(record)
        self.count += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _write_split(tmp: Path, cfg: PipelineConfig, features, split: str, bar) -> dict:
    """Stream ``split`` through the network into ``tmp``; returns its files and counts."""
    from pipeline.stream.dataset import make_dataset

    writer, seen, dims = _ShardWriter(tmp, split), {}, {}
    try:
        for x, y, sid in make_dataset(cfg, split, training=False, with_song_id=True):
            layers = {k: np.asarray(v, np.float32) for k, v in features.compute(x).items()}
            dims = {k: int(v.shape[1]) for k, v in layers.items()}
            for i, (label, song) in enumerate(zip(y.numpy(), sid.numpy())):
                window = seen[song] = seen.get(song, -1) + 1
                writer.write(_example(layers, i, int(label), song, window, split))
            bar.update(len(y))
    finally:
        writer.close()
    return {"files": writer.files, "windows": writer.count, "songs": len(seen), "dims": dims}


def _build(path: Path, cfg: PipelineConfig, features, builder, header: dict,
           verbose: bool) -> None:
    """Compute every split into a temporary folder and rename it to ``path``."""
    from tqdm.auto import tqdm

    whole = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, folds=0, fold=0))
    splits = [s for s in SPLITS if s in builder.info.splits]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    start, cpu = time.perf_counter(), time.process_time()
    try:
        with tqdm(desc=f"embedding store {features.name}", unit="window",
                  disable=not verbose, leave=False) as bar:
            parts = {s: _write_split(tmp, whole, features, s, bar) for s in splits}
        dims = next((p["dims"] for p in parts.values() if p["dims"]), {})
        write_json_atomic(tmp / STORE_JSON, {
            **header, "layers": list(features.layers), "dims": dims,
            "files": [f for p in parts.values() for f in p["files"]],
            "splits": {s: {"windows": p["windows"], "songs": p["songs"]} for s, p in parts.items()},
            "build_seconds": round(time.perf_counter() - start, 1),
            "build_cpu_seconds": round(time.process_time() - cpu, 1),
        })
        try:
            tmp.rename(path)
        except OSError:  # another process renamed the same store into place first
            if not (path / STORE_JSON).exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
