"""TensorFlow names with no public form (see core/versions.py).

``ConverterError`` is what ``tf.lite.TFLiteConverter.convert`` raises for ops it cannot
convert; TensorFlow exports no public name for it.
"""

from __future__ import annotations

from importlib import metadata

from tensorflow.lite.python.convert_phase import ConverterError  # noqa: F401

from core.versions import check_version as _check

DISTRIBUTION = "tensorflow"
SUPPORTED = (">=2.17", "<2.22")


def check_version(installed: str | None = None) -> None:
    """UnsupportedVersionError unless ``installed`` (default: the installed one) is in
    `SUPPORTED`."""
    _check(DISTRIBUTION, installed or metadata.version(DISTRIBUTION), SUPPORTED, __name__)
