"""k-fold cross-validation by song: which songs make up the train, validation and test split
of one fold.

Why it exists: on a small dataset one fixed test split is noise (10 songs: one song is 10
points); cross-validation tests every song exactly once and says how much the figure varies.
Folds are cut by **song**, never by window, so no song has windows on both sides.

With ``DatasetConfig.folds = K > 0`` the songs of ``fold_splits`` (TFDS split syntax, default
all three splits) are pooled and dealt into K folds (``assign_folds``: stratified by genre,
sizes within one song of each other, deterministic for ``fold_seed``).  For fold ``i``:

    test        fold i
    validation  fold (i + 1) % K   (early stopping and model selection: never the test fold)
    train       the other K - 2 folds

so the K test folds partition the songs, and within a fold the three splits are disjoint.
With 50 songs and K = 5 that is 30 / 10 / 10 songs, as the dataset's own gtzan split.

``fold_song_ids`` reads only song ids and labels (audio is not decoded) once per process and
dataset; ``keep_songs`` filters a songs dataset to one split's ids with a
``tf.lookup.StaticHashTable``, inside the tf.data graph.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from core.config import DatasetConfig
from core.errors import EmptySplitError

# Files read at once for the song index: pipeline.stream.dataset.READ_FILES_AT_ONCE, which
# cannot be imported here (dataset imports this module).
READ_FILES_AT_ONCE = 2
# (data dir of the built dataset, pooled splits) -> (song ids, labels), read once per process
_INDEX_CACHE: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}


def assign_folds(song_ids: Sequence[str], labels: Sequence[int], k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of each song: stratified by genre, balanced, deterministic.

    Within each genre (in label order) the songs are sorted by id, so the order they are
    stored in does not matter, then shuffled with ``seed``; all songs are then dealt to the
    folds in turn, genre after genre without restarting, so fold sizes differ by at most one
    song and each genre's count per fold by at most one.
    """
    ids = np.asarray([str(s) for s in song_ids])
    labels = np.asarray(labels)
    if len(set(ids)) != len(ids):
        raise ValueError("song ids are not unique: folds would put one song in two places")
    rng = np.random.default_rng(seed)
    folds = np.empty(len(ids), dtype=np.int64)
    dealt = 0
    for genre in np.unique(labels):
        members = np.flatnonzero(labels == genre)
        members = rng.permutation(members[np.argsort(ids[members], kind="stable")])
        folds[members] = (dealt + np.arange(len(members))) % k
        dealt += len(members)
    return folds


def folds_of_split(split: str, fold: int, k: int) -> set[int]:
    """Which folds make up ``split`` of fold ``fold`` out of ``k``."""
    test, validation = fold, (fold + 1) % k
    if split == "test":
        return {test}
    if split == "validation":
        return {validation}
    return set(range(k)) - {test, validation}


def song_index(builder, splits: str) -> tuple[np.ndarray, np.ndarray]:
    """(song ids, labels) of the songs of ``splits`` (e.g. "train+validation+test").

    One pass that decodes only ids and labels, cached per process and built dataset.
    """
    import tensorflow_datasets as tfds

    key = (str(builder.data_dir), splits)
    if key not in _INDEX_CACHE:
        wanted = tfds.decode.PartialDecoding({"label": True, "song_id": True})
        # A few files at a time, one song from each in turn, as the songs' stream reads them
        # (dataset.READ_FILES_AT_ONCE): TFDS's default of 16 files, 16 songs from each, kept
        # +1 GB of serialized songs in flight on 1,000 songs (peak 1.8 GB against 0.9 GB).
        read = tfds.ReadConfig(try_autocache=False, interleave_cycle_length=READ_FILES_AT_ONCE,
                               interleave_block_length=1)
        ds = builder.as_dataset(split=splits, shuffle_files=False, decoders=wanted,
                                read_config=read)
        ids, labels = [], []
        for song in ds.as_numpy_iterator():
            ids.append(song["song_id"].decode())
            labels.append(int(song["label"]))
        _INDEX_CACHE[key] = (np.asarray(ids), np.asarray(labels, dtype=np.int64))
    return _INDEX_CACHE[key]


def fold_song_ids(builder, dataset_cfg: DatasetConfig, split: str) -> list[str]:
    """Song ids of ``split`` of the fold ``dataset_cfg`` selects (sorted).

    EmptySplitError when the split would hold no song (fewer songs than folds).
    """
    ids, labels = song_index(builder, dataset_cfg.fold_splits)
    k = dataset_cfg.folds
    folds = assign_folds(ids, labels, k, dataset_cfg.fold_seed)
    chosen = sorted(ids[np.isin(folds, sorted(folds_of_split(split, dataset_cfg.fold, k)))])
    if not chosen:
        raise EmptySplitError(
            f"fold {dataset_cfg.fold} of {k} has no {split} songs: {dataset_cfg.name} "
            f"({dataset_cfg.fold_splits}) holds {len(ids)} songs; use fewer --folds"
        )
    return chosen


def keep_songs(songs: tf.data.Dataset, song_ids: Sequence[str]) -> tf.data.Dataset:
    """The songs of ``songs`` whose ``song_id`` is one of ``song_ids``."""
    keys = tf.constant(list(song_ids), dtype=tf.string)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys, dtype=tf.int32)),
        default_value=0,
    )
    return songs.filter(lambda song: table.lookup(song["song_id"]) > 0)
