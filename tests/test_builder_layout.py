"""gtzan_tfds.song_splits (song-level splits), gtzan_tfds.manual_data (download layouts), and
reading a manual dir and writing the build report through tf.io.gfile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import ManualDataError
from gtzan_tfds import manual_data, song_splits
from gtzan_tfds.constants import GENRES
from gtzan_tfds.manual_data import EXPECTED_LAYOUT, locate_songs
from gtzan_tfds.song_splits import SPLITS


def _ids(per_genre, genres=GENRES):
    return [f"{g}.{i:05d}" for g in genres for i in range(per_genre)]


# --- splits -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, expected",
    [(100, (80, 10, 10)), (16, (12, 2, 2)), (5, (3, 1, 1)), (3, (1, 1, 1)), (2, (1, 0, 1)),
     (1, (1, 0, 0)), (0, (0, 0, 0))],
)
def test_split_sizes(n, expected):
    assert song_splits.split_sizes(n, 0.1, 0.1) == expected


def test_split_sizes_rejects_bad_fractions():
    for v, t in ((0.5, 0.5), (-0.1, 0.1), (0.1, 1.0)):
        with pytest.raises(ValueError):
            song_splits.split_sizes(10, v, t)


def test_stratified_split_is_seeded_disjoint_and_stratified():
    ids = _ids(100)
    a = song_splits.stratified_split(ids, seed=0)
    assert a == song_splits.stratified_split(list(reversed(ids)), seed=0)  # order-independent
    assert a != song_splits.stratified_split(ids, seed=1)
    song_splits.check_disjoint(a)
    assert sorted(sum(a.values(), [])) == sorted(ids)
    assert [len(a[s]) for s in SPLITS] == [800, 100, 100]
    for split in SPLITS:
        per_genre = manual_data.genre_counts(a[split])
        assert len(set(per_genre.values())) == 1  # same count for every genre


def test_check_disjoint_names_the_clash():
    with pytest.raises(ValueError, match="blues.00001"):
        song_splits.check_disjoint({"train": ["blues.00001"], "test": ["blues.00001"]})


def test_shipped_fault_filtered_lists():
    lists = song_splits.read_split_lists("filtered")
    assert [len(lists[s]) for s in SPLITS] == [443, 197, 290]
    song_splits.check_disjoint(lists)  # artist-disjoint split: no song twice
    assert all(i.count(".") == 1 and i.split(".")[0] in GENRES for s in SPLITS for i in lists[s])
    assert "jazz.00054" in lists["train"]  # matches ids, not .wav names
    stratified = song_splits.read_split_lists("stratified")
    assert [len(stratified[s]) for s in SPLITS] == [500, 250, 250]


def test_listed_split_reports_absent_songs():
    lists = {"train": ["blues.00001", "blues.00002"], "validation": ["rock.00001"],
             "test": ["pop.00003"]}
    present, missing = song_splits.listed_split(lists, ["blues.00002", "pop.00003", "jazz.00009"])
    assert present == {"train": ["blues.00002"], "validation": [], "test": ["pop.00003"]}
    assert missing == {"train": ["blues.00001"], "validation": ["rock.00001"], "test": []}


# --- manual download layouts ------------------------------------------------------------------
def _touch(root, *relpaths):
    for rel in relpaths:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    return root


@pytest.mark.parametrize(
    "layout",
    [
        "genres/{g}/{g}.0000{i}.au",  # the original archive
        "Data/genres_original/{g}/{g}.0000{i}.wav",  # the Kaggle copy
        "downloads/gtzan/genres/{g}/{g}.0000{i}.au",  # nested a few folders deep
        "{g}/{g}.0000{i}.wav",  # the manual dir is the genres folder itself
    ],
)
def test_layouts_are_found(tmp_path, layout):
    _touch(tmp_path, *[layout.format(g=g, i=i) for g in GENRES for i in range(2)])
    _touch(tmp_path, "genres/input.mf", "Data/features_30_sec.csv", "genres/blues/._blues.00000.au")
    songs = locate_songs(tmp_path)
    assert sorted(songs) == sorted(_ids(2))
    song = songs["rock.00001"]
    assert song.label == "rock" and Path(song.path).is_file()
    assert song.relpath == layout.format(g="rock", i=1)


def test_too_deep_is_not_searched(tmp_path):
    _touch(tmp_path, "a/b/c/d/e/blues/blues.00000.wav")
    with pytest.raises(ManualDataError, match="No GTZAN song found"):
        locate_songs(tmp_path)


def test_duplicate_song_ids_keep_the_first_sorted_path(tmp_path):
    _touch(tmp_path, "genres/blues/blues.00000.au", "genres_wav/blues/blues.00000.wav")
    songs = locate_songs(tmp_path)
    assert list(songs) == ["blues.00000"]
    assert songs["blues.00000"].relpath == "genres/blues/blues.00000.au"


def test_archives_are_extracted_only_without_unpacked_songs(tmp_path):
    calls = []

    def extract(archive):
        calls.append(Path(archive).name)
        out = tmp_path / "extracted"
        _touch(out, "genres/jazz/jazz.00001.au")
        return out

    manual = tmp_path / "manual"
    _touch(manual, "genres.tar.gz")
    assert list(locate_songs(manual, extract=extract)) == ["jazz.00001"]
    assert calls == ["genres.tar.gz"]
    _touch(manual, "genres/pop/pop.00002.wav")  # now an unpacked song is there too
    calls.clear()
    assert list(locate_songs(manual, extract=extract)) == ["pop.00002"]
    assert calls == []


@pytest.mark.parametrize("case", ["missing", "empty", "wrong", "none"])
def test_wrong_manual_dir_names_the_expected_layout(tmp_path, case):
    manual = {"missing": tmp_path / "nope", "empty": tmp_path, "none": None,
              "wrong": _touch(tmp_path, "music/song1.mp3", "readme.txt")}[case]
    with pytest.raises(ManualDataError) as info:
        locate_songs(manual)
    message = str(info.value)
    assert EXPECTED_LAYOUT in message
    assert "genres/<genre>/<genre>.000NN.au" in message
    assert "genres_original/<genre>/<genre>.000NN.wav" in message
    if manual is not None:
        assert str(manual) in message


def test_parse_song_name():
    assert manual_data.parse_song_name("blues.00042.au") == ("blues.00042", "blues")
    assert manual_data.parse_song_name("hiphop.00001.WAV") == ("hiphop.00001", "hiphop")
    for bad in ("blues.42.au", "funk.00001.wav", "blues.00001.txt", "._blues.00001.au"):
        assert manual_data.parse_song_name(bad) is None


# --- a manual dir on another file system --------------------------------------------------------
def _copy_to_ram(local_root: Path, name: str) -> str:
    """Copies a folder to TensorFlow's in-memory file system (ram://), a stand-in for gs://."""
    import tensorflow as tf

    root = f"ram://{name}"
    for path in sorted(local_root.rglob("*")):
        target = f"{root}/{path.relative_to(local_root).as_posix()}"
        if path.is_dir():
            tf.io.gfile.makedirs(target)
        else:
            tf.io.gfile.makedirs(target.rsplit("/", 1)[0])
            tf.io.gfile.copy(str(path), target, overwrite=True)
    return root


def test_songs_are_found_and_decoded_through_tf_io_gfile(tmp_path, repo_root):
    """Nothing reads the manual dir with `os`/`open`: a non-local path works as a local one."""
    from gtzan_tfds import folder_data
    from gtzan_tfds.audio_io import read_audio

    dummy = repo_root / "gtzan_tfds" / "dummy_data"
    ram = _copy_to_ram(dummy / "gtzan", "gtzan_manual")
    songs = locate_songs(ram)
    local = locate_songs(dummy / "gtzan")
    assert sorted(songs) == sorted(local) and songs["blues.00001"].path.startswith("ram://")
    np.testing.assert_array_equal(read_audio(songs["blues.00001"].path),
                                  read_audio(local["blues.00001"].path))
    labels, music = folder_data.locate_labelled_songs(_copy_to_ram(dummy / "folder", "music"))
    assert labels == ["brass", "drums", "keys"] and "keys/chord_0" in music
    assert len(read_audio(music["keys/chord_0"].path)) == round(0.2 * 22_050)


def test_build_report_parts_go_through_tf_io_gfile():
    from gtzan_tfds import build_report

    data_dir = "ram://report_data_dir"
    bad = ("genres/rock/rock.00001.wav", "empty file (0 bytes)")
    for split in SPLITS:
        skipped = (bad,) if split == "test" else ()
        build_report.write_part(data_dir, build_report.SplitOutcome(split, 3, skipped, ()))
    report = build_report.assemble(data_dir, "gtzan_tfds/x", {"train": 3, "validation": 3,
                                                              "test": 2})
    assert build_report.read(data_dir) == report
    assert report["skipped"] == [{"file": "genres/rock/rock.00001.wav",
                                  "reason": "empty file (0 bytes)"}]
    with pytest.raises(AssertionError, match="3 songs assigned, but TFDS wrote 3 examples and 1"):
        for split in SPLITS:
            build_report.write_part(data_dir, build_report.SplitOutcome(split, 3, (bad,), ()))
        build_report.assemble(data_dir, "gtzan_tfds/x", {s: 3 for s in SPLITS})
