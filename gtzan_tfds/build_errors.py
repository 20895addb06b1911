"""Data errors that stop a build, in the form the `tfds build` command prints without a traceback.

The `tfds` command runs under absl's `app.run`, which prints an `absl.app.UsageError` as a
usage line and its message and exits with status 1, and prints every other exception as a
traceback.  A manual directory that is missing or laid out otherwise, or a download too small
for the splits asked for, is the user's to fix, so `Builder.download_and_prepare` raises these
subclasses of the project's errors: Python callers still catch `core.errors.ManualDataError` /
`EmptySplitError` (and the project's CLIs `UserError`), and `tfds build` shows one message.
"""

from __future__ import annotations

from absl import app

from core.errors import EmptySplitError, ManualDataError, UserError


class ManualDataUsageError(ManualDataError, app.UsageError):
    """A ManualDataError that `tfds build` prints as a message, not a traceback."""


class EmptySplitUsageError(EmptySplitError, app.UsageError):
    """An EmptySplitError that `tfds build` prints as a message, not a traceback."""


def for_cli(error: UserError) -> UserError:
    """The same error, as the subclass above that absl's app.run prints cleanly."""
    if isinstance(error, app.UsageError):
        return error
    cls = ManualDataUsageError if isinstance(error, ManualDataError) else EmptySplitUsageError
    return cls(str(error))
