"""What each split of a build is made of, decided before any song is decoded.

A plan is plain data (songs, and what the build report will say about songs that are not
there), so the same plan feeds generation in this process or on Beam workers.  One function per
source of songs: generated (`synthetic`), a GTZAN download (`gtzan`, `fault_filtered`) and a
folder of your own labelled music (`folder`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Union

import tensorflow_datasets as tfds
from absl import logging

from core.errors import ManualDataError
from gtzan_tfds import folder_data, manual_data, song_splits
from gtzan_tfds.constants import GENRES, SONGS_PER_GENRE
from gtzan_tfds.instructions import MANUAL_DOWNLOAD_INSTRUCTIONS
from gtzan_tfds.song_files import SongFile
from gtzan_tfds.song_splits import SPLITS

_SHOWN = 5  # names quoted in a log line


@dataclasses.dataclass(frozen=True)
class Synthesis:
    """How the songs of a synthetic config are generated."""

    seed: int
    clip_seconds: float


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """One split: its songs (ids to generate, or files to decode) and the listed songs absent."""

    dataset: str  # "gtzan_tfds/gtzan", for messages
    split: str
    songs: tuple[Union[str, SongFile], ...]  # song ids when `synthesis` is set, else files
    synthesis: Optional[Synthesis] = None
    missing: tuple[str, ...] = ()  # named by the split lists, absent from the download
    # decoded songs longer than this are skipped (the reason in the build report); None: any
    max_song_seconds: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class DatasetPlan:
    labels: tuple[str, ...]  # the ClassLabel names, in index order
    splits: dict[str, SplitPlan]


def plan_dataset(config: Any, dataset: str, dl_manager: Any) -> DatasetPlan:
    """The plan of `config` (a GtzanConfig); `dl_manager` is TFDS's download manager.

    Raises:
      ManualDataError: a manual directory that is missing, empty or laid out otherwise.
      EmptySplitError: a split would hold no song.
    """
    if config.source == "synthetic":
        return _plan_synthetic(config, dataset)
    try:
        manual_dir = _manual_dir(dl_manager)
        if config.source == "folder":
            return _plan_folder(config, dataset, manual_dir)
        return _plan_gtzan(config, dataset, manual_dir, _extractor(dl_manager))
    except ManualDataError as e:  # what was wrong, then how to provide the data
        reason = str(e).splitlines()[0]
        raise ManualDataError(f"{reason}\n\n{MANUAL_DOWNLOAD_INSTRUCTIONS}") from None


def _plan_synthetic(config: Any, dataset: str) -> DatasetPlan:
    from gtzan_tfds.synthetic_audio import song_id  # numpy/scipy: only when building

    ids = [song_id(g, i) for g in GENRES for i in range(config.songs_per_genre)]
    assignment = song_splits.stratified_split(
        ids, config.seed, config.validation_fraction, config.test_fraction
    )
    song_splits.check_not_empty(
        assignment, dataset,
        f"{config.songs_per_genre} song(s) per genre are too few for "
        f"validation_fraction={config.validation_fraction}, test_fraction={config.test_fraction}",
    )
    synthesis = Synthesis(seed=config.seed, clip_seconds=config.clip_seconds)
    splits = {s: SplitPlan(dataset, s, tuple(assignment[s]), synthesis) for s in SPLITS}
    return DatasetPlan(GENRES, splits)


def _plan_gtzan(config: Any, dataset: str, manual_dir: str, extract) -> DatasetPlan:
    songs = manual_data.locate_songs(manual_dir, extract=extract)
    counts = manual_data.genre_counts(songs)
    _warn_if_incomplete(counts)
    missing = {s: [] for s in SPLITS}
    if config.split_lists:
        lists = song_splits.read_split_lists(config.split_lists)
        assignment, missing = song_splits.listed_split(lists, songs)
        _log_unlisted(songs, lists, missing, config.split_lists)
        why = (f"none of the songs the {config.split_lists!r} lists name for it is in the "
               f"download ({len(songs)} songs found)")
    else:
        assignment = song_splits.stratified_split(
            songs, config.seed, config.validation_fraction, config.test_fraction
        )
        why = (f"the download has too few songs per genre ({_counts_text(counts)}) for "
               f"validation_fraction={config.validation_fraction}, "
               f"test_fraction={config.test_fraction}")
    song_splits.check_disjoint(assignment, what=dataset)
    song_splits.check_not_empty(assignment, dataset, why)
    splits = {
        s: SplitPlan(dataset, s, tuple(songs[i] for i in assignment[s]), missing=tuple(missing[s]),
                     max_song_seconds=config.max_song_seconds)
        for s in SPLITS
    }
    return DatasetPlan(GENRES, splits)


def _plan_folder(config: Any, dataset: str, manual_dir: str) -> DatasetPlan:
    labels, songs = folder_data.locate_labelled_songs(manual_dir)
    assignment = song_splits.stratified_split(
        songs, config.seed, config.validation_fraction, config.test_fraction,
        labels=labels, label_of=song_splits.folder_label_of,
    )
    counts = {label: 0 for label in labels}
    for song in songs.values():
        counts[song.label] += 1
    logging.info("Songs per label: %s", _counts_text(counts))
    song_splits.check_not_empty(
        assignment, dataset,
        f"the folders hold too few songs per label ({_counts_text(counts)}) for "
        f"validation_fraction={config.validation_fraction}, test_fraction={config.test_fraction}",
    )
    splits = {s: SplitPlan(dataset, s, tuple(songs[i] for i in assignment[s]),
                           max_song_seconds=config.max_song_seconds) for s in SPLITS}
    return DatasetPlan(tuple(labels), splits)


def _manual_dir(dl_manager: Any) -> str:
    """The manual directory, or ManualDataError with TFDS's message naming it and saying how.

    `DownloadManager.manual_dir` raises AssertionError when the directory is missing or empty;
    its message names the directory and quotes the builder's MANUAL_DOWNLOAD_INSTRUCTIONS.
    """
    try:
        return str(dl_manager.manual_dir)
    except AssertionError as e:  # only the manual_dir property runs in this block
        raise ManualDataError(str(e)) from None


def _extractor(dl_manager: Any):
    def extract(archive: str):
        # TFDS's extractor turns whatever goes wrong while extracting into ExtractError.
        try:
            return dl_manager.extract(archive)
        except tfds.download.extractor.ExtractError as e:
            raise ManualDataError(
                f"Could not extract {archive}: {e}\n{manual_data.EXPECTED_LAYOUT}"
            ) from e

    return extract


def _warn_if_incomplete(counts: dict[str, int]) -> None:
    """One warning line when a genre has fewer songs than a full GTZAN (a half-finished unpack)."""
    short = {g: n for g, n in counts.items() if n < SONGS_PER_GENRE}
    if short:
        logging.warning(
            "Incomplete GTZAN download? %d of %d genres have fewer than %d songs: %s",
            len(short), len(counts), SONGS_PER_GENRE, _counts_text(short),
        )
    else:
        logging.info("Songs per genre: %s", _counts_text(counts))


def _log_unlisted(songs, lists, missing, lists_name: str) -> None:
    total = sum(len(v) for v in missing.values())
    if total:
        names = [i for s in SPLITS for i in missing[s]]
        logging.warning(
            "%d song(s) named by the split lists are absent from the download (%s), e.g. %s",
            total, ", ".join(f"{s} {len(missing[s])}" for s in SPLITS),
            ", ".join(names[:_SHOWN]),
        )
    listed = {i for ids in lists.values() for i in ids}
    unlisted = sorted(set(songs) - listed)
    if unlisted:
        logging.info(
            "%d song(s) of the download are in none of the %r lists and left out "
            "(the lists drop faulty and duplicated songs), e.g. %s",
            len(unlisted), lists_name, ", ".join(unlisted[:_SHOWN]),
        )


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{g} {n}" for g, n in counts.items())
