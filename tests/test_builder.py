"""The gtzan_tfds TFDS builder: configs, splits, storage, bad input, the `tfds build` CLI.

Each dataset is built once per module (module-scoped fixtures under tmp_path_factory). Real
GTZAN tests use ../shared/data/gtzan_sample (50 clips) and skip cleanly without it; the rest
use tiny synthetic configs and short generated wav files, so the file runs in well under a
minute on two cores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

import gtzan_tfds
from core.audio import float_to_int16
from core.errors import EmptySplitError, ManualDataError
from gtzan_tfds import Builder, GtzanConfig, song_splits
from gtzan_tfds.audio_io import read_audio
from gtzan_tfds.constants import GENRES, SAMPLE_RATE
from gtzan_tfds.synthetic_audio import generate_song

SPLITS = ("train", "validation", "test")
SONG_ID_RE = re.compile(r"^(" + "|".join(GENRES) + r")\.\d{5}$")
TFDS_CLI = Path(sys.executable).parent / "tfds"
TINY = dict(songs_per_genre=3, clip_seconds=2.0)  # 30 songs of 2 s: 10/10/10


# --- helpers ----------------------------------------------------------------------------------
def build(config, data_dir, manual_dir=None) -> Builder:
    builder = Builder(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(download_config=manual_config(manual_dir))
    return builder


def manual_config(manual_dir):
    """The DownloadConfig that points the builder at a manual download (None: TFDS default)."""
    return tfds.download.DownloadConfig(manual_dir=str(manual_dir)) if manual_dir else None


def examples(builder, split, audio=True) -> dict[str, dict]:
    """song_id -> decoded example (numpy) of one split."""
    decoders = None if audio else {"audio": tfds.decode.SkipDecoding()}
    ds = builder.as_dataset(split=split, decoders=decoders)
    out = {}
    for ex in tfds.as_numpy(ds):
        sid = ex["song_id"].decode()
        assert sid not in out, f"{sid} twice in {split}"
        out[sid] = ex
    return out


def song_ids_by_split(builder) -> dict[str, list[str]]:
    return {s: sorted(examples(builder, s, audio=False)) for s in SPLITS}


def tfrecord_bytes(builder) -> int:
    return sum(p.stat().st_size for p in Path(builder.data_dir).glob("*.tfrecord-*"))


def run_cli(args, cwd, env, timeout=300) -> subprocess.CompletedProcess:
    """`tfds ARGS` in `cwd` with `env` (the repo_env fixture: this checkout's code)."""
    return subprocess.run(
        [str(TFDS_CLI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@contextlib.contextmanager
def captured_warnings():
    """Collects absl/python warnings logged while building (caplog is function-scoped)."""
    records: list[str] = []

    class _Handler(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = _Handler(level=logging.WARNING)
    logger = logging.getLogger("absl")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def write_wav(path: Path, genre: str, index: int, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, generate_song(genre, index, seed=3, clip_seconds=seconds), SAMPLE_RATE,
             subtype="PCM_16")
    return path


def small_download(root: Path, genres=("blues", "classical"), per_genre=3, layout="genres") -> Path:
    """A GTZAN-shaped folder of short generated wavs: <root>/<layout>/<genre>/<genre>.0000N.wav."""
    for g in genres:
        for i in range(per_genre):
            write_wav(root / layout / g / f"{g}.{i:05d}.wav", g, i)
    return root


def sample_song_ids(sample_dir: Path) -> set[str]:
    return {p.name.rsplit(".", 1)[0] for p in sample_dir.glob("genres/*/*.wav")}


# --- module-scoped builds ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build(GtzanConfig(name="synthetic_tiny", **TINY), tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def cli_default(tmp_path_factory, repo_root, repo_env):
    """`tfds build gtzan_tfds` with no config and no download, as on a fresh machine."""
    data_dir = tmp_path_factory.mktemp("cli_default")
    proc = run_cli(["build", "gtzan_tfds", "--data_dir", str(data_dir)], repo_root, repo_env)
    return proc, data_dir


@pytest.fixture(scope="module")
def cli_synthetic(cli_default):
    proc, data_dir = cli_default
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Builder(config="synthetic", data_dir=str(data_dir))


@pytest.fixture(scope="module")
def gtzan_sample(tmp_path_factory, repo_root, repo_env, gtzan_sample_dir):
    """The `gtzan` config of the 50-clip sample, built by the CLI as a user would."""
    data_dir = tmp_path_factory.mktemp("gtzan_cli")
    proc = run_cli(["build", "gtzan_tfds", "--config", "gtzan", "--manual_dir",
                    str(gtzan_sample_dir), "--data_dir", str(data_dir)], repo_root, repo_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return Builder(config="gtzan", data_dir=str(data_dir))


@pytest.fixture(scope="module")
def fault_filtered_sample(tmp_path_factory, gtzan_sample_dir):
    data_dir = tmp_path_factory.mktemp("ff")
    with captured_warnings() as warnings:
        builder = build("fault_filtered", data_dir, manual_dir=gtzan_sample_dir)
    builder.captured_warnings = warnings
    return builder


BAD_FILES = {  # relpath -> reason the build report must give
    "genres/jazz/jazz.00054.wav": "empty file",  # the corrupt file of a popular copy
    "genres/rock/rock.00010.wav": "truncated",
    "genres/pop/pop.00011.wav": "not a WAV file",
    "genres/blues/blues.00012.au": "not a Sun/NeXT AU file",
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    genres = ("blues", "classical", "country")
    manual = small_download(tmp_path_factory.mktemp("bad_manual"), genres)
    good = (manual / "genres/blues/blues.00000.wav").read_bytes()
    (manual / "genres/jazz").mkdir()
    (manual / "genres/jazz/jazz.00054.wav").write_bytes(b"")
    (manual / "genres/rock").mkdir()
    (manual / "genres/rock/rock.00010.wav").write_bytes(good[: len(good) // 2])
    (manual / "genres/pop").mkdir()
    (manual / "genres/pop/pop.00011.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    (manual / "genres/blues/blues.00012.au").write_text("not audio at all\n")
    with captured_warnings() as warnings:
        builder = build(GtzanConfig(name="manual_bad_files", source="manual"),
                        tmp_path_factory.mktemp("bad_data"), manual_dir=manual)
    builder.captured_warnings = warnings
    return builder


@pytest.fixture(scope="module")
def archive_tar(tmp_path_factory):
    src = small_download(tmp_path_factory.mktemp("tar_src"))
    manual = tmp_path_factory.mktemp("tar_manual")
    with tarfile.open(manual / "genres.tar.gz", "w:gz") as tar:
        tar.add(src / "genres", arcname="genres")
    return build(GtzanConfig(name="manual_tar", source="manual"),
                 tmp_path_factory.mktemp("tar_data"), manual_dir=manual)


@pytest.fixture(scope="module")
def archive_zip(tmp_path_factory):
    src = small_download(tmp_path_factory.mktemp("zip_src"), layout="Data/genres_original")
    manual = tmp_path_factory.mktemp("zip_manual")
    with zipfile.ZipFile(manual / "archive.zip", "w") as zf:
        for p in sorted(src.rglob("*.wav")):
            zf.write(p, p.relative_to(src).as_posix())
        zf.writestr("Data/features_30_sec.csv", "filename,label\n")
    return build(GtzanConfig(name="manual_zip", source="manual"),
                 tmp_path_factory.mktemp("zip_data"), manual_dir=manual)


ALL_BUILDS = ["tiny", "cli_synthetic", "gtzan_sample", "fault_filtered_sample", "bad_files",
              "archive_tar", "archive_zip"]


# --- synthetic --------------------------------------------------------------------------------
def test_tiny_synthetic_loads_with_the_documented_features(tiny):
    info = tiny.info
    assert list(info.splits) == list(SPLITS)
    assert [info.splits[s].num_examples for s in SPLITS] == [10, 10, 10]
    assert info.supervised_keys == ("audio", "label")
    assert info.features["audio"].sample_rate == SAMPLE_RATE
    assert info.features["label"].names == list(GENRES)
    for split in SPLITS:
        exs = examples(tiny, split)
        assert len(exs) == 10
        assert sorted(ex["label"] for ex in exs.values()) == list(range(10))  # stratified
        for sid, ex in exs.items():
            assert SONG_ID_RE.match(sid)
            assert ex["audio"].dtype == np.int16 and ex["audio"].shape == (2 * SAMPLE_RATE,)
            assert 0 <= ex["label"] < 10 and GENRES[ex["label"]] == sid.split(".")[0]
            assert ex["duration_seconds"] == pytest.approx(2.0)
            assert ex["filename"] == b""
    audio, label = next(iter(tfds.as_numpy(tiny.as_dataset(split="train", as_supervised=True))))
    assert audio.dtype == np.int16 and label.dtype == np.int64


def test_synthetic_is_deterministic(tiny, tmp_path):
    """The stored audio is the generator's, and a rebuild writes byte-identical TFRecords."""
    train = examples(tiny, "train")
    for sid, ex in list(train.items())[:3]:
        genre, index = sid.split(".")
        np.testing.assert_array_equal(ex["audio"], generate_song(genre, int(index), seed=0,
                                                                 clip_seconds=2.0))
    again = build(GtzanConfig(name="synthetic_tiny", **TINY), tmp_path)
    files = sorted(p.name for p in Path(tiny.data_dir).glob("*.tfrecord-*"))
    assert files == sorted(p.name for p in Path(again.data_dir).glob("*.tfrecord-*"))
    for name in files:
        first, second = Path(tiny.data_dir) / name, Path(again.data_dir) / name
        assert first.read_bytes() == second.read_bytes()


def test_default_synthetic_size_shards_and_storage(cli_synthetic):
    info = cli_synthetic.info
    assert [info.splits[s].num_examples for s in SPLITS] == [120, 20, 20]
    for split in SPLITS:
        assert info.splits[split].num_shards >= 4  # read in parallel even when small
    total_samples = 160 * 30 * SAMPLE_RATE
    assert tfrecord_bytes(cli_synthetic) / (2 * total_samples) <= 1.05
    ds = tfds.load("gtzan_tfds/synthetic", split="train", data_dir=str(cli_synthetic.data_dir_root),
                   download=False)
    ex = next(iter(ds))
    assert ex["audio"].dtype.name == "int16" and ex["audio"].shape[0] == 30 * SAMPLE_RATE


# --- real GTZAN sample ------------------------------------------------------------------------
def test_gtzan_sample_random_split(gtzan_sample, gtzan_sample_dir):
    ids = song_ids_by_split(gtzan_sample)
    assert [len(ids[s]) for s in SPLITS] == [30, 10, 10]  # 5 per genre -> 3/1/1
    assert set(sum(ids.values(), [])) == sample_song_ids(gtzan_sample_dir)
    for split in ("validation", "test"):
        assert sorted(i.split(".")[0] for i in ids[split]) == list(GENRES)
    # Stored samples are exactly the decoded file; extras describe the source.
    for split in SPLITS:
        for sid, ex in examples(gtzan_sample, split).items():
            if sid.endswith(".00000"):
                genre = sid.split(".")[0]
                rel = f"genres/{genre}/{sid}.wav"
                decoded = float_to_int16(read_audio(gtzan_sample_dir / rel))
                np.testing.assert_array_equal(ex["audio"], decoded)
                assert ex["filename"].decode() == rel
                assert ex["duration_seconds"] == pytest.approx(len(ex["audio"]) / SAMPLE_RATE)
    total_samples = sum(
        float(ex["duration_seconds"]) * SAMPLE_RATE
        for s in SPLITS for ex in examples(gtzan_sample, s, audio=False).values()
    )
    ratio = tfrecord_bytes(gtzan_sample) / (2 * total_samples)
    assert 1.0 <= ratio <= 1.05, ratio


def test_fault_filtered_sample_keeps_listed_songs_only(fault_filtered_sample, gtzan_sample_dir):
    lists = song_splits.read_split_lists("filtered")
    present = sample_song_ids(gtzan_sample_dir)
    ids = song_ids_by_split(fault_filtered_sample)
    for split in SPLITS:
        assert ids[split] == sorted(set(lists[split]) & present)
    assert [len(ids[s]) for s in SPLITS] == [19, 24, 4]
    report = json.loads((Path(fault_filtered_sample.data_dir) / "build_report.json").read_text())
    n_missing = sum(len(v) for v in report["missing"].values())
    assert n_missing == 443 + 197 + 290 - 47
    assert any(f"{n_missing} song(s) named by the split lists are absent" in w
               for w in fault_filtered_sample.captured_warnings)


@pytest.mark.parametrize("build_name", ALL_BUILDS)
def test_no_song_in_two_splits(request, build_name):
    builder = request.getfixturevalue(build_name)
    ids = song_ids_by_split(builder)
    song_splits.check_disjoint(ids)
    for split in SPLITS:
        assert len(ids[split]) == builder.info.splits[split].num_examples > 0
        assert all(SONG_ID_RE.match(i) for i in ids[split])


# --- robustness -------------------------------------------------------------------------------
def test_bad_files_are_skipped_and_reported(bad_files):
    ids = song_ids_by_split(bad_files)
    assert sum(len(v) for v in ids.values()) == 9  # the 9 good songs, none of the 4 bad ones
    report = json.loads((Path(bad_files.data_dir) / "build_report.json").read_text())
    skipped = {s["file"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == set(BAD_FILES)
    assert sum(report["assigned"].values()) == 13 and sum(report["written"].values()) == 9
    warnings = "\n".join(bad_files.captured_warnings)
    for rel, reason in BAD_FILES.items():
        assert reason in skipped[rel]
        assert f"Skipping {rel}: " in warnings and reason in warnings
    assert "skipped 4 file(s)" in warnings  # the end-of-build summary


def test_archives_are_accepted(archive_tar, archive_zip):
    for builder, prefix in ((archive_tar, "genres/"), (archive_zip, "Data/genres_original/")):
        assert [builder.info.splits[s].num_examples for s in SPLITS] == [2, 2, 2]
        ex = next(iter(examples(builder, "train").values()))
        assert ex["filename"].decode().startswith(prefix)
        assert ex["audio"].shape == (SAMPLE_RATE,)


def test_too_few_songs_is_an_empty_split_error(tmp_path):
    download = small_download(tmp_path / "m", GENRES, per_genre=1)
    builder = Builder(config=GtzanConfig(name="manual_one_each", source="manual"),
                      data_dir=str(tmp_path / "d"))
    with pytest.raises(EmptySplitError, match="'validation' is empty: the download has too few"):
        builder.download_and_prepare(download_config=manual_config(download))
    assert not builder.is_prepared()


def test_all_undecodable_is_an_empty_split_error(tmp_path):
    download = tmp_path / "m"
    for i in range(3):
        p = download / "genres" / "rock" / f"rock.{i:05d}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    builder = Builder(config=GtzanConfig(name="manual_all_bad", source="manual"),
                      data_dir=str(tmp_path / "d"))
    with pytest.raises(EmptySplitError, match="skipped as undecodable"):
        builder.download_and_prepare(download_config=manual_config(download))
    assert not builder.is_prepared()
    assert not list(Path(tmp_path / "d").rglob("*.tfrecord*"))  # nothing half-written kept


def test_fault_filtered_without_listed_test_songs_fails_with_why(tmp_path):
    download = small_download(tmp_path / "m", ("blues",), per_genre=1)  # blues.00000: valid
    builder = Builder(config="fault_filtered", data_dir=str(tmp_path / "d"))
    with pytest.raises(EmptySplitError, match="'train' is empty: none of the songs the 'filtered'"):
        builder.download_and_prepare(download_config=manual_config(download))


@pytest.mark.parametrize("case", ["default", "empty", "wrong"])
def test_wrong_manual_dir_says_what_layout_is_expected(tmp_path, case):
    manual = {"default": None, "empty": tmp_path / "empty", "wrong": tmp_path / "wrong"}[case]
    if manual is not None:
        manual.mkdir()
    if case == "wrong":
        (manual / "some_song.mp3").write_bytes(b"x")
    builder = Builder(config="gtzan", data_dir=str(tmp_path / "d"))
    with pytest.raises(ManualDataError) as info:
        builder.download_and_prepare(download_config=manual_config(manual))
    message = str(info.value)
    assert "genres/<genre>/<genre>.000NN.au" in message
    assert "Data/genres_original/<genre>/<genre>.000NN.wav" in message
    assert "--manual_dir" in message
    assert str(manual or tmp_path / "d" / "downloads" / "manual") in message


def test_killed_build_leaves_no_dataset_that_loads(tmp_path, repo_env):
    """SIGKILL mid-generation: only TFDS's incomplete.* folder is left; a rerun builds."""
    script = f"""
import os, signal
import gtzan_tfds
from gtzan_tfds import Builder, GtzanConfig, synthetic_audio
real, count = synthetic_audio.generate_song, [0]
def dying(*args, **kwargs):
    count[0] += 1
    if count[0] == 25:  # during the test split: train and validation shards are written
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
synthetic_audio.generate_song = dying
Builder(config=GtzanConfig(name="killed", songs_per_genre=3, clip_seconds=1.0),
        data_dir={str(tmp_path)!r}).download_and_prepare()
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=repo_env)
    assert proc.returncode == -9, proc.stderr[-2000:]
    config_dir = tmp_path / "gtzan_tfds" / "killed"
    leftovers = [p.name for p in config_dir.iterdir()]
    assert leftovers and all(name.startswith("incomplete.") for name in leftovers)
    assert list(config_dir.glob("incomplete.*/*train.tfrecord*"))  # it was mid-way
    config = GtzanConfig(name="killed", songs_per_genre=3, clip_seconds=1.0)
    builder = Builder(config=config, data_dir=str(tmp_path))
    assert not builder.is_prepared()
    with pytest.raises(AssertionError, match="could not find data"):
        builder.as_dataset(split="train")
    builder.download_and_prepare()  # a rerun is not confused by the leftovers
    assert [builder.info.splits[s].num_examples for s in SPLITS] == [10, 10, 10]


# --- the `tfds build` CLI -----------------------------------------------------------------------
def test_cli_without_config_builds_synthetic_and_explains_the_download(cli_default):
    """A fresh machine: `tfds build gtzan_tfds` builds what needs no download, exits 0 and
    says how to build the rest. TFDS builds every BUILDER_CONFIGS entry when no config is
    named; the configs that need a manual dir are not among them (found by name only)."""
    proc, data_dir = cli_default
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    assert "Built the gtzan_tfds configs that need no download" in out
    assert "tfds build gtzan_tfds --imports gtzan_tfds --config gtzan --manual_dir" in out
    assert "marsyas.info" in out and "archive.zip" in out
    for name in ("synthetic", "synthetic_small"):
        assert Builder(config=name, data_dir=str(data_dir)).is_prepared()
    for name in ("gtzan", "fault_filtered", "folder"):
        assert not Builder(config=name, data_dir=str(data_dir)).is_prepared()
        assert f"gtzan_tfds/{name}/" not in out  # not attempted


def test_readme_commands_work_outside_the_repository(tmp_path):
    """Installed, the README's dataset and training commands run from any folder: `tfds build`
    finds the builder through `--imports gtzan_tfds` (TFDS looks a bare name up in the current
    folder only), `python -m pipeline...` through the installed package."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TFDS_DATA_DIR")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    tfds_cli = Path(sys.executable).with_name("tfds")
    proc = subprocess.run([str(tfds_cli), "build", "gtzan_tfds", "--imports", "gtzan_tfds",
                           "--config", "synthetic_small", "--data_dir", str(tmp_path / "data")],
                          cwd=outside, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert Builder(config="synthetic_small", data_dir=str(tmp_path / "data")).is_prepared()
    proc = subprocess.run([sys.executable, "-m", "pipeline.train", "--help"], cwd=outside,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "--dataset-config" in proc.stdout, proc.stderr[-2000:]


def test_cli_named_real_config_without_download_fails_cleanly(tmp_path, repo_root, repo_env):
    proc = run_cli(["build", "gtzan_tfds", "--config", "gtzan", "--data_dir", str(tmp_path)],
                   repo_root, repo_env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "Traceback" not in out
    manual = tmp_path / "downloads" / "manual"
    assert f"Manual directory {manual} does not exist or is empty." in out, out[-3000:]
    assert "--manual_dir" in out and "genres_original/<genre>/<genre>.000NN.wav" in out
    message = proc.stderr[proc.stderr.index("Manual directory"):]
    assert message.count("\n") < 50  # one screen


def test_cli_too_small_download_fails_cleanly(tmp_path, repo_root, repo_env):
    download = small_download(tmp_path / "m", ("blues",), per_genre=1)
    proc = run_cli(["build", "gtzan_tfds", "--config", "gtzan", "--manual_dir", str(download),
                    "--data_dir", str(tmp_path / "d")], repo_root, repo_env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out, out[-3000:]
    assert "gtzan_tfds/gtzan: split 'validation' is empty: the download has too few" in out


def test_configs_are_found_by_name():
    """The configs outside BUILDER_CONFIGS are full configs to TFDS: built, loaded, listed."""
    assert [c.name for c in Builder.BUILDER_CONFIGS] == ["synthetic", "synthetic_small"]
    assert [c.name for c in Builder.MANUAL_CONFIGS] == ["gtzan", "fault_filtered", "folder"]
    assert set(Builder.builder_configs) == {c.name for c in Builder.BUILDER_CONFIGS
                                            + Builder.MANUAL_CONFIGS}
    for name in ("gtzan", "fault_filtered", "folder"):
        builder = tfds.builder(f"gtzan_tfds/{name}", data_dir="/nonexistent")
        assert isinstance(builder, Builder)  # the code, not a read-only builder from files
        assert builder.builder_config is Builder.builder_configs[name]
    assert Builder(config="synthetic", data_dir="/nonexistent").builder_config.name == "synthetic"
    assert tfds.builder("gtzan_tfds", data_dir="/nonexistent").builder_config.name == "synthetic"
    with pytest.raises(ValueError, match="Cannot name a custom BuilderConfig the same"):
        Builder(config=GtzanConfig(name="gtzan", source="manual"), data_dir="/nonexistent")


def test_package_import_registers_the_builder():
    assert "gtzan_tfds" in tfds.list_builders(with_community_datasets=False)
    assert gtzan_tfds.Builder is Builder
    big = GtzanConfig(name="synthetic_x10", songs_per_genre=160)
    assert Builder(config=big, data_dir="/nonexistent").builder_config.songs_per_genre == 160
    with pytest.raises(ValueError):
        GtzanConfig(name="bad", source="synthetic", split_lists="filtered")


def test_importing_the_package_is_cheap_and_changes_nothing(tmp_path, repo_root, repo_env):
    """Run from elsewhere, as Beam workers and the `tfds` CLI's later imports are: repo_env
    puts this checkout's code first, not an installed copy."""
    script = ("import os, sys; env = dict(os.environ); import gtzan_tfds, core; "
              "assert 'tensorflow' not in sys.modules, 'TensorFlow imported'; "
              "assert dict(os.environ) == env, 'environment changed'; "
              "print(gtzan_tfds.__file__, core.__file__)")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=repo_env,
                          check=True, timeout=120, capture_output=True, text=True)
    for path in proc.stdout.split():
        assert Path(path).is_relative_to(repo_root), path


def test_folder_metadata_follows_the_tfds_convention(repo_root):
    from tensorflow_datasets.core import dataset_metadata

    folder = repo_root / "gtzan_tfds"
    for name in ("README.md", "CITATIONS.bib", "TAGS.txt", "checksums.tsv"):
        assert (folder / name).is_file(), name
    metadata = dataset_metadata.load(folder)
    assert set(metadata.tags) <= set(dataset_metadata.valid_tags()) and metadata.tags
    assert "Tzanetakis" in metadata.citation and "Kereliuk" in metadata.citation
    info = Builder(config="synthetic", data_dir="/nonexistent").info
    assert info.citation.strip() == metadata.citation.strip()
    assert "Kereliuk, Sturm & Larsen" in info.description


def test_debug_build_capped_per_split_has_no_report(tmp_path):
    """`--max_examples_per_split` stops generation early: no report, no parts left behind."""
    builder = Builder(config=GtzanConfig(name="capped", songs_per_genre=3, clip_seconds=1.0),
                      data_dir=str(tmp_path))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(max_examples_per_split=2))
    assert builder.info.splits["train"].num_examples == 2
    assert sorted(p.name for p in Path(builder.data_dir).iterdir()
                  if not p.name.startswith(("gtzan_tfds-", "dataset_info", "features"))) == [
        "label.labels.txt"]


def test_bench_measures_a_build(tmp_path, repo_root, repo_env):
    config = json.dumps({"name": "synthetic_bench", "songs_per_genre": 3, "clip_seconds": 1.0})
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.bench", "build", "--config", config,
         "--data-dir", str(tmp_path)],
        cwd=repo_root, env=repo_env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["songs"] == 30 and figures["beam"] is None
    assert figures["songs_per_s"] > 0 and figures["peak_rss_tree_mib"] > 100
    assert (tmp_path / "tfds_build.log").is_file()
