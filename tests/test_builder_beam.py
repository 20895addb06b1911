"""Beam generation writes the same dataset as generation in one process.

Each config is built twice, without Beam and with Beam on 2 local worker processes, and every
split's song ids, labels, audio bytes, file names and durations are compared, with the build
reports (which name the skipped files). The Beam builds run on Beam's FnApiRunner: the
`DirectRunner` of Beam 2.77 first tries to download the Prism runner from GitHub, which a test
must not depend on (docs/dataset_build.md).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from gtzan_tfds import Builder, GtzanConfig, build_report
from gtzan_tfds.constants import SAMPLE_RATE
from gtzan_tfds.synthetic_audio import generate_song

SPLITS = ("train", "validation", "test")
TFDS_CLI = Path(sys.executable).parent / "tfds"
BEAM_OPTIONS = "runner=FnApiRunner,direct_num_workers=2,direct_running_mode=multi_processing"
DUMMY_FOLDER = Path(__file__).resolve().parents[1] / "gtzan_tfds" / "dummy_data" / "folder"


def dataset_contents(builder) -> dict[str, dict[str, tuple]]:
    """split -> song_id -> (label, audio bytes, filename, duration) of a built dataset."""
    out = {}
    for split in SPLITS:
        songs = {}
        for ex in tfds.as_numpy(builder.as_dataset(split=split)):
            songs[ex["song_id"].decode()] = (
                int(ex["label"]), ex["audio"].astype("<i2").tobytes(), ex["filename"].decode(),
                float(ex["duration_seconds"]),
            )
        out[split] = songs
    return out


def assert_same_dataset(single, beam) -> None:
    assert single.info.features["label"].names == beam.info.features["label"].names
    one, other = dataset_contents(single), dataset_contents(beam)
    for split in SPLITS:
        assert sorted(one[split]) == sorted(other[split]), split
        assert one[split] == other[split], split  # labels, audio bytes, file names, durations
        assert single.info.splits[split].num_examples == beam.info.splits[split].num_examples
    assert build_report.read(single.data_dir) == build_report.read(beam.data_dir)


def write_wav(path: Path, seconds: float, index: int, sr: int = SAMPLE_RATE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, generate_song("jazz", index, seed=5, clip_seconds=seconds), sr,
             subtype="PCM_16")


@pytest.fixture(scope="module")
def gtzan_download(tmp_path_factory) -> Path:
    """3 genres x 3 songs (one at 44.1 kHz), and a truncated file that is skipped."""
    root = tmp_path_factory.mktemp("beam_download")
    for g, genre in enumerate(("blues", "classical", "country")):
        for i in range(3):
            write_wav(root / f"genres/{genre}/{genre}.{i:05d}.wav", 1.0, 3 * g + i,
                      sr=44_100 if i == 0 else SAMPLE_RATE)
    good = (root / "genres/blues/blues.00001.wav").read_bytes()
    (root / "genres/country/country.00007.wav").write_bytes(good[: len(good) // 2])
    return root


def test_cli_beam_build_of_a_gtzan_download_equals_the_single_process_build(
    gtzan_download, tmp_path, repo_root, repo_env
):
    config = "gtzan"
    single = Builder(config=config, data_dir=str(tmp_path / "single"))
    single.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(gtzan_download)))
    proc = subprocess.run(
        [str(TFDS_CLI), "build", "gtzan_tfds", "--config", config, "--manual_dir",
         str(gtzan_download), "--data_dir", str(tmp_path / "beam"),
         "--beam_pipeline_options", BEAM_OPTIONS],
        cwd=repo_root, env=repo_env, capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    counters = "test_written 3, train_skipped 1, train_written 3, validation_written 3"
    assert f"Beam counters: {counters}" in out, out[-4000:]
    beam = Builder(config=config, data_dir=str(tmp_path / "beam"))
    assert_same_dataset(single, beam)
    skipped = build_report.read(beam.data_dir)["skipped"]
    assert skipped == [{"file": "genres/country/country.00007.wav",
                        "reason": skipped[0]["reason"]}]
    assert skipped[0]["reason"].startswith("truncated")
    assert not list(Path(beam.data_dir).glob(f"{build_report.PARTS_DIR}*"))  # parts removed


def test_python_beam_build_of_a_music_folder_equals_the_single_process_build(
    tmp_path, repo_env, monkeypatch, caplog
):
    """Labels found at build time reach the Beam workers (they encode the examples)."""
    import apache_beam as beam

    caplog.set_level(logging.INFO, logger="absl")
    monkeypatch.setenv("PYTHONPATH", repo_env["PYTHONPATH"])  # the worker processes' imports
    config = GtzanConfig(name="folder_beam_test", source="folder")
    single = Builder(config=config, data_dir=str(tmp_path / "single"))
    single.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY_FOLDER)))
    options = beam.options.pipeline_options.PipelineOptions(
        [f"--{option}" for option in BEAM_OPTIONS.split(",")])
    beam_built = Builder(config=config, data_dir=str(tmp_path / "beam"))
    beam_built.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(DUMMY_FOLDER), beam_options=options))
    assert "Beam counters: test_written 3, train_skipped 1, train_written 3" in caplog.text
    assert beam_built.info.features["label"].names == ["brass", "drums", "keys"]
    assert_same_dataset(single, beam_built)
    report = json.loads((Path(beam_built.data_dir) / "build_report.json").read_text())
    assert [s["file"] for s in report["skipped"]] == ["keys/broken.wav"]
    audio = dataset_contents(beam_built)["test"]["keys/chord_0"][1]
    assert len(np.frombuffer(audio, "<i2")) == round(0.2 * SAMPLE_RATE)  # 48 kHz -> 22.05 kHz
