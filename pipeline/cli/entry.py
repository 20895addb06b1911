"""How every command-line entry point runs: a quiet start-up and one-line exits for user errors.

``python -m pipeline.train`` and the other commands end with ``run_cli(main)``.  It quiets
TensorFlow's C++ start-up chatter and the library warnings that say nothing to a user, runs
``main``, and turns a ``core.errors.UserError`` (bad input, bad flag, bad data: the message is
the whole story) into one ``error: ...`` line with exit status 2.  Every other exception is a
bug and stays a traceback.  Nothing happens on import: the environment is changed by
``run_cli`` only, before ``main`` imports TensorFlow (which is also when it caps glibc's
malloc arenas, ``core.malloc``, so that streaming memory stays flat).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from typing import Callable

from core.errors import UserError
from core.malloc import limit_arenas

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

# Library chatter that says nothing to a user of these commands.
_NOISE = (
    "`FeatureConnector.dtype` is deprecated",  # TFDS internals reading its own features
    "`shuffle=True` was passed",  # Keras: our tf.data pipeline shuffles itself
    "Your input ran out of data",  # Keras: epochs end when the streamed split ends
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in _NOISE)


def quiet_startup() -> None:
    """Keep TF's C++ start-up lines and known-irrelevant warnings out of the terminal.

    TF_CPP_MIN_LOG_LEVEL only works when set before TensorFlow is imported, which is why the
    entry points import their heavy modules inside ``main``.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for text in _NOISE:
        warnings.filterwarnings("ignore", message=".*" + re.escape(text))
    logging.getLogger("absl").addFilter(_DropNoise())


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run ``main``; a UserError becomes one line on stderr and exit status 2."""
    quiet_startup()
    limit_arenas()
    try:
        code = main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        code = EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        code = EXIT_INTERRUPTED
    sys.exit(code)
