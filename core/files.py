"""Writing files so that a kill never leaves half of one behind.

Run directories, reports, tuning projects and build reports are read back by later commands
(to resume, to report): a file is written to a temporary name beside its target and renamed
over it, so a reader sees the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: os.PathLike | str, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file + rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: os.PathLike | str, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2) + "\n")
