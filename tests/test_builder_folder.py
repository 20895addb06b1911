"""The `folder` config: your own music, one folder per label, any format, rate and channels.

One folder of generated audio (3 labels; WAV, FLAC, Ogg, MP3, AU, AIFF at 8-48 kHz, mono and
stereo; an album subfolder; a duplicate song id; a broken file; a cover image and a file
outside any label folder) is built once with `tfds build gtzan_tfds --config folder`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from core.audio import float_to_int16
from core.errors import ManualDataError
from gtzan_tfds import Builder, GtzanConfig, build_report
from gtzan_tfds.audio_io import read_audio
from gtzan_tfds.constants import SAMPLE_RATE

SPLITS = ("train", "validation", "test")
TFDS_CLI = Path(sys.executable).parent / "tfds"
LABELS = ["ambient", "jazz", "rock"]  # sorted folder names
# relpath -> (sample rate, channels, soundfile keyword arguments)
FILES = {
    "ambient/dawn.wav": (22_050, 1, {"subtype": "PCM_16"}),
    "ambient/dusk.wav": (44_100, 2, {"subtype": "PCM_24"}),
    "ambient/haze.aiff": (11_025, 1, {"subtype": "PCM_16"}),
    "jazz/blue.au": (22_050, 1, {"subtype": "PCM_16"}),
    "jazz/modal.wav": (16_000, 1, {"subtype": "FLOAT"}),
    "jazz/swing.flac": (44_100, 2, {"subtype": "PCM_16"}),
    "jazz/trane.ogg": (8_000, 1, {"subtype": "VORBIS"}),
    "jazz/trane.wav": (22_050, 1, {"subtype": "PCM_16"}),  # same id as trane.ogg: left out
    "rock/anthem.flac": (48_000, 1, {"subtype": "PCM_16"}),
    "rock/ballad.ogg": (22_050, 2, {"subtype": "VORBIS"}),
    "rock/live/encore.mp3": (32_000, 2, {"format": "MP3"}),
    "rock/riff.wav": (44_100, 2, {"subtype": "PCM_16"}),
}
BROKEN = "rock/broken.mp3"
SECONDS = 0.5


def tone(sr: int, channels: int, seed: int) -> np.ndarray:
    t = np.arange(int(SECONDS * sr)) / sr
    x = 0.4 * np.sin(2 * np.pi * (150 + 40 * seed) * t)
    return np.stack([x, x[::-1]], axis=1) if channels == 2 else x


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("music")
    for i, (rel, (sr, channels, kwargs)) in enumerate(FILES.items()):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, tone(sr, channels, i), sr, **kwargs)
    (root / BROKEN).write_bytes(b"ID3" + np.random.default_rng(1).bytes(3000))
    (root / "rock/cover.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    (root / "notes.txt").write_text("my music\n")
    return root


@pytest.fixture(scope="module")
def built(music, tmp_path_factory, repo_root, repo_env):
    """(builder, CLI output) of `tfds build gtzan_tfds --config folder --manual_dir <music>`."""
    data_dir = tmp_path_factory.mktemp("folder_data")
    proc = subprocess.run(
        [str(TFDS_CLI), "build", "gtzan_tfds", "--config", "folder", "--manual_dir", str(music),
         "--data_dir", str(data_dir)],
        cwd=repo_root, env=repo_env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return Builder(config="folder", data_dir=str(data_dir)), proc.stdout + proc.stderr


def examples(builder) -> dict[str, dict]:
    out = {}
    for split in SPLITS:
        for ex in tfds.as_numpy(builder.as_dataset(split=split)):
            out[ex["song_id"].decode()] = dict(ex, split=split)
    return out


def test_labels_are_the_sorted_folder_names(built):
    builder, _ = built
    assert builder.info.features["label"].names == LABELS
    for sid, ex in examples(builder).items():
        assert LABELS[ex["label"]] == sid.split("/")[0]


def test_song_ids_are_label_and_path_and_splits_are_stratified(built):
    builder, _ = built
    stored = examples(builder)
    expected = sorted(rel.rsplit(".", 1)[0] for rel in FILES if rel != "jazz/trane.wav")
    assert sorted(stored) == expected  # unique by construction: one id per song
    assert stored["jazz/trane"]["filename"].decode() == "jazz/trane.ogg"  # sorted first wins
    assert stored["rock/live/encore"]["filename"].decode() == "rock/live/encore.mp3"
    per_split = {s: sorted(LABELS[ex["label"]] for ex in stored.values() if ex["split"] == s)
                 for s in SPLITS}
    # 3, 4 and 5 songs per label (rock's broken file included) -> 1/1/1, 2/1/1, 3/1/1
    assert per_split["validation"] == per_split["test"] == LABELS
    assert [builder.info.splits[s].num_examples for s in SPLITS] == [5, 3, 3]


def test_any_format_rate_and_channels_is_stored_as_22050_hz_mono_int16(built, music):
    builder, _ = built
    for sid, ex in examples(builder).items():
        rel = ex["filename"].decode()
        assert ex["audio"].dtype == np.int16 and ex["audio"].ndim == 1, sid
        assert abs(len(ex["audio"]) - SECONDS * SAMPLE_RATE) <= 1200, (sid, len(ex["audio"]))
        assert ex["duration_seconds"] == pytest.approx(len(ex["audio"]) / SAMPLE_RATE)
        if not rel.endswith((".mp3", ".ogg")):  # lossless: exactly the decoder's samples
            np.testing.assert_array_equal(ex["audio"], float_to_int16(read_audio(music / rel)))


def test_bad_and_left_out_files_are_reported(built):
    builder, out = built
    report = build_report.read(builder.data_dir)
    assert [s["file"] for s in report["skipped"]] == [BROKEN]
    assert sum(report["assigned"].values()) == 12 and sum(report["written"].values()) == 11
    assert f"Skipping {BROKEN}: " in out
    assert "1 file(s) left out: the decoder does not read them (.jpg 1), e.g. rock/cover.jpg" in out
    assert "1 file(s) directly in the manual directory left out (no label folder)" in out
    assert "same song id as another file, e.g. jazz/trane.wav (kept jazz/trane.ogg)" in out


@pytest.mark.parametrize("import_code", [True, False], ids=["with_builder_code", "from_files"])
def test_a_fresh_process_reads_the_labels_from_the_built_dataset(
    built, tmp_path, repo_env, import_code
):
    """What the pipeline does: class names from the dataset, not a hard-coded list."""
    builder, _ = built
    script = (
        ("import gtzan_tfds\n" if import_code else "")
        + "import json, sys, tensorflow_datasets as tfds\n"
        + "b = tfds.builder('gtzan_tfds/folder', data_dir=sys.argv[1])\n"
        + "print(json.dumps([type(b).__name__, b.info.features['label'].names]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(builder.data_dir_root)],
                          cwd=tmp_path, env=repo_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kind, names = json.loads(proc.stdout.strip().splitlines()[-1])
    assert names == LABELS
    assert kind == ("Builder" if import_code else "ReadOnlyBuilder")


def test_split_fractions_are_configurable(music, tmp_path):
    config = GtzanConfig(name="my_music", source="folder", validation_fraction=0.4,
                         test_fraction=0.4)
    builder = Builder(config=config, data_dir=str(tmp_path))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(music)))
    report = build_report.read(builder.data_dir)
    # 3, 4, 5 songs per label -> 1/1/1, 1/1/2, 1/2/2 (at the default 0.1: 1/1/1, 2/1/1, 3/1/1)
    assert report["assigned"] == {"train": 3, "validation": 4, "test": 5}
    assert report["dataset"] == "gtzan_tfds/my_music"
    with pytest.raises(ValueError):
        GtzanConfig(name="bad", source="folder", validation_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="split_lists name GTZAN songs"):
        GtzanConfig(name="bad", source="folder", split_lists="filtered")


def test_no_label_folder_says_what_is_expected(tmp_path):
    manual = tmp_path / "music"
    manual.mkdir()
    (manual / "song.mp3").write_bytes(b"ID3")
    builder = Builder(config="folder", data_dir=str(tmp_path / "d"))
    with pytest.raises(ManualDataError) as info:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
    message = str(info.value)
    assert f"No audio file found in a label folder of {manual}" in message
    assert "<label>/<song>." in message and "--manual_dir ~/music" in message
    assert not builder.is_prepared()


def test_train_and_predict_on_a_folder_use_its_labels(tmp_path, capsys):
    """`pipeline.train --dataset-config folder --manual-dir D` builds, trains and predicts with the
    folder names as labels: no GTZAN genre anywhere."""
    from pipeline import predict, train

    labels = ["drone", "pulse", "sweep"]
    music = tmp_path / "my music"
    for k, label in enumerate(labels):
        for i in range(5):
            t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
            x = 0.3 * np.sin(2 * np.pi * (110 * (k + 1) + 7 * i) * t)
            (music / label).mkdir(parents=True, exist_ok=True)
            sf.write(music / label / f"{label}{i}.wav", x, SAMPLE_RATE, subtype="PCM_16")
    run = tmp_path / "run"
    common = ["--dataset-config", "folder", "--manual-dir", str(music),
              "--data-dir", str(tmp_path / "data"), "--window-seconds", "1.5",
              "--step-seconds", "1.5"]
    assert train.main([*common, "--model", "cnn2d", "--transform", "mel", "--epochs", "1",
                       "--verbose", "0", "--run-dir", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert "blues" not in json.dumps(metrics)
    assert metrics["class_names"] == labels and sorted(metrics["per_class_song"]) == labels
    capsys.readouterr()
    assert predict.main([str(music / "pulse" / "pulse0.wav"), "--run", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(result["probabilities"]) == labels
    assert result["genre"] in labels


def test_a_song_over_the_length_limit_is_skipped_with_the_reason(music, tmp_path):
    """Issue 20: a small file that holds more audio than ``max_song_seconds`` (default 15 min)
    is skipped from its header, before decoding, and named in the build report."""
    import shutil

    from pipeline.serving.stress import write_silence_flac

    folder = tmp_path / "music"
    shutil.copytree(music, folder)
    write_silence_flac(folder / "rock" / "long.flac", 20 * 60, sr=8_000, channels=1)
    builder = Builder(config=GtzanConfig(name="my_music_capped", source="folder"),
                      data_dir=str(tmp_path / "data"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(folder)))
    report = build_report.read(builder.data_dir)
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert reasons["rock/long.flac"] == "too long: 20:00 (1200 s) of audio, the limit is 15:00 (900 s)"
    assert sum(report["written"].values()) == 11  # the 11 good songs, not the long one
    with pytest.raises(ValueError, match="max_song_seconds must be positive"):
        GtzanConfig(name="bad", source="folder", max_song_seconds=0)
