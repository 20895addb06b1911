"""What every command-line entry point shares: quiet TF start-up and clean error exits."""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from typing import Callable

# Keep TF's C++ start-up chatter out of the user's terminal (set before TF is imported).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXIT_USAGE = 2

# Library chatter that says nothing to a user of these commands.
_NOISE = (
    "`FeatureConnector.dtype` is deprecated",  # TFDS internals reading its own features
    "`shuffle=True` was passed",  # Keras: our tf.data pipeline shuffles itself
    "Your input ran out of data",  # Keras: epochs end when the streamed split ends
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in _NOISE)


def quiet_library_noise() -> None:
    for text in _NOISE:
        warnings.filterwarnings("ignore", message=".*" + re.escape(text))
    logging.getLogger("absl").addFilter(_DropNoise())


quiet_library_noise()


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is the whole story: print it, no traceback."""
    from core.config import ConfigError

    errors: list[type[BaseException]] = [ConfigError, FileNotFoundError]
    try:
        from pipeline.stream.dataset import DatasetNotBuiltError

        errors.append(DatasetNotBuiltError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from gtzan_tfds.audio_io import AudioDecodeError
        from gtzan_tfds.manual_data import ManualDataError
        from gtzan_tfds.song_splits import EmptySplitError

        # A missing/wrong --manual-dir, or a download that leaves a split empty, reaches the
        # CLIs when they build a real config on first use.
        errors += [AudioDecodeError, ManualDataError, EmptySplitError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run `main`, turning the known user errors into one line on stderr and exit status 2."""
    try:
        code = main(argv)
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        code = 130
    sys.exit(code)
