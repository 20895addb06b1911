"""gtzan_tfds: the GTZAN music-genre dataset, a synthetic stand-in and your own labelled music,
for TensorFlow Datasets.

Importing the package registers the `gtzan_tfds` builder with TFDS:

    import gtzan_tfds  # noqa: F401
    ds = tfds.load("gtzan_tfds/synthetic", split="train")
    names = tfds.builder("gtzan_tfds/folder", data_dir=...).info.features["label"].names

Importing it is cheap (no TensorFlow): TFDS loads TensorFlow, and the builder the synthesiser
and the decoder, only when a dataset is built or read.
"""

from core.errors import EmptySplitError, ManualDataError  # noqa: F401  (the builder raises them)
from gtzan_tfds.gtzan_tfds_dataset_builder import (  # noqa: F401  (registers the builder)
    Builder,
    GtzanConfig,
)
from gtzan_tfds.instructions import MANUAL_DOWNLOAD_INSTRUCTIONS  # noqa: F401
from gtzan_tfds.song_splits import SPLITS  # noqa: F401
