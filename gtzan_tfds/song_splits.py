"""Song-level train/validation/test splits: seeded genre-stratified, or from shipped lists.

Splitting is by song, never by window: the pipeline cuts songs into windows later, and windows
of one song in two splits would leak.  Every function here returns disjoint splits and
`check_disjoint` proves it.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from core.errors import EmptySplitError
from gtzan_tfds.constants import GENRES

SPLITS = ("train", "validation", "test")
# Shipped list files (gtzan_tfds/splits/<prefix>_<name>.txt) per split.
_LIST_PREFIX = {"train": "train", "validation": "valid", "test": "test"}


def split_sizes(n: int, validation_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, validation, test) counts for one genre of `n` songs.

    Rounded half up, then at least one song for a split with a non-zero fraction when the genre
    has enough songs, so a small copy of GTZAN (5 songs a genre) still validates and tests every
    genre; train always keeps at least one song.  n=100 -> 80/10/10, n=5 -> 3/1/1, n=2 -> 1/0/1.
    """
    if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1
            and validation_fraction + test_fraction < 1):
        raise ValueError(
            f"need 0 <= fractions and validation+test < 1, got "
            f"{validation_fraction}, {test_fraction}"
        )
    n_test = max(1, math.floor(n * test_fraction + 0.5)) if test_fraction > 0 else 0
    n_val = max(1, math.floor(n * validation_fraction + 0.5)) if validation_fraction > 0 else 0
    while n_val + n_test > max(n - 1, 0):  # keep one for train; give up validation first
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def stratified_split(
    song_ids: Iterable[str],
    seed: int,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    *,
    labels: Sequence[str] = GENRES,
    label_of: Optional[Callable[[str], str]] = None,
) -> dict[str, list[str]]:
    """Label-stratified random split of song ids, deterministic for a seed.

    By default the labels are GTZAN's genres and a song id is 'blues.00042'; a folder of your
    own music passes its sorted folder names and `folder_label_of` ('jazz/so_what' -> 'jazz').
    Each label's ids are sorted, then permuted by one generator seeded with `seed`, walked in
    `labels` order: the same ids and seed give the same split on any machine.
    """
    label_of = label_of or genre_of
    by_label: dict[str, list[str]] = {label: [] for label in labels}
    for sid in song_ids:
        by_label[label_of(sid)].append(sid)
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for label in labels:
        ids = sorted(by_label[label])
        if not ids:
            continue
        ids = [ids[i] for i in rng.permutation(len(ids))]
        n_train, n_val, _ = split_sizes(len(ids), validation_fraction, test_fraction)
        out["train"] += ids[:n_train]
        out["validation"] += ids[n_train : n_train + n_val]
        out["test"] += ids[n_train + n_val :]
    return {s: sorted(v) for s, v in out.items()}


def read_split_lists(name: str = "filtered") -> dict[str, list[str]]:
    """Song ids of the lists shipped in gtzan_tfds/splits/{train,valid,test}_<name>.txt.

    Lines look like `blues/blues.00029.wav`; the id is the file name without extension, so a
    list naming .wav matches the original .au files too.
    """
    from importlib import resources  # stdlib; reads package data from a wheel or a checkout

    folder = resources.files("gtzan_tfds").joinpath("splits")
    out = {}
    for split, prefix in _LIST_PREFIX.items():
        text = folder.joinpath(f"{prefix}_{name}.txt").read_text()
        ids = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                base = line.rsplit("/", 1)[-1]
                ids.append(base.rsplit(".", 1)[0] if base.count(".") >= 2 else base)
        out[split] = ids
    check_disjoint(out, what=f"split lists {name!r}")
    return out


def listed_split(
    lists: Mapping[str, Sequence[str]], available: Iterable[str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(ids per split that are available, ids per split named by the lists but absent)."""
    available = set(available)
    present = {s: sorted(i for i in lists[s] if i in available) for s in SPLITS}
    missing = {s: sorted(i for i in lists[s] if i not in available) for s in SPLITS}
    return present, missing


def check_disjoint(splits: Mapping[str, Iterable[str]], what: str = "splits") -> None:
    """Raises ValueError naming the songs that appear in two splits (or twice in one)."""
    seen: dict[str, str] = {}
    clashes = []
    for split, ids in splits.items():
        for sid in ids:
            if sid in seen:
                clashes.append(f"{sid} ({seen[sid]} and {split})")
            seen[sid] = split
    if clashes:
        raise ValueError(f"{what}: {len(clashes)} song(s) in two splits: {', '.join(clashes[:5])}")


def check_not_empty(splits: Mapping[str, Sequence[str]], dataset: str, why: str) -> None:
    """Raises EmptySplitError naming the first split without songs and `why`."""
    for split in SPLITS:
        if not splits[split]:
            raise EmptySplitError(f"{dataset}: split {split!r} is empty: {why}.")


def folder_label_of(song_id: str) -> str:
    """'jazz/so_what' -> 'jazz': a song of your own music is labelled by its folder."""
    return song_id.split("/", 1)[0]


def genre_of(song_id: str) -> str:
    genre = song_id.split(".", 1)[0]
    if genre not in GENRES:
        raise ValueError(f"song id {song_id!r} does not start with a GTZAN genre")
    return genre
