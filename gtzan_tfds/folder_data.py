"""Your own labelled music for the `folder` config: one folder per label in the manual directory.

    <manual_dir>/<label>/<song>.mp3|.wav|.flac|.ogg|.au|...   (any sample rate, mono or stereo)

A label is the name of a folder directly in the manual directory that holds at least one audio
file; the labels are sorted (Python string order), and a label's position in that order is its
ClassLabel index.  A label folder may hold subfolders (albums), `MAX_DEPTH` deep.  A song's id
is `<label>/<path in the label folder without extension>` ("jazz/so_what",
"jazz/kind_of_blue/so_what"): unique, and stable as long as the files keep their names.  When
two files would give one id (`so_what.mp3` and `so_what.wav`), the first in sorted order is kept
and the other is reported, as for GTZAN.  Files directly in the manual directory (no label) and
files the decoder does not read (`cover.jpg`, `.m4a`) are left out with a warning.
"""

from __future__ import annotations

import collections
import posixpath
from typing import Optional

from absl import logging

from core.errors import ManualDataError
from gtzan_tfds.audio_io import SUPPORTED_EXTENSIONS, extension
from gtzan_tfds.manual_data import check_manual_dir
from gtzan_tfds.song_files import SongFile, join, walk

MAX_DEPTH = 3  # folders below a label folder that are searched
_SHOWN = 3  # examples quoted in a warning

FOLDER_LAYOUT = """\
Expected in the manual directory of the `folder` config: one folder per label, holding that
label's songs (any sample rate, mono or stereo; subfolders up to {depth} deep are searched too):
  <label>/<song>.{exts}
e.g. ~/music/jazz/so_what.mp3 and ~/music/rock/paranoid.flac give the labels jazz and rock.
""".format(depth=MAX_DEPTH, exts="|".join(e.lstrip(".") for e in SUPPORTED_EXTENSIONS))


def locate_labelled_songs(manual_dir: Optional[str]) -> tuple[list[str], dict[str, SongFile]]:
    """(sorted labels, songs by song id) of a folder of labelled music.

    Raises:
      ManualDataError: the directory is missing, empty, or no label folder holds audio; the
        message names the directory and the layout expected.
    """
    manual_dir = check_manual_dir(manual_dir, FOLDER_LAYOUT)
    songs: dict[str, SongFile] = {}
    duplicates, unlabelled, unreadable = [], [], []
    for rel_dir, names in walk(manual_dir, MAX_DEPTH + 1):
        for name in names:
            relpath = posixpath.join(rel_dir, name)
            if not rel_dir:
                unlabelled.append(relpath)
            elif extension(name) not in SUPPORTED_EXTENSIONS:
                unreadable.append(relpath)
            else:
                song_id = posixpath.splitext(relpath)[0]
                if song_id in songs:
                    duplicates.append(f"{relpath} (kept {songs[song_id].relpath})")
                    continue
                label = rel_dir.split("/", 1)[0]
                songs[song_id] = SongFile(song_id, label, join(manual_dir, relpath), relpath)
    if not songs:
        raise ManualDataError(
            f"No audio file found in a label folder of {manual_dir} "
            f"({len(unlabelled)} file(s) outside label folders, {len(unreadable)} not audio)."
            f"\n{FOLDER_LAYOUT}"
        )
    labels = sorted({song.label for song in songs.values()})
    _log_left_out(labels, duplicates, unlabelled, unreadable)
    logging.info("Found %d songs with %d labels in %s", len(songs), len(labels), manual_dir)
    return labels, songs


def _log_left_out(
    labels: list[str], duplicates: list[str], unlabelled: list[str], unreadable: list[str]
) -> None:
    if len(labels) == 1:
        logging.warning(
            "Only one label (%s): a classifier needs two or more. Is the manual directory one "
            "level too high?", labels[0],
        )
    if unreadable:
        by_ext = collections.Counter(extension(p) or "(none)" for p in unreadable)
        logging.warning(
            "%d file(s) left out: the decoder does not read them (%s), e.g. %s; supported: %s",
            len(unreadable), ", ".join(f"{e} {n}" for e, n in by_ext.most_common()),
            "; ".join(unreadable[:_SHOWN]), ", ".join(SUPPORTED_EXTENSIONS),
        )
    if unlabelled:
        logging.warning(
            "%d file(s) directly in the manual directory left out (no label folder), e.g. %s",
            len(unlabelled), "; ".join(unlabelled[:_SHOWN]),
        )
    if duplicates:
        logging.warning(
            "%d file(s) left out: same song id as another file, e.g. %s",
            len(duplicates), "; ".join(duplicates[:_SHOWN]),
        )
