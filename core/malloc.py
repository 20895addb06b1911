"""Keep glibc's allocator from growing a long-running stream's memory: fewer malloc arenas.

glibc gives every thread that meets a locked arena a new one (up to 8 per core).  The
pipeline's tf.data and TensorFlow threads free and allocate buffers of 1-70 MB (songs, blocks
of windows, STFT frames) in ever other arenas, and each arena keeps what was freed in it:
measured here, peak RSS streaming 10x the songs grew 10-22 % over 1x with the default
arenas, 1-3 % with two, at the same speed (docs/performance.md).  ``limit_arenas`` is called
by the command-line entry points (``pipeline.cli.entry.run_cli``) before any thread starts;
elsewhere (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8  # mallopt parameter (glibc malloc.h)
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """mallopt(M_ARENA_MAX, arenas) where the C library is glibc; True when it took effect."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no shared C library, or not glibc
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """malloc_trim(0) where the C library is glibc: hand freed heap memory back to the system
    (a server calls it after each request, so one big request does not keep its peak)."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        malloc_trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False
    return bool(malloc_trim(0))
