"""gtzan_tfds: GTZAN music genres as int16 TFRecords, plus a synthetic stand-in.

Configs (in this order, so `tfds build gtzan_tfds` builds `synthetic` first):
- `synthetic`: generated songs in GTZAN's format (no download); its size is a config field.
- `gtzan`: every song of a manual download, seeded genre-stratified 80/10/10 song split.
- `fault_filtered`: the artist-disjoint split of Kereliuk, Sturm & Larsen (2015), from the lists
  shipped in gtzan_tfds/splits/.

Custom configs: `Builder(config=GtzanConfig(name="synthetic_x10", songs_per_genre=160))`, or
`tfds build gtzan_tfds --config '{"name": "synthetic_x10", "songs_per_genre": 160}'`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from tensorflow_datasets.core.utils import shard_utils

from gtzan_tfds import manual_data, song_splits
from gtzan_tfds.constants import CLIP_SECONDS, GENRES, SAMPLE_RATE
from gtzan_tfds.manual_data import ManualDataError
from gtzan_tfds.song_splits import SPLITS, EmptySplitError

_HOMEPAGE = "http://marsyas.info/downloads/datasets.html"
_SYNTHETIC_SONGS_PER_GENRE = 16  # default synthetic size: 160 songs, 120/20/20, ~210 MB
_SMALL_SONGS_PER_GENRE = 4  # synthetic_small: 40 songs, 20/10/10
_SMALL_CLIP_SECONDS = 9.0  # three 3 s windows per song
_TARGET_SHARD_BYTES = 16 << 20  # ~12 songs a shard: GTZAN's train split is ~64 shards
_MIN_SHARDS_PER_SPLIT = 4  # so even a small split can be read in parallel
_REPORT_FILE = "build_report.json"  # written next to the TFRecords
_MAX_NAMES_SHOWN = 5  # names quoted in log lines (missing songs, skipped files)

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
The `gtzan` and `fault_filtered` configs read a GTZAN download you provide (it is not
redistributed with this project). Get `genres.tar.gz` (1.2 GB) from {_HOMEPAGE}
or a mirror, or the Kaggle copy ("GTZAN Dataset - Music Genre Classification", archive.zip), and
put it, or the folder it unpacks to, in a directory given as the manual dir:

  tfds build gtzan_tfds --config gtzan --manual_dir ~/gtzan

or in Python: tfds.load("gtzan_tfds/gtzan", download_and_prepare_kwargs={{"download_config":
tfds.download.DownloadConfig(manual_dir="~/gtzan")}}). The default manual dir is
<data_dir>/downloads/manual.
{manual_data.EXPECTED_LAYOUT}"""


@dataclasses.dataclass(eq=False)
class GtzanConfig(tfds.core.BuilderConfig):
    """A gtzan_tfds variant: where the songs come from and how they are split.

    Attributes:
      source: "synthetic" (generated) or "manual" (a GTZAN download in the manual dir).
      split_lists: None for a seeded genre-stratified random split; else the name of shipped
        lists gtzan_tfds/splits/{train,valid,test}_<name>.txt ("filtered", "stratified").
      songs_per_genre: synthetic only: songs generated per genre.
      clip_seconds: synthetic only: length of each song.
      seed: seeds the synthetic audio and the random split.
      validation_fraction, test_fraction: of each genre's songs, for the random split.
    """

    source: str = "synthetic"
    split_lists: Optional[str] = None
    songs_per_genre: int = _SYNTHETIC_SONGS_PER_GENRE
    clip_seconds: float = CLIP_SECONDS
    seed: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.1

    def __post_init__(self):
        if self.source not in ("synthetic", "manual"):
            raise ValueError(f"source must be 'synthetic' or 'manual', got {self.source!r}")
        if self.source == "synthetic" and self.split_lists:
            raise ValueError("split_lists name GTZAN songs; they need source='manual'")
        if self.songs_per_genre < 1 or self.clip_seconds <= 0:
            raise ValueError("songs_per_genre must be >= 1 and clip_seconds > 0")
        song_splits.split_sizes(10, self.validation_fraction, self.test_fraction)  # validates


class Builder(tfds.core.GeneratorBasedBuilder):
    """GTZAN (Tzanetakis & Cook 2002) songs as int16 audio, with song-level splits."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: int16 audio, synthetic/gtzan/fault_filtered."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [
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
    ]

    def _info(self) -> tfds.core.DatasetInfo:
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
                "label": tfds.features.ClassLabel(names=GENRES),
                "song_id": tfds.features.Text(doc="GTZAN song id, e.g. blues.00042."),
                "filename": tfds.features.Text(
                    doc="Path of the source file in the download ('' for synthetic songs)."
                ),
                "duration_seconds": tfds.features.Scalar(
                    dtype=np.float32, doc="Length of the audio in seconds."
                ),
            }),
            supervised_keys=("audio", "label"),
            homepage=_HOMEPAGE,
        )

    # --- splits ---------------------------------------------------------------------------
    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        cfg = self.builder_config
        self._report = _BuildReport(dataset=f"{self.name}/{cfg.name}")
        if cfg.source == "synthetic":
            from gtzan_tfds.synthetic_audio import song_id  # numpy/scipy: only when building

            ids = [song_id(g, i) for g in GENRES for i in range(cfg.songs_per_genre)]
            assignment = song_splits.stratified_split(
                ids, cfg.seed, cfg.validation_fraction, cfg.test_fraction
            )
            songs = None
            why_empty = (
                f"{cfg.songs_per_genre} song(s) per genre are too few for "
                f"validation_fraction={cfg.validation_fraction}, test_fraction={cfg.test_fraction}"
            )
        else:
            try:
                songs = manual_data.locate_songs(
                    self._manual_dir(dl_manager), extract=dl_manager.extract
                )
            except ManualDataError as e:  # say how to provide the download, not just the layout
                reason = str(e).splitlines()[0]
                raise ManualDataError(f"{reason}\n\n{MANUAL_DOWNLOAD_INSTRUCTIONS}") from None
            counts = manual_data.genre_counts(songs)
            logging.info("Songs per genre: %s", _counts_text(counts))
            if cfg.split_lists:
                lists = song_splits.read_split_lists(cfg.split_lists)
                assignment, missing = song_splits.listed_split(lists, songs)
                self._report.missing = {s: ids for s, ids in missing.items() if ids}
                self._log_missing(missing)
                listed = {i for ids in lists.values() for i in ids}
                unlisted = sorted(set(songs) - listed)
                if unlisted:
                    logging.info(
                        "%d song(s) of the download are in none of the %r lists and left out "
                        "(the lists drop faulty and duplicated songs), e.g. %s",
                        len(unlisted), cfg.split_lists, ", ".join(unlisted[:_MAX_NAMES_SHOWN]),
                    )
                why_empty = (
                    f"none of the songs the {cfg.split_lists!r} lists name for it is in the "
                    f"download ({len(songs)} songs found)"
                )
            else:
                assignment = song_splits.stratified_split(
                    songs, cfg.seed, cfg.validation_fraction, cfg.test_fraction
                )
                why_empty = (
                    f"the download has too few songs per genre ({_counts_text(counts)}) for "
                    f"validation_fraction={cfg.validation_fraction}, "
                    f"test_fraction={cfg.test_fraction}"
                )
        song_splits.check_disjoint(assignment, what=self._report.dataset)
        for split in SPLITS:
            if not assignment[split]:
                raise EmptySplitError(
                    f"{self._report.dataset}: split {split!r} is empty: {why_empty}."
                )
        self._report.assigned = {s: len(assignment[s]) for s in SPLITS}
        return {
            split: self._generate_examples(
                split=split,
                song_ids=assignment[split],
                files=None if songs is None else [songs[i] for i in assignment[split]],
            )
            for split in SPLITS
        }

    def _generate_examples(
        self, split: str, song_ids: list[str], files: Optional[list[manual_data.SongFile]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yields (song_id, example); skips (and reports) files that do not decode."""
        from gtzan_tfds import audio_io, synthetic_audio  # numpy/scipy/soundfile: only here

        cfg = self.builder_config
        written, first_skip = 0, len(self._report.skipped)
        if files is None:
            for sid in song_ids:
                genre, index = sid.split(".")
                audio = synthetic_audio.generate_song(
                    genre, int(index), seed=cfg.seed, clip_seconds=cfg.clip_seconds
                )
                written += 1
                yield sid, self._example(audio, genre, sid, "")
        else:
            for song in files:
                try:
                    audio = audio_io.to_int16(audio_io.read_audio(song.path, SAMPLE_RATE))
                except audio_io.AudioDecodeError as e:
                    logging.warning("Skipping %s: %s", song.relpath, e.reason)
                    self._report.skipped.append({"file": song.relpath, "reason": e.reason})
                    continue
                written += 1
                yield song.song_id, self._example(audio, song.genre, song.song_id, song.relpath)
        self._report.written[split] = written
        if not written:
            skipped = self._report.skipped[first_skip:][:_MAX_NAMES_SHOWN]
            reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped)
            raise EmptySplitError(
                f"{self._report.dataset}: split {split!r} is empty: all {len(song_ids)} song(s) "
                f"assigned to it were skipped as undecodable ({reasons})."
            )
        self._finish_split()

    def _example(self, audio: np.ndarray, genre: str, sid: str, filename: str) -> dict[str, Any]:
        # tfds.features.Audio passes numpy arrays through without applying its `encoding`, so
        # Encoding.BYTES would be lost (the serializer then rejects the int16 array). Run the
        # Tensor encoding it skips (int16 -> raw bytes, with its dtype/shape checks) and hand
        # Audio the result; on disk and when read it is a standard Audio feature.
        audio_bytes = tfds.features.Tensor.encode_example(self.info.features["audio"], audio)
        return {
            "audio": np.array(audio_bytes, dtype=object),
            "label": genre,
            "song_id": sid,
            "filename": filename,
            "duration_seconds": np.float32(len(audio) / SAMPLE_RATE),
        }

    # --- reporting ------------------------------------------------------------------------
    def _finish_split(self) -> None:
        """Writes the build report so far; logs the summary once every split is written."""
        report = self._report
        # self.data_dir is TFDS's temporary folder during generation: the report lands in the
        # dataset folder with the TFRecords, when (and only if) the build completes.
        (Path(self.data_dir) / _REPORT_FILE).write_text(json.dumps(report.to_json(), indent=1))
        if len(report.written) == len(SPLITS):
            log = logging.warning if report.skipped or report.missing else logging.info
            log("%s", report.summary())

    def _log_missing(self, missing: dict[str, list[str]]) -> None:
        total = sum(len(v) for v in missing.values())
        if total:
            names = [i for s in SPLITS for i in missing[s]]
            logging.warning(
                "%d song(s) named by the split lists are absent from the download (%s), e.g. %s",
                total, ", ".join(f"{s} {len(missing[s])}" for s in SPLITS),
                ", ".join(names[:_MAX_NAMES_SHOWN]),
            )

    @property
    def build_report(self) -> Optional[dict[str, Any]]:
        """What the last build in this process wrote, skipped and missed (None before)."""
        report = getattr(self, "_report", None)
        return report.to_json() if report else None

    # --- manual dir, sharding, CLI --------------------------------------------------------
    def _manual_dir(self, dl_manager: tfds.download.DownloadManager) -> Path:
        try:
            return Path(dl_manager.manual_dir)
        except AssertionError:
            # TFDS raises AssertionError for a missing or empty manual dir; locate_songs
            # raises our ManualDataError instead, naming the layout expected.
            return Path(dl_manager._manual_dir)  # pylint: disable=protected-access

    def _generate_splits(self, dl_manager, download_config):
        return super()._generate_splits(dl_manager, _ShardingDownloadConfig.of(download_config))

    def download_and_prepare(self, *, download_dir=None, download_config=None, **kwargs):
        """As TFDS's, with clean `tfds build` behaviour for real configs without data.

        `tfds build gtzan_tfds` with no --config builds every config in BUILDER_CONFIGS order
        and stops at the first exception, printed as a traceback (scripts/cli/build.py). So
        when this runs inside `tfds build` (see `_tfds_build_request`):
        - building every config, without --manual_dir: a real config whose data is absent is
          skipped with the instructions printed, and the command still exits 0 (a fresh
          machine gets `synthetic`);
        - otherwise (--config named, or --manual_dir given): a data problem (ManualDataError,
          EmptySplitError) prints its message and exits 1, without a traceback.
        Outside the CLI these exceptions propagate as they are.
        """
        try:
            super().download_and_prepare(
                download_dir=download_dir, download_config=download_config, **kwargs
            )
        except (ManualDataError, EmptySplitError) as e:
            request = _tfds_build_request(self)
            if request is None:
                raise
            full_name = f"{self.name}/{self.builder_config.name}"
            if not (isinstance(e, ManualDataError) and request.every_config
                    and not request.manual_dir_given):
                detail = str(e) if str(e).startswith(full_name) else f"{full_name}: {e}"
                raise SystemExit(f"ERROR: cannot build {detail}") from None
            later = [c.name for c in self.BUILDER_CONFIGS[self._config_index() + 1 :]]
            all_manual_left = all(self.builder_configs[c].source == "manual" for c in later)
            skipped = [self.builder_config.name] + (later if all_manual_left else [])
            logging.warning("No GTZAN download found: skipping %s.", ", ".join(skipped))
            print(
                f"\nSkipped {', '.join(f'{self.name}/{c}' for c in skipped)}: "
                f"they need a GTZAN download: {str(e).splitlines()[0]}\n\n"
                f"{MANUAL_DOWNLOAD_INSTRUCTIONS}\n",
                flush=True,
            )
            if all_manual_left and request.num_datasets == 1:
                # End `tfds build` here, successfully: the configs left need the same missing
                # download, and returning would make the CLI print "generation completed" and
                # the info of a dataset it did not build.
                raise SystemExit(0) from None

    def _config_index(self) -> int:
        names = [c.name for c in self.BUILDER_CONFIGS]
        name = self.builder_config.name
        return names.index(name) if name in names else len(names)


@dataclasses.dataclass
class _BuildReport:
    """Counts of one build, for the log summary and build_report.json."""

    dataset: str
    assigned: dict[str, int] = dataclasses.field(default_factory=dict)
    written: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)
    missing: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        written = ", ".join(f"{s} {self.written.get(s, 0)}" for s in SPLITS)
        parts = [f"{self.dataset} build report: wrote {written} songs"]
        skipped = "; ".join(f"{s['file']} ({s['reason']})" for s in self.skipped)
        parts.append(f"skipped {len(self.skipped)} file(s)" + (f": {skipped}" if skipped else ""))
        n_missing = sum(len(v) for v in self.missing.values())
        if n_missing:
            names = [i for v in self.missing.values() for i in v][:_MAX_NAMES_SHOWN]
            parts.append(f"{n_missing} listed song(s) missing, e.g. {', '.join(names)}")
        return "; ".join(parts)


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{g} {n}" for g, n in counts.items())


@dataclasses.dataclass(frozen=True)
class _SongShardConfig(shard_utils.ShardConfig):
    """Shards of about `target_shard_size`, at least `_MIN_SHARDS_PER_SPLIT` per split.

    TFDS 4.9.10's own choice cannot give small shards: `ShardConfig.get_number_shards` calls a
    classmethod that reads the class defaults (64 MiB min, 1 GiB max), so `--max_shard_size_mb`
    has no effect and a 130 MB split is one file. `--num_shards` is honoured (capped at the
    number of examples, where TFDS would fail), and `--max_shard_size_mb` lowers the target.
    """

    target_shard_size: int = _TARGET_SHARD_BYTES

    def get_number_shards(
        self, total_size: int, num_examples: int, uses_precise_sharding: bool = True
    ) -> int:
        if self.num_shards:
            return max(1, min(self.num_shards, num_examples))
        n = math.ceil((total_size + num_examples * self.overhead) / self.target_shard_size)
        return max(1, min(num_examples, max(n, _MIN_SHARDS_PER_SPLIT)))


@dataclasses.dataclass
class _ShardingDownloadConfig(tfds.download.DownloadConfig):
    """A DownloadConfig whose shard config is `_SongShardConfig`."""

    @classmethod
    def of(cls, config: Optional[tfds.download.DownloadConfig]) -> "_ShardingDownloadConfig":
        config = config or tfds.download.DownloadConfig()
        fields = dataclasses.fields(config)
        return cls(**{f.name: getattr(config, f.name) for f in fields if f.init})

    def get_shard_config(self) -> shard_utils.ShardConfig:
        return _SongShardConfig(
            num_shards=self.num_shards,
            min_shard_size=self.min_shard_size,
            max_shard_size=self.max_shard_size,
            target_shard_size=min(self.max_shard_size, _TARGET_SHARD_BYTES),
        )


@dataclasses.dataclass(frozen=True)
class _CliRequest:
    every_config: bool  # no config named: the CLI builds every BUILDER_CONFIGS entry in turn
    manual_dir_given: bool  # --manual_dir on the command line
    num_datasets: int  # datasets named on the command line


def _tfds_build_request(builder: tfds.core.DatasetBuilder) -> Optional[_CliRequest]:
    """What `tfds build` was asked, when this process is inside it; otherwise None.

    The builder's own arguments look the same whether the CLI builds every config or the one
    named by --config, so this reads the CLI's parsed arguments from the `Args.execute` frame
    of tensorflow_datasets/scripts/cli/build.py on the call stack (TFDS is pinned; the CLI tests
    in tests/test_builder.py fail if this stops matching). With --num_processes > 1 the frame
    is in another process: None, and errors propagate as usual.
    """
    build_cli = sys.modules.get("tensorflow_datasets.scripts.cli.build")
    execute = getattr(getattr(build_cli, "Args", None), "execute", None)
    code = getattr(execute, "__code__", None)
    if code is None:
        return None
    frame = sys._getframe(1)  # pylint: disable=protected-access
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    if frame is None:
        return None
    local = frame.f_locals
    args = local.get("self")
    generation = getattr(args, "generation", None)
    paths = getattr(args, "paths", None)
    if generation is None or paths is None:
        return None
    named = generation.config is not None or generation.config_idx is not None
    # `tfds build gtzan_tfds/gtzan` names the config in the dataset argument instead.
    for builder_cls, kwargs in local.get("builders_cls_and_kwargs") or []:
        if isinstance(builder, builder_cls) and kwargs.get("config") is not None:
            named = True
    return _CliRequest(
        every_config=not named,
        manual_dir_given=paths.manual_dir is not None,
        num_datasets=len(local.get("datasets") or [None]),
    )
