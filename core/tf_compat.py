"""TensorFlow names with no public form (see core/compat.py).

``ConverterError`` is what ``tf.lite.TFLiteConverter.convert`` raises for ops it cannot
convert; TensorFlow exports no public name for it.
"""

from __future__ import annotations

from tensorflow.lite.python.convert_phase import ConverterError  # noqa: F401

from core.compat import check_supported

DISTRIBUTION = "tensorflow"
SUPPORTED = ">=2.17,<2.22"


def check_version():
    return check_supported(DISTRIBUTION, SUPPORTED, __name__)
