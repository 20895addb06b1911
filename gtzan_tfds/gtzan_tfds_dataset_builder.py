"""gtzan_tfds: GTZAN music genres as int16 TFRecords, a synthetic stand-in, or your own music.

Configs built by `tfds build gtzan_tfds` (no download needed), in this order:
- `synthetic`: generated songs in GTZAN's format; its size is a config field.
- `synthetic_small`: a tiny synthetic variant for tests and smoke runs.
Configs that read files you provide, built when named (`--config gtzan --manual_dir DIR`):
- `gtzan`: every song of a GTZAN download, seeded genre-stratified 80/10/10 song split.
- `fault_filtered`: the artist-disjoint split of Kereliuk, Sturm & Larsen (2015), from the lists
  shipped in gtzan_tfds/splits/.
- `folder`: your own music, one folder per label (`<manual_dir>/<label>/*.mp3|wav|...`).

Custom configs: `Builder(config=GtzanConfig(name="synthetic_x10", songs_per_genre=160))`, or
`tfds build gtzan_tfds --config '{"name": "synthetic_x10", "songs_per_genre": 160}'`.

Generation runs in this process by default, and with Apache Beam when the build is given Beam
options or a runner (`--beam_pipeline_options "runner=DirectRunner,direct_num_workers=2"`);
see generation.py and docs/dataset_build.md for when each is faster.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator, Optional

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from core.config import BUILD_MAX_SONG_SECONDS
from core.errors import EmptySplitError, ManualDataError
from gtzan_tfds import build_errors, build_report, generation, song_splits
from gtzan_tfds.constants import CLIP_SECONDS, GENRES, SAMPLE_RATE
from gtzan_tfds.instructions import HOMEPAGE, MANUAL_DOWNLOAD_INSTRUCTIONS, NEXT_STEPS
from gtzan_tfds import tfds_compat
from gtzan_tfds.tfds_compat import GenerationHooks, with_song_shards
from gtzan_tfds.split_plan import SplitPlan, plan_dataset

_SYNTHETIC_SONGS_PER_GENRE = 16  # default synthetic size: 160 songs, 120/20/20, ~210 MB
_SMALL_SONGS_PER_GENRE = 4  # synthetic_small: 40 songs, 20/10/10
_SMALL_CLIP_SECONDS = 9.0  # three 3 s windows per song
_SOURCES = ("synthetic", "manual", "folder")

@dataclasses.dataclass(eq=False)
class GtzanConfig(tfds.core.BuilderConfig):
    """A gtzan_tfds variant: where the songs come from and how they are split.

    Attributes:
      source: "synthetic" (generated), "manual" (a GTZAN download in the manual dir) or
        "folder" (your own music in the manual dir, one folder per label).
      split_lists: None for a seeded label-stratified random split; else the name of shipped
        lists gtzan_tfds/splits/{train,valid,test}_<name>.txt ("filtered", "stratified").
      songs_per_genre: synthetic only: songs generated per genre.
      clip_seconds: synthetic only: length of each song.
      seed: seeds the synthetic audio and the random split.
      validation_fraction, test_fraction: of each label's songs, for the random split.
      max_song_seconds: manual and folder: a file holding more audio than this is skipped,
        with the reason in build_report.json (read from its header before decoding: a small
        file can hold hours of audio, which would become one example of hundreds of MB that
        training reads whole).  None: no limit.
    """

    source: str = "synthetic"
    split_lists: Optional[str] = None
    songs_per_genre: int = _SYNTHETIC_SONGS_PER_GENRE
    clip_seconds: float = CLIP_SECONDS
    seed: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    max_song_seconds: Optional[float] = BUILD_MAX_SONG_SECONDS

    def __post_init__(self):
        if self.source not in _SOURCES:
            raise ValueError(f"source must be one of {_SOURCES}, got {self.source!r}")
        if self.source != "manual" and self.split_lists:
            raise ValueError("split_lists name GTZAN songs; they need source='manual'")
        if self.max_song_seconds is not None and self.max_song_seconds <= 0:
            raise ValueError(f"max_song_seconds must be positive, got {self.max_song_seconds}")
        if self.songs_per_genre < 1 or self.clip_seconds <= 0:
            raise ValueError("songs_per_genre must be >= 1 and clip_seconds > 0")
        song_splits.split_sizes(10, self.validation_fraction, self.test_fraction)  # validates


_NO_DOWNLOAD_CONFIGS = [
    GtzanConfig(
        name="synthetic",
        description=(
            f"Generated songs in GTZAN's format ({_SYNTHETIC_SONGS_PER_GENRE} per genre, "
            "30 s, 22,050 Hz) whose genres differ in tempo, rhythm, harmony, timbre and "
            "noise; no download. A smoke test for pipelines, not music."
        ),
        source="synthetic",
    ),
    GtzanConfig(
        name="synthetic_small",
        description=(
            f"A tiny synthetic variant ({_SMALL_SONGS_PER_GENRE} songs per genre, "
            f"{_SMALL_CLIP_SECONDS:g} s) for tests and quick smoke runs; builds in seconds."
        ),
        source="synthetic",
        songs_per_genre=_SMALL_SONGS_PER_GENRE,
        clip_seconds=_SMALL_CLIP_SECONDS,
    ),
]
_MANUAL_CONFIGS = [
    GtzanConfig(
        name="gtzan",
        description="All songs of a GTZAN download; seeded genre-stratified 80/10/10 split.",
        source="manual",
    ),
    GtzanConfig(
        name="fault_filtered",
        description=(
            "The artist-disjoint, fault-filtered split of Kereliuk, Sturm & Larsen (2015): "
            "443/197/290 songs of a full GTZAN download."
        ),
        source="manual",
        split_lists="filtered",
    ),
    GtzanConfig(
        name="folder",
        description=(
            "Your own music, one folder per label (<manual_dir>/<label>/*.mp3|wav|flac|ogg|au); "
            "labels are the folder names, sorted; seeded label-stratified 80/10/10 split."
        ),
        source="folder",
    ),
]


class Builder(GenerationHooks, tfds.core.GeneratorBasedBuilder):
    """GTZAN (Tzanetakis & Cook 2002) songs as int16 audio, with song-level splits."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: int16 audio; synthetic, gtzan, fault_filtered and folder.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    # `tfds build gtzan_tfds` with no --config builds every entry of BUILDER_CONFIGS in turn and
    # stops at the first failure (tensorflow_datasets/scripts/cli/build.py, `_make_builders`),
    # and nothing public tells a builder whether it was named or is one of "every config". So
    # BUILDER_CONFIGS holds the configs that need no download (a fresh machine builds them and
    # exits 0), and the configs reading a manual dir are found by name only, through
    # `builder_configs` below. Pinned by tests/test_builder.py (test_cli_*, test_configs_*).
    BUILDER_CONFIGS = _NO_DOWNLOAD_CONFIGS
    MANUAL_CONFIGS = _MANUAL_CONFIGS

    @tfds.core.utils.classproperty
    @classmethod
    def builder_configs(cls) -> dict[str, GtzanConfig]:
        """Every named config, by name: what TFDS looks a config up in (`get_builder_config`,
        `tfds.builder("gtzan_tfds/gtzan")`, `Builder(config="folder")`)."""
        return {c.name: c for c in [*cls.BUILDER_CONFIGS, *cls.MANUAL_CONFIGS]}

    def _info(self) -> tfds.core.DatasetInfo:
        # The `folder` config's labels are its folders' names, known once the manual dir is
        # searched: `_split_generators` sets them (TFDS's way for labels found at build time),
        # TFDS stores them with the dataset (label.labels.txt beside dataset_info.json), and a
        # reader's `info.features["label"].names` gets them back from there.
        names = None if self.builder_config.source == "folder" else GENRES
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                # Encoding.BYTES stores the int16 samples as raw bytes: without it TFDS
                # up-casts integers to int64 in the tf.train.Example (4x the disk).
                "audio": tfds.features.Audio(
                    dtype=np.int16,
                    sample_rate=SAMPLE_RATE,
                    encoding=tfds.features.Encoding.BYTES,
                    doc="Mono int16 PCM at 22,050 Hz.",
                ),
                "label": tfds.features.ClassLabel(names=names),
                "song_id": tfds.features.Text(
                    doc="GTZAN song id (blues.00042), or <label>/<file stem> for `folder`."
                ),
                "filename": tfds.features.Text(
                    doc="Path of the source file in the manual dir ('' for synthetic songs)."
                ),
                "duration_seconds": tfds.features.Scalar(
                    dtype=np.float32, doc="Length of the audio in seconds."
                ),
            }),
            supervised_keys=("audio", "label"),
            homepage=HOMEPAGE,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        plan = plan_dataset(self.builder_config, self._dataset_name(), dl_manager)
        if self.builder_config.source == "folder":
            self.info.features["label"].names = list(plan.labels)
        return {name: self._generate_examples(split) for name, split in plan.splits.items()}

    def _generate_examples(self, split: SplitPlan):
        """The split's examples: a generator, or a Beam transform when Beam was asked for."""
        audio_feature = self.info.features["audio"]
        if self._beam_requested:
            return generation.with_beam(split, audio_feature, self.data_dir)
        return generation.in_process(split, audio_feature, self.data_dir)

    def generate_splits_around(self, dl_manager, download_config, generate):
        """TFDS's split generation, with song-sized shards, the Beam choice, and the build
        report at the end (called through `GenerationHooks`)."""
        tfds_compat.check_version()  # before anything is written
        beam = download_config.beam_runner is not None or download_config.beam_options is not None
        with _generation_request(self, beam=beam):
            split_infos = generate(with_song_shards(download_config))
        written = {info.name: info.num_examples for info in split_infos}
        if download_config.max_examples_per_split is not None:  # a debug run stopped early
            logging.warning("No build report: --max_examples_per_split capped the splits.")
            build_report.discard_parts(self.data_dir)
            return split_infos
        report = build_report.assemble(self.data_dir, self._dataset_name(), written)
        log = logging.info if build_report.is_clean(report) else logging.warning
        log("%s", build_report.summary(report))
        return split_infos

    def on_beam_result(self, pipeline_result) -> None:
        """Logs the Beam counters of a Beam build (songs written and skipped per split)."""
        beam = tfds.core.lazy_imports.apache_beam
        query = beam.metrics.MetricsFilter().with_namespace(generation.METRICS_NAMESPACE)
        counters = pipeline_result.metrics().query(query)["counters"]
        totals = sorted((c.key.metric.name, c.committed) for c in counters)
        logging.info("Beam counters: %s", ", ".join(f"{n} {v}" for n, v in totals) or "none")

    def download_and_prepare(self, *, download_dir=None, download_config=None, **kwargs):
        """As TFDS's; a manual dir or download that cannot work stops `tfds build` with a
        message, not a traceback (build_errors.py), and the last config `tfds build
        gtzan_tfds` builds says how to build the configs that need a download."""
        try:
            super().download_and_prepare(
                download_dir=download_dir, download_config=download_config, **kwargs
            )
        except (ManualDataError, EmptySplitError) as e:
            raise build_errors.for_cli(e) from e
        if self.builder_config.name == self.BUILDER_CONFIGS[-1].name:
            logging.info("%s", NEXT_STEPS)

    def _dataset_name(self) -> str:
        return f"{self.name}/{self.builder_config.name}"


@contextlib.contextmanager
def _generation_request(builder: Builder, *, beam: bool) -> Iterator[None]:
    """Tells `_generate_examples` whether to return a Beam transform, for one generation.

    TFDS hands the DownloadConfig (which holds the Beam options) to `_generate_splits` only,
    and `_split_generators` gets the download manager alone; TFDS itself forwards its temporary
    `_data_dir` this way. This carries the user's request in, for the duration of one call,
    and is gone after it; it never carries a result out.
    """
    builder._beam_requested = beam  # pylint: disable=protected-access
    try:
        yield
    finally:
        del builder._beam_requested  # pylint: disable=protected-access
