"""One writer per run directory, comparison report or tuning project.

Two commands started on the same folder would interleave their writes (two trainings
overwriting each other's checkpoints and metrics).  ``FolderLock`` takes an exclusive
``flock`` on ``<folder>/.lock`` and records who holds it; a second process is refused at once
with a ``BusyError`` naming the holder.  The kernel drops an flock when its process dies, so a
killed command never leaves the folder locked: the next run of the command takes the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Optional

from core.errors import BusyError

LOCK_FILE = ".lock"


class FolderLock:
    """Exclusive, non-blocking lock of a folder, as a context manager.

    ``what`` names the folder in the refusal message ("run directory", "comparison report").
    """

    def __init__(self, folder: os.PathLike | str, what: str = "folder"):
        self.folder = Path(folder)
        self.what = what
        self._file = None

    @property
    def path(self) -> Path:
        return self.folder / LOCK_FILE

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read_holder(f))
            f.close()
            raise BusyError(
                f"{self.folder}: this {self.what} is in use by {holder}; wait for it to finish "
                "or stop it (a killed process releases it), or use another folder"
            ) from None
        f.seek(0)
        f.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                   "command": " ".join(sys.argv)}, f)
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file drops the flock
            self._file = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def clear_locked_folder(folder: os.PathLike | str) -> None:
    """Remove everything in a folder but its lock file (``--overwrite`` under the lock)."""
    import shutil

    folder = Path(folder)
    for entry in folder.iterdir() if folder.is_dir() else ():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _read_holder(f) -> Optional[dict]:
    f.seek(0)
    try:
        return json.loads(f.read() or "null")
    except ValueError:  # the holder was killed while writing its record
        return None


def _describe(holder: Optional[dict]) -> str:
    if not holder:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return (f"process {holder.get('pid')} on {holder.get('host')} "
            f"({holder.get('command') or '?'}, started {started})")
