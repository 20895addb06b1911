"""TFDS's own builder test (tfds.testing.DatasetBuilderTestCase) on the files in
gtzan_tfds/dummy_data/ (written by gtzan_tfds/dummy_data/make_dummy_data.py).

TFDS's datasets keep this test beside the builder (<name>_dataset_builder_test.py); this
project's tests live in tests/. The harness builds each config with the dummy files as the
manual dir, checks the example count of every split, that no example is in two splits, the
features' shapes and types, that a reloaded builder reads the same, and that the builder uses
tf.io.gfile rather than `os`/`open`. The deeper checks are in tests/test_builder*.py.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow_datasets as tfds

from gtzan_tfds import Builder

DUMMY_DATA = Path(__file__).resolve().parents[1] / "gtzan_tfds" / "dummy_data"


class GtzanConfigTest(tfds.testing.DatasetBuilderTestCase):
    """A GTZAN download: blues x3 (.au), classical x3 (.wav), an empty jazz.00054.wav."""

    DATASET_CLASS = Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["gtzan"]
    EXAMPLE_DIR = str(DUMMY_DATA / "gtzan")
    SPLITS = {"train": 2, "validation": 2, "test": 2}  # 1/1/1 per genre; jazz's file skipped


class FolderConfigTest(tfds.testing.DatasetBuilderTestCase):
    """Your own music: 3 labels of FLAC, Ogg and MP3 at 44.1/16/48 kHz, and a broken .wav."""

    DATASET_CLASS = Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["folder"]
    EXAMPLE_DIR = str(DUMMY_DATA / "folder")
    SPLITS = {"train": 3, "validation": 3, "test": 3}  # keys/broken.wav was planned for train


class SyntheticSmallConfigTest(tfds.testing.DatasetBuilderTestCase):
    """The generated config the pipeline builds on first use (no files read)."""

    DATASET_CLASS = Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["synthetic_small"]
    EXAMPLE_DIR = str(DUMMY_DATA)
    SPLITS = {"train": 20, "validation": 10, "test": 10}

