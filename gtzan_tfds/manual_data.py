"""Find the songs of a manual GTZAN download, whichever way it was unpacked.

Accepted inside the manual directory (searched `MAX_DEPTH` folders deep):
- the original archive unpacked: `genres/<genre>/<genre>.000NN.au`;
- the common wav copy (Kaggle): `Data/genres_original/<genre>/<genre>.000NN.wav`;
- any folder holding such files (a song is a file named `<genre>.<5 digits>.<audio extension>`);
- the archive itself (`.tar.gz`, `.tgz`, `.tar`, `.zip`), when no unpacked song is there: it is
  extracted by the caller's `extract` function (the builder uses TFDS's download manager, which
  extracts once into `<download_dir>/extracted/`, so a read-only manual dir works).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Optional

from absl import logging

from core.errors import ManualDataError
from gtzan_tfds.audio_io import SUPPORTED_EXTENSIONS
from gtzan_tfds.constants import GENRES

MAX_DEPTH = 4  # folders below the manual dir where a genre folder may sit
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_SONG_RE = re.compile(
    r"^(?P<genre>" + "|".join(GENRES) + r")\.(?P<num>\d{5})(?P<ext>\.[A-Za-z0-9]+)$"
)
_SKIP_DIRS = {"__MACOSX"}

EXPECTED_LAYOUT = """\
Expected in the manual directory, one of (searched up to {depth} folders deep):
  genres/<genre>/<genre>.000NN.au                 (the original GTZAN archive, unpacked)
  Data/genres_original/<genre>/<genre>.000NN.wav  (the common Kaggle wav copy)
  genres.tar.gz  or  <name>.zip                   (either archive itself, not unpacked)
with <genre> one of: {genres}.""".format(depth=MAX_DEPTH, genres=", ".join(GENRES))


@dataclasses.dataclass(frozen=True)
class SongFile:
    """One song of a manual download."""

    song_id: str  # "blues.00042"
    genre: str
    path: Path  # absolute path of the file to decode
    relpath: str  # path relative to the folder searched (or the extracted archive), "/"-separated


def parse_song_name(filename: str) -> Optional[tuple[str, str]]:
    """'blues.00042.au' -> ('blues.00042', 'blues'); None for any other name."""
    m = _SONG_RE.match(filename)
    if not m or m.group("ext").lower() not in SUPPORTED_EXTENSIONS:
        return None
    return f"{m.group('genre')}.{m.group('num')}", m.group("genre")


def find_song_files(
    root: Path, max_depth: int = MAX_DEPTH, unsupported: Optional[list[str]] = None
) -> tuple[dict[str, SongFile], list[str]]:
    """Songs under `root` by song id, and a note per duplicate song id that was dropped.

    The search is sorted, so it is deterministic: when a song id appears twice (an .au and a
    .wav copy, say), the first path in sorted order wins and the other is reported.
    Files named like songs but with an extension the decoder does not read
    (`blues.00003.m4a`) are not songs; their relative paths are appended to `unsupported`.
    """
    root = Path(root)
    songs: dict[str, SongFile] = {}
    duplicates: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        depth = len(rel_dir.parts)
        keep = [d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS]
        dirnames[:] = sorted(keep) if depth < max_depth else []  # prune below max_depth
        for name in sorted(filenames):
            parsed = parse_song_name(name)
            if parsed is None:
                if unsupported is not None and _SONG_RE.match(name):
                    unsupported.append((rel_dir / name).as_posix())
                continue
            sid, genre = parsed
            relpath = (rel_dir / name).as_posix()
            if sid in songs:
                duplicates.append(f"{relpath} (kept {songs[sid].relpath})")
                continue
            songs[sid] = SongFile(sid, genre, Path(dirpath) / name, relpath)
    return songs, duplicates


def find_archives(root: Path) -> list[Path]:
    """GTZAN-looking archives directly in `root` or one folder below, sorted."""
    root = Path(root)
    found = []
    for pattern in ("*", "*/*"):
        for p in root.glob(pattern):
            if p.is_file() and p.name.lower().endswith(ARCHIVE_SUFFIXES):
                found.append(p)
    return sorted(found)


def locate_songs(
    manual_dir: Optional[Path],
    extract: Optional[Callable[[Path], Path]] = None,
) -> dict[str, SongFile]:
    """All songs of the download in `manual_dir`, by song id.

    Unpacked songs win; archives are only extracted (with `extract(archive) -> folder`) when no
    unpacked song is found.

    Raises:
      ManualDataError: the directory is missing, empty, or holds no GTZAN song; the message
        names the directory, what was found there and the expected layout.
    """
    if manual_dir is None:
        raise ManualDataError(f"No manual directory was given.\n{EXPECTED_LAYOUT}")
    manual_dir = Path(manual_dir)
    if not manual_dir.is_dir():
        raise ManualDataError(f"Manual directory {manual_dir} does not exist.\n{EXPECTED_LAYOUT}")
    entries = sorted(p.name for p in manual_dir.iterdir())
    if not entries:
        raise ManualDataError(f"Manual directory {manual_dir} is empty.\n{EXPECTED_LAYOUT}")

    unsupported: list[str] = []
    songs, duplicates = find_song_files(manual_dir, unsupported=unsupported)
    source = str(manual_dir)
    if not songs:
        archives = find_archives(manual_dir)
        if archives and extract is not None:
            for archive in archives:
                logging.info("Extracting %s", archive)
                try:
                    folder = Path(extract(archive))
                except Exception as e:  # pylint: disable=broad-except
                    raise ManualDataError(
                        f"Could not extract {archive}: {type(e).__name__}: {e}\n{EXPECTED_LAYOUT}"
                    ) from e
                found, dups = find_song_files(folder, unsupported=unsupported)
                for sid, song in found.items():
                    if sid in songs:
                        dups.append(f"{archive.name}:{song.relpath} (kept {songs[sid].relpath})")
                    else:
                        songs[sid] = song
                duplicates += dups
            source = ", ".join(str(a) for a in archives)
        if not songs:
            shown = ", ".join(entries[:10]) + (", ..." if len(entries) > 10 else "")
            names = ", ".join(a.name for a in archives)
            what = f"archives {names} hold" if archives else "it holds"
            bad_ext = (
                f"; {len(unsupported)} song file(s) have an unknown extension, e.g. "
                f"{unsupported[0]} (supported: {', '.join(SUPPORTED_EXTENSIONS)})"
                if unsupported else ""
            )
            raise ManualDataError(
                f"No GTZAN song found in {manual_dir}: {what} no file named like "
                f"<genre>/<genre>.000NN.au or .wav (top-level entries: {shown}){bad_ext}."
                f"\n{EXPECTED_LAYOUT}"
            )
    if unsupported:
        logging.warning(
            "%d file(s) named like GTZAN songs ignored: unknown extension (supported: %s), e.g. %s",
            len(unsupported), ", ".join(SUPPORTED_EXTENSIONS), "; ".join(unsupported[:3]),
        )
    if duplicates:
        logging.warning(
            "%d duplicate song file(s) ignored (same song id twice), e.g. %s",
            len(duplicates), "; ".join(duplicates[:3]),
        )
    logging.info("Found %d GTZAN songs in %s", len(songs), source)
    return songs


def genre_counts(song_ids: Iterable[str]) -> dict[str, int]:
    """{'blues': 100, ...} in GENRES order (zero counts included)."""
    counts = {g: 0 for g in GENRES}
    for sid in song_ids:
        counts[sid.split(".")[0]] += 1
    return counts
