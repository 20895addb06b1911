"""Songs found in a manual directory: one record per file, and a sorted, depth-limited listing.

Shared by the two layouts the builder reads (a GTZAN download, `manual_data`; a folder per label
of your own music, `folder_data`).  The listing goes through `tf.io.gfile`, so the manual
directory may be local or remote (`gs://bucket/music`); paths are strings for that reason
(`pathlib` would fold `gs://` into `gs:/`).  It is sorted at every level, so what is found,
and which of two files with the same song id wins, is the same on every machine.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from typing import Iterator

SKIP_DIRS = frozenset({"__MACOSX"})  # the resource forks macOS adds to zip archives


@dataclasses.dataclass(frozen=True)
class SongFile:
    """One song of a manual directory."""

    song_id: str  # "blues.00042" (GTZAN) or "jazz/so_what" (a folder of your own music)
    label: str  # the class name: a GTZAN genre or the song's folder
    path: str  # the file to decode: a local path or a URL such as gs://bucket/x.wav
    relpath: str  # path relative to the folder searched, "/"-separated


def join(root: str, relpath: str) -> str:
    """`root` + "/"-separated `relpath`, for local paths and URLs alike."""
    return posixpath.join(os.fspath(root), relpath) if relpath else os.fspath(root)


def walk(root: str, max_depth: int) -> Iterator[tuple[str, list[str]]]:
    """(folder relative to `root` with "/", sorted file names in it), depth first, sorted.

    Searches `root` and the folders down to `max_depth` levels below it; hidden entries
    (".name", "._name" files macOS leaves) and `SKIP_DIRS` are left out.
    """
    import tensorflow as tf  # start-up cost: only when a manual directory is searched

    root = os.fspath(root)
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        files, dirs = [], []
        for entry in sorted(tf.io.gfile.listdir(join(root, rel_dir))):
            name = entry.rstrip("/")  # remote file systems mark folders with a trailing "/"
            if name.startswith(".") or name in SKIP_DIRS:
                continue
            path = join(root, posixpath.join(rel_dir, name))
            if entry.endswith("/") or tf.io.gfile.isdir(path):
                dirs.append(posixpath.join(rel_dir, name))
            else:
                files.append(name)
        yield rel_dir, files
        depth = len(rel_dir.split("/")) if rel_dir else 0
        if depth < max_depth:
            pending.extend(reversed(dirs))  # popped in sorted order


def is_dir(path: str) -> bool:
    import tensorflow as tf  # start-up cost: only when a manual directory is searched

    return tf.io.gfile.isdir(os.fspath(path))


def list_dir(path: str) -> list[str]:
    """Sorted entry names of a folder (no trailing "/")."""
    import tensorflow as tf  # start-up cost: only when a manual directory is searched

    return sorted(e.rstrip("/") for e in tf.io.gfile.listdir(os.fspath(path)))
