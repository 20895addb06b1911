"""gtzan_tfds: the GTZAN music-genre dataset (and a synthetic stand-in) for TensorFlow Datasets.

Importing the package registers the `gtzan_tfds` builder with TFDS:

    import gtzan_tfds  # noqa: F401
    ds = tfds.load("gtzan_tfds/synthetic", split="train")

Importing it is cheap (no TensorFlow): TFDS loads TensorFlow, and the builder the synthesiser,
only when a dataset is built or read.
"""

from gtzan_tfds.gtzan_tfds_dataset_builder import (  # noqa: F401  (registers the builder)
    MANUAL_DOWNLOAD_INSTRUCTIONS,
    Builder,
    GtzanConfig,
)
from gtzan_tfds.manual_data import ManualDataError  # noqa: F401
from gtzan_tfds.song_splits import SPLITS, EmptySplitError  # noqa: F401
