"""The project's error family: one base class for everything that is the user's to fix.

A ``UserError`` is bad input, a bad flag or bad data: its message is the whole story (it names
the file or the flag and says what is wrong), so the command-line entry points print it as one
``error: ...`` line and exit with status 2.  Every other exception is a bug and stays a
traceback.  Code that raises for a user's mistake raises one of these classes; code never
catches a broad exception to turn it into one.
"""

from __future__ import annotations

import os
from typing import Optional


class UserError(Exception):
    """Something the user can fix: the message says what and where."""


class ConfigError(UserError, ValueError):
    """A configuration value, flag or combination that cannot work; the message says why."""


class RunDirError(ConfigError):
    """A run directory that is missing, incomplete, damaged or from another configuration."""


class BusyError(UserError):
    """A run directory, report or search that another live process is writing."""


class WorkerLostError(UserError):
    """A worker of a multi-worker cluster stopped mid-training: restart them all to resume."""


class DatasetNotBuiltError(UserError):
    """The TFRecords of a dataset config are missing and cannot be built automatically."""


class ManualDataError(UserError):
    """A manual download that is missing or not laid out as expected; the message says what to do."""


class EmptySplitError(UserError):
    """A split would hold no song; the message says why."""


class WeightsNotFoundError(UserError):
    """Pretrained weights that are not installed; the message says how to install them."""


class AudioDecodeError(UserError):
    """A file that cannot be decoded; the message names the file and the reason.

    ``AudioDecodeError("x.wav: empty file")`` works like any exception; ``path`` and ``reason``
    are set too when the decoder raises it (see ``for_file``).
    """

    def __init__(self, message: str, *, path: Optional[str] = None, reason: Optional[str] = None):
        super().__init__(message)
        self.path = path
        self.reason = reason if reason is not None else message

    @classmethod
    def for_file(cls, path, reason: str) -> "AudioDecodeError":
        return cls(f"{os.fspath(path)}: {reason}", path=os.fspath(path), reason=reason)


class AudioTooLongError(AudioDecodeError):
    """Audio longer than the entry point's decoded-duration limit; the message names the file,
    its duration (or how much was decoded before the limit stopped it) and the limit."""


class TimeLimitError(UserError):
    """Work on one request that ran past its time limit; the message names the limit."""
