"""Find the songs of a manual GTZAN download, whichever way it was unpacked.

Accepted inside the manual directory (searched `MAX_DEPTH` folders deep, local or remote):
- the original archive unpacked: `genres/<genre>/<genre>.000NN.au`;
- the common wav copy (Kaggle): `Data/genres_original/<genre>/<genre>.000NN.wav`;
- any folder holding such files (a song is a file named `<genre>.<5 digits>.<audio extension>`);
- the archive itself (`.tar.gz`, `.tgz`, `.tar`, `.zip`), when no unpacked song is there: it is
  extracted by the caller's `extract` function (the builder uses TFDS's download manager, which
  extracts once into `<download_dir>/extracted/`, so a read-only manual dir works).
"""

from __future__ import annotations

import os
import re
from typing import Callable, Iterable, Optional

from absl import logging

from core.errors import ManualDataError
from gtzan_tfds.audio_io import SUPPORTED_EXTENSIONS
from gtzan_tfds.constants import GENRES
from gtzan_tfds.song_files import SongFile, is_dir, join, list_dir, walk

MAX_DEPTH = 4  # folders below the manual dir where a genre folder may sit
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_SONG_RE = re.compile(
    r"^(?P<genre>" + "|".join(GENRES) + r")\.(?P<num>\d{5})(?P<ext>\.[A-Za-z0-9]+)$"
)
_SHOWN = 3  # examples quoted in a warning

EXPECTED_LAYOUT = """\
Expected in the manual directory, one of (searched up to {depth} folders deep):
  genres/<genre>/<genre>.000NN.au                 (the original GTZAN archive, unpacked)
  Data/genres_original/<genre>/<genre>.000NN.wav  (the common Kaggle wav copy)
  genres.tar.gz  or  <name>.zip                   (either archive itself, not unpacked)
with <genre> one of: {genres}.""".format(depth=MAX_DEPTH, genres=", ".join(GENRES))


def parse_song_name(filename: str) -> Optional[tuple[str, str]]:
    """'blues.00042.au' -> ('blues.00042', 'blues'); None for any other name."""
    m = _SONG_RE.match(filename)
    if not m or m.group("ext").lower() not in SUPPORTED_EXTENSIONS:
        return None
    return f"{m.group('genre')}.{m.group('num')}", m.group("genre")


def find_song_files(
    root: str, max_depth: int = MAX_DEPTH, unsupported: Optional[list[str]] = None
) -> tuple[dict[str, SongFile], list[str]]:
    """Songs under `root` by song id, and a note per duplicate song id that was dropped.

    The search is sorted, so it is deterministic: when a song id appears twice (an .au and a
    .wav copy, say), the first path in sorted order wins and the other is reported.
    Files named like songs but with an extension the decoder does not read
    (`blues.00003.m4a`) are not songs; their relative paths are appended to `unsupported`.
    """
    songs: dict[str, SongFile] = {}
    duplicates: list[str] = []
    for rel_dir, names in walk(root, max_depth):
        for name in names:
            relpath = f"{rel_dir}/{name}" if rel_dir else name
            parsed = parse_song_name(name)
            if parsed is None:
                if unsupported is not None and _SONG_RE.match(name):
                    unsupported.append(relpath)
                continue
            sid, genre = parsed
            if sid in songs:
                duplicates.append(f"{relpath} (kept {songs[sid].relpath})")
                continue
            songs[sid] = SongFile(sid, genre, join(root, relpath), relpath)
    return songs, duplicates


def find_archives(root: str) -> list[str]:
    """GTZAN-looking archives directly in `root` or one folder below, sorted."""
    return [
        join(root, f"{rel_dir}/{name}" if rel_dir else name)
        for rel_dir, names in walk(root, max_depth=1)
        for name in names
        if name.lower().endswith(ARCHIVE_SUFFIXES)
    ]


def locate_songs(
    manual_dir: Optional[str],
    extract: Optional[Callable[[str], object]] = None,
) -> dict[str, SongFile]:
    """All songs of the download in `manual_dir`, by song id.

    Unpacked songs win; archives are only extracted (with `extract(archive) -> folder`, which
    raises ManualDataError for an archive it cannot extract) when no unpacked song is found.

    Raises:
      ManualDataError: the directory is missing, empty, or holds no GTZAN song; the message
        names the directory, what was found there and the expected layout.
    """
    manual_dir = check_manual_dir(manual_dir, EXPECTED_LAYOUT)
    unsupported: list[str] = []
    songs, duplicates = find_song_files(manual_dir, unsupported=unsupported)
    source = manual_dir
    archives = [] if songs else find_archives(manual_dir)
    if archives and extract is not None:
        songs, duplicates = _songs_of_archives(archives, extract, unsupported)
        source = ", ".join(archives)
    if not songs:
        raise ManualDataError(_no_song_message(manual_dir, archives, unsupported))
    if unsupported:
        logging.warning(
            "%d file(s) named like GTZAN songs ignored: unknown extension (supported: %s), e.g. %s",
            len(unsupported), ", ".join(SUPPORTED_EXTENSIONS), "; ".join(unsupported[:_SHOWN]),
        )
    if duplicates:
        logging.warning(
            "%d duplicate song file(s) ignored (same song id twice), e.g. %s",
            len(duplicates), "; ".join(duplicates[:_SHOWN]),
        )
    logging.info("Found %d GTZAN songs in %s", len(songs), source)
    return songs


def check_manual_dir(manual_dir: Optional[os.PathLike | str], layout: str) -> str:
    """`manual_dir` as a string, or ManualDataError naming it when missing or empty."""
    if manual_dir is None:
        raise ManualDataError(f"No manual directory was given.\n{layout}")
    manual_dir = os.fspath(manual_dir)
    if not is_dir(manual_dir):
        raise ManualDataError(f"Manual directory {manual_dir} does not exist.\n{layout}")
    if not list_dir(manual_dir):
        raise ManualDataError(f"Manual directory {manual_dir} is empty.\n{layout}")
    return manual_dir


def _songs_of_archives(
    archives: list[str], extract: Callable[[str], object], unsupported: list[str]
) -> tuple[dict[str, SongFile], list[str]]:
    songs: dict[str, SongFile] = {}
    duplicates: list[str] = []
    for archive in archives:
        logging.info("Extracting %s", archive)
        folder = os.fspath(extract(archive))  # raises ManualDataError for a damaged archive
        found, dups = find_song_files(folder, unsupported=unsupported)
        name = os.path.basename(archive)
        for sid, song in found.items():
            if sid in songs:
                dups.append(f"{name}:{song.relpath} (kept {songs[sid].relpath})")
            else:
                songs[sid] = song
        duplicates += dups
    return songs, duplicates


def _no_song_message(manual_dir: str, archives: list[str], unsupported: list[str]) -> str:
    entries = list_dir(manual_dir)
    shown = ", ".join(entries[:10]) + (", ..." if len(entries) > 10 else "")
    names = ", ".join(os.path.basename(a) for a in archives)
    what = f"archives {names} hold" if archives else "it holds"
    bad_ext = (
        f"; {len(unsupported)} song file(s) have an unknown extension, e.g. "
        f"{unsupported[0]} (supported: {', '.join(SUPPORTED_EXTENSIONS)})"
        if unsupported else ""
    )
    return (
        f"No GTZAN song found in {manual_dir}: {what} no file named like "
        f"<genre>/<genre>.000NN.au or .wav (top-level entries: {shown}){bad_ext}."
        f"\n{EXPECTED_LAYOUT}"
    )


def genre_counts(song_ids: Iterable[str]) -> dict[str, int]:
    """{'blues': 100, ...} in GENRES order (zero counts included)."""
    counts = {g: 0 for g in GENRES}
    for sid in song_ids:
        counts[sid.split(".")[0]] += 1
    return counts
