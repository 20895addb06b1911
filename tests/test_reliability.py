"""Reliability (issue 7): every bad input named, nothing lost on a kill, same seed same result.

docs/reliability.md lists every case with what the user sees and the test that proves it; the
cases other files already prove (the builder's bad files and killed build in test_builder*.py,
the missing dataset and invalid values in test_cli.py, the killed tuning search in
test_tuning.py, tf.data order in test_dataset.py) are referenced there, not repeated here.

CLI errors are checked through `pipeline.cli.entry.run_cli`, the function every `python -m ...` entry
point calls: an exception it does not turn into an "error: ..." line escapes it, which is
exactly what prints a traceback in a terminal (test_cli.py and the subprocess tests here check
the real entry points). Everything runs on gtzan_tfds/synthetic_small with 1.5 s windows.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from gtzan_tfds import Builder, GtzanConfig
from gtzan_tfds.constants import SAMPLE_RATE
from pipeline.cli.entry import run_cli
from pipeline import compare
from pipeline.experiments import comparison_runs
from pipeline import evaluate
from pipeline import predict
from pipeline import train
from core.config import DatasetConfig, PipelineConfig, TrainConfig, TransformConfig, WindowConfig

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--window-seconds", "1.5", "--step-seconds", "1.5", "--epochs", "2", "--pretrain-epochs", "1",
        "--verbose", "0", "--dataset-config", "synthetic_small"]
# A directory and file names a user may well have: spaces and non-ASCII characters.
ODD_DIR = "my música ü 日本"
ODD_NAME = "Ünïcode song 日本 (live).wav"


# --------------------------------------------------------------------------------------------
# helpers
def cli(main, argv, capsys) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of a CLI run as `python -m ...` runs it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, [str(a) for a in argv])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def noise(seconds, sr=SAMPLE_RATE, channels=1, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((int(seconds * sr), channels))).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, sr=SAMPLE_RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sr, subtype="PCM_16")
    return path


def corrupt_wav(path: Path) -> Path:
    """A RIFF header whose chunks are garbage: the kind of file jazz.00054.wav is in some copies."""
    good = io.BytesIO()
    sf.write(good, noise(1.0), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    data = good.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:12] + np.random.default_rng(1).bytes(len(data) - 12))
    return path


def training_without_timing(run_dir: Path) -> dict:
    record = json.loads((run_dir / "training.json").read_text())
    record.pop("training_seconds")
    return record


def plain_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}


def history_epochs(run_dir: Path) -> list[int]:
    """Epoch column of history.csv ([] while it is missing; a row being written is skipped)."""
    path = run_dir / "history.csv"
    lines = path.read_text().splitlines() if path.exists() else []
    return [int(line.split(",")[0]) for line in lines[1:] if line.split(",")[0].isdigit()]


# --------------------------------------------------------------------------------------------
# fixtures
@pytest.fixture(scope="module")
def keras_run(tmp_path_factory, small_data_dir) -> Path:
    """A trained cnn1d-on-mfcc run (also the first half of the determinism test)."""
    run_dir = tmp_path_factory.mktemp("runs") / "mfcc_cnn1d"
    assert train.main([*FAST, "--data-dir", small_data_dir, "--run-dir", str(run_dir),
                       "--transform", "mfcc", "--model", "cnn1d"]) == 0
    return run_dir


# name -> (how to write it, seconds of audio predicted or None when refused, words of the error)
AUDIO_CASES = {
    "corrupt": (lambda p: corrupt_wav(p / "corrupt.wav"), None, ["undecodable WAV: Error opening corrupt.wav: "]),
    "truncated": (lambda p: _half(write_wav(p / "half.wav", noise(4.0))), None,
                  ["truncated", "header declares", "--allow-truncated"]),
    "empty": (lambda p: _touch(p / "empty.wav", b""), None, ["empty file (0 bytes)"]),
    "not_audio": (lambda p: _touch(p / "notes.mp3", b"these are my notes, not a song\n" * 9), None,
                  ["not an MP3 file", "wrong extension or not audio"]),
    "unknown_extension": (lambda p: _touch(p / "song.m4a", b"\0" * 64), None,
                          ["unknown extension '.m4a'", "supported: ", ".wav"]),
    "missing": (lambda p: p / "no such song.wav", None, ["cannot read file", "No such file"]),
    "too_short": (lambda p: write_wav(p / "short.wav", noise(0.5)), None,
                  ["too short: 0.50 s", "at least one 1.5 s window"]),
    "stereo_44k": (lambda p: write_wav(p / "stereo.wav", noise(4.0, 44_100, 2), 44_100), 4.0, []),
    "rate_48k": (lambda p: write_wav(p / "r48.wav", noise(4.0, 48_000), 48_000), 4.0, []),
    "silence": (lambda p: write_wav(p / "silence.wav", np.zeros((4 * SAMPLE_RATE, 1))), 4.0, []),
    "odd_name": (lambda p: write_wav(p / ODD_NAME, noise(4.0)), 4.0, []),
    "ogg": (lambda p: _ogg(p / "song.ogg"), 4.0, []),
}


def _touch(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _half(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _ogg(path: Path) -> Path:
    sf.write(path, noise(4.0), SAMPLE_RATE, format="OGG", subtype="VORBIS")
    return path


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio") / ODD_DIR
    folder.mkdir()
    return {name: make(folder) for name, (make, _, _) in AUDIO_CASES.items()}


@pytest.fixture(scope="module")
def predicted(keras_run, audio_files):
    """One `predict --json` over every case (a model loads once): results by case name."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(predict.main, [*map(str, audio_files.values()), "--run", str(keras_run),
                                              "--json"])
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    by_file = {r["file"]: r for r in lines}
    results = {name: by_file[str(path)] for name, path in audio_files.items()}
    return exit_info.value.code, results, err.getvalue()


# --------------------------------------------------------------------------------------------
# bad input to pipeline.predict
REFUSED = [n for n, (_, secs, _) in AUDIO_CASES.items() if secs is None]
PREDICTED = [n for n, (_, secs, _) in AUDIO_CASES.items() if secs is not None]


@pytest.mark.parametrize("case", REFUSED)
def test_predict_names_the_file_and_the_problem(predicted, audio_files, case):
    code, results, stderr = predicted
    assert code == 1  # some files failed; the others were still predicted
    error = results[case]["error"]
    assert error.startswith(str(audio_files[case]) + ": "), error
    for words in AUDIO_CASES[case][2]:
        assert words in error, error
    assert f"error: {error}" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("case", PREDICTED)
def test_predict_any_rate_channels_and_name(predicted, case):
    _, results, _ = predicted
    r = results[case]
    assert "error" not in r, r
    assert r["duration_seconds"] == pytest.approx(AUDIO_CASES[case][1], abs=1e-3)
    assert len(r["window_probabilities"]) == 2  # 4 s -> two 1.5 s windows
    probs = np.asarray(r["window_probabilities"])
    assert np.all(np.isfinite(probs)) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert r["genre"] in r["probabilities"]


def test_predict_summary_line_counts_failures(predicted):
    _, _, stderr = predicted
    assert f"{len(REFUSED)} of {len(AUDIO_CASES)} files failed" in stderr


def test_silence_gives_finite_features_for_every_transform():
    from pipeline.stream.dataset import features_from_audio

    silence = np.zeros(4 * SAMPLE_RATE, np.float32)
    for name in ("raw", "fft", "stft", "mel", "mfcc"):
        cfg = PipelineConfig(window=WindowConfig(window_seconds=1.5, step_seconds=1.5),
                             transform=TransformConfig(name=name))
        (features,) = list(features_from_audio(silence, cfg))
        assert features.shape[0] == 2 and np.all(np.isfinite(features.numpy())), name


def test_truncated_file_is_predicted_on_request(keras_run, audio_files, capsys):
    code, out, err = cli(predict.main, [audio_files["truncated"], "--run", keras_run,
                                        "--allow-truncated"], capsys)
    assert code == 0, err
    assert "half.wav: " in out and "1 window(s)" in out  # 2 s of the 4 s are there


def test_predict_max_audio_seconds_refuses_a_longer_file(keras_run, audio_files, capsys):
    """Issue 20: predict streams any length by default; --max-audio-seconds sets a limit,
    applied from the header before decoding."""
    path = audio_files["stereo_44k"]  # 4 s
    code, out, err = cli(predict.main, [path, "--run", keras_run, "--max-audio-seconds", "3"],
                         capsys)
    assert code == 1 and f"error: {path}: too long: 4 s of audio, the limit is 3 s" in err
    code, out, _ = cli(predict.main, [path, "--run", keras_run], capsys)
    assert code == 0 and "2 window(s)" in out


def test_predict_cli_subprocess_prints_no_traceback(keras_run, audio_files):
    files = [audio_files[n] for n in ("odd_name", "corrupt", "empty", "not_audio")]
    proc = subprocess.run([sys.executable, "-m", "pipeline.predict", *map(str, files), "--run",
                           str(keras_run)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"{files[0]}: " in proc.stdout  # the good file, with its odd name, is predicted
    for f in files[1:]:
        assert f"error: {f}: " in proc.stderr
    assert "3 of 4 files failed" in proc.stderr


# The child's own peak: VmHWM of /proc/self/status, read by the child just before it exits.
# Not ru_maxrss: it survives exec, so a child started by a big parent (this pytest process)
# would report the parent's peak whatever it used itself (pipeline/benchmark/memory.py).
PEAK_RSS = """
import sys
from pipeline.cli.entry import run_cli
from pipeline import predict
try:
    run_cli(predict.main, sys.argv[1:])
finally:
    status = open("/proc/self/status").read().splitlines()
    print("peak_rss_kb", next(l for l in status if l.startswith("VmHWM:")).split()[1],
          file=sys.stderr)
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ten_minute_file_is_streamed_in_bounded_memory(keras_run, tmp_path):
    """Peak RSS of `predict` on a 10-minute file vs a 1-minute one: windows are streamed."""
    peaks = {}
    for minutes in (1, 10):
        path = write_wav(tmp_path / f"{minutes} min.wav", noise(60 * minutes, seed=minutes))
        proc = subprocess.run([sys.executable, "-c", PEAK_RSS, str(path), "--run", str(keras_run),
                               "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout)
        assert len(result["window_probabilities"]) == 40 * minutes  # 1.5 s windows
        peaks[minutes] = int(proc.stderr.rsplit("peak_rss_kb", 1)[1]) / 1024  # MiB
    print(f"peak RSS of predict: 1 min {peaks[1]:.0f} MiB, 10 min {peaks[10]:.0f} MiB")
    # Streamed (issue 20): the 10-minute file (53 MB as float32) is never held whole; what
    # grows is one block and the per-window probabilities.  And the child measured itself:
    # below this pytest process's own peak, which ru_maxrss would have reported.
    assert peaks[10] - peaks[1] < 100
    assert 200 < peaks[1] < _own_peak_mib() + 2000


def _own_peak_mib() -> float:
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM:")).split()[1]) / 1024


# --------------------------------------------------------------------------------------------
# bad input to the builder (what test_builder.py does not already build)
@pytest.fixture(scope="module")
def odd_download(tmp_path_factory):
    """A manual download under a path with spaces and non-ASCII characters, holding songs of
    other formats and rates, a corrupt one, a too-short one, a silent one, a 10-minute one
    and one with an unknown extension; built once."""
    root = tmp_path_factory.mktemp("download") / ODD_DIR
    g = root / "genres"
    songs = {
        "blues.00000": write_wav(g / "blues/blues.00000.wav", noise(4.0, 44_100, 2), 44_100),
        "blues.00001": write_wav(g / "blues/blues.00001.wav", noise(4.0, 48_000), 48_000),
        "blues.00002": write_wav(g / "blues/blues.00002.wav", noise(4.0)),
        "classical.00000": write_wav(g / "classical/classical.00000.wav", noise(0.5)),
        "classical.00001": write_wav(g / "classical/classical.00001.wav", np.zeros((4 * SAMPLE_RATE, 1))),
        "classical.00002": write_wav(g / "classical/classical.00002.wav", noise(600.0)),
        "country.00000": corrupt_wav(g / "country/country.00000.wav"),
        "country.00001": write_wav(g / "country/country.00001.wav", noise(4.0, seed=3)),
        "country.00002": write_wav(g / "country/country.00002.wav", noise(4.0, seed=4)),
    }
    _touch(g / "country" / "country.00003.m4a", b"\0" * 64)
    records = []

    class _Handler(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = _Handler(level=logging.WARNING)
    logging.getLogger("absl").addHandler(handler)
    try:
        builder = Builder(config=GtzanConfig(name="manual_odd", source="manual"),
                          data_dir=str(tmp_path_factory.mktemp("odd_data")))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
    finally:
        logging.getLogger("absl").removeHandler(handler)
    stored = {}
    for split in ("train", "validation", "test"):
        for ex in tfds.as_numpy(builder.as_dataset(split=split)):
            stored[ex["song_id"].decode()] = dict(ex, split=split)
    return builder, songs, stored, "\n".join(records)


def test_builder_decodes_stereo_and_other_rates_to_22050_mono(odd_download):
    _, _, stored, _ = odd_download
    for sid in ("blues.00000", "blues.00001", "blues.00002"):  # 44.1 kHz stereo, 48 kHz, 22.05 kHz
        audio = stored[sid]["audio"]
        assert audio.dtype == np.int16 and audio.shape == (4 * SAMPLE_RATE,), sid
        assert stored[sid]["duration_seconds"] == pytest.approx(4.0)
        assert 0.03 < np.std(audio / 32768.0) < 0.11, sid  # noise of std 0.1 (downmixed, halved band: 0.05)


def test_builder_skips_a_corrupt_file_and_names_it(odd_download):
    builder, _, stored, warnings = odd_download
    assert "country.00000" not in stored
    report = json.loads((Path(builder.data_dir) / "build_report.json").read_text())
    assert report["skipped"] == [{"file": "genres/country/country.00000.wav",
                                  "reason": report["skipped"][0]["reason"]}]
    assert report["skipped"][0]["reason"].startswith("undecodable WAV")
    assert "Skipping genres/country/country.00000.wav: undecodable WAV" in warnings


def test_builder_names_files_of_unknown_extension(odd_download):
    _, _, stored, warnings = odd_download
    assert "country.00003" not in stored
    assert "1 file(s) named like GTZAN songs ignored: unknown extension" in warnings
    assert "genres/country/country.00003.m4a" in warnings


def test_builder_reads_a_path_with_spaces_and_non_ascii(odd_download):
    _, songs, stored, _ = odd_download
    assert len(stored) == len(songs) - 1  # all but the corrupt one
    assert ODD_DIR in str(songs["blues.00000"])
    assert stored["blues.00002"]["filename"].decode() == "genres/blues/blues.00002.wav"


def test_builder_keeps_short_silent_and_long_songs(odd_download):
    """Stored as they are; the pipeline cuts no window from a song shorter than one window,
    finite features from silence, and streams a 10-minute song window by window."""
    from pipeline.stream.dataset import batches_from_songs

    builder, _, stored, _ = odd_download
    assert stored["classical.00000"]["duration_seconds"] == pytest.approx(0.5)
    assert not stored["classical.00001"]["audio"].any()
    assert stored["classical.00002"]["audio"].shape == (600 * SAMPLE_RATE,)

    cfg = PipelineConfig(window=WindowConfig(window_seconds=1.5, step_seconds=1.5),
                         transform=TransformConfig(name="mel"), batch_size=64)
    windows: dict[str, int] = {}
    for split in ("train", "validation", "test"):
        songs = builder.as_dataset(split=split).map(
            lambda ex: {"audio": ex["audio"], "label": ex["label"], "song_id": ex["song_id"]})
        for x, _, ids in batches_from_songs(songs, cfg, training=False, with_song_id=True):
            assert np.all(np.isfinite(x.numpy()))  # silence included
            for sid in ids.numpy():
                windows[sid.decode()] = windows.get(sid.decode(), 0) + 1
    assert "classical.00000" not in windows  # 0.5 s: no 1.5 s window
    assert windows["classical.00001"] == 2 and windows["classical.00002"] == 400


# --------------------------------------------------------------------------------------------
# the CLIs: data, names, values, run directories
def test_missing_manual_dir_is_named(tmp_path, capsys):
    code, _, err = cli(train.main, ["--dataset-config", "gtzan", "--manual-dir", tmp_path / "nope",
                                    "--data-dir", tmp_path / "data", "--model", "svc", "--transform",
                                    "mfcc", "--run-dir", tmp_path / "run"], capsys)
    assert code == 2
    assert f"error: Manual directory {tmp_path / 'nope'} does not exist or is empty." in err
    assert "--manual_dir" in err and "genres/<genre>/<genre>.000NN.au" in err
    assert not (tmp_path / "run").exists()  # nothing written: the same run dir works once fixed


def test_wrong_manual_dir_says_what_it_found(tmp_path, capsys):
    manual = tmp_path / "downloads"
    (manual / "blues").mkdir(parents=True)
    _touch(manual / "blues" / "blues.00000.m4a", b"\0")
    code, _, err = cli(train.main, ["--dataset-config", "gtzan", "--manual-dir", manual,
                                    "--data-dir", tmp_path / "data", "--model", "svc", "--transform",
                                    "mfcc", "--run-dir", tmp_path / "run"], capsys)
    assert code == 2
    assert f"error: No GTZAN song found in {manual}" in err
    assert "unknown extension, e.g. blues/blues.00000.m4a" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("main,argv,words", [
    (train.main, ["--transform", "wavelet"], "invalid choice: 'wavelet' (choose from 'raw', 'fft'"),
    (compare.main, ["--models", "transformer"], "unknown model 'transformer'; valid: svc, rf, cnn1d"),
    (train.main, ["--model", "cnn1d", "--transform", "mfcc", "--hparam", "width=3"],
     "unknown hyperparameter(s) for cnn1d: width; valid: blocks, filters"),
    (train.main, ["--model", "svc", "--transform", "mfcc", "--hparam", "n_estimators=3"],
     "unknown hyperparameter(s) for svc: n_estimators; valid: C, gamma, kernel"),
    (train.main, ["--model", "cnn1d", "--transform", "mfcc", "--optimizer", "adagrad"],
     "unknown optimizer 'adagrad'; valid: adam, adamw, rmsprop, sgd"),
    (train.main, ["--step-seconds", "-1"], "step_seconds must be positive, got -1.0"),
    (train.main, ["--hop-length", "0"], "hop_length must be positive, got 0"),
    (train.main, ["--transform", "mfcc", "--n-mels", "16", "--n-mfcc", "20"],
     "n_mfcc (20) must not exceed n_mels (16)"),
    (train.main, ["--fmax", "20000"], "need 0 <= fmin < fmax <= sample_rate/2 (11025 Hz)"),
    (train.main, ["--epochs", "0"], "epochs must be positive, got 0"),
], ids=["unknown_transform", "unknown_model_compare", "unknown_hparam_keras",
        "unknown_hparam_sklearn", "unknown_optimizer", "negative_step", "zero_hop",
        "n_mfcc_over_n_mels", "fmax_over_nyquist", "zero_epochs"])
def test_invalid_names_and_values_are_one_line(main, argv, words, tmp_path, capsys, small_data_dir):
    run_dir = tmp_path / "run"
    argv = [*argv, "--dataset-config", "synthetic_small", "--data-dir", small_data_dir]
    argv += ["--report-dir", tmp_path / "report"] if main is compare.main else ["--run-dir", run_dir]
    code, _, err = cli(main, argv, capsys)
    assert code == 2
    assert words in err, err
    assert not run_dir.exists() and not (tmp_path / "report").exists()


def test_unknown_model_in_tuning_lists_the_valid_ones(tmp_path, capsys):
    from tuning import search

    code, _, err = cli(search.main, ["--model", "transformer", "--directory", tmp_path], capsys)
    assert code == 2 and "unknown model 'transformer'; valid: svc, rf, cnn1d" in err


def test_window_longer_than_every_song_is_refused_before_training(small_data_dir, tmp_path, capsys):
    code, _, err = cli(train.main, [*FAST, "--window-seconds", "10", "--step-seconds", "10",
                                    "--transform", "mfcc", "--model", "cnn1d",
                                    "--data-dir", small_data_dir, "--run-dir", tmp_path / "r"], capsys)
    assert code == 2
    assert ("error: split 'train' of gtzan_tfds/synthetic_small gives no windows: every song is "
            "shorter than one 10 s window") in err
    assert "--pad-end true" in err
    assert not (tmp_path / "r").exists()


def test_step_longer_than_the_song_gives_one_window_per_song(small_data_dir, tmp_path):
    """A step past the song's end is valid: each song gives its first window only."""
    run = tmp_path / "r"
    assert train.main([*FAST, "--step-seconds", "20", "--transform", "mfcc", "--model", "rf",
                       "--data-dir", small_data_dir, "--run-dir", str(run)]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["num_songs"] == 10 and m["num_windows"] == 10


def test_too_few_windows_for_a_model_is_a_clear_error(small_data_dir, tmp_path, capsys):
    """SVC calibrates its probabilities by 5-fold cross-validation: 2 windows a genre are too few."""
    code, _, err = cli(train.main, [*FAST, "--step-seconds", "20", "--transform", "mfcc",
                                    "--model", "svc", "--data-dir", small_data_dir,
                                    "--run-dir", tmp_path / "r"], capsys)
    assert code == 2
    assert "error: svc cannot be fitted on the 20 windows of the train split of synthetic_small" in err
    assert "5-fold" in err


def _copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


@pytest.mark.parametrize("damage,words", [
    ("truncated_json", "config.json: damaged JSON (Expecting"),
    ("other_version", "config.json: config version 1, this code reads version 2"),
    ("unknown_field", "config.json: incompatible or damaged config (unknown TransformConfig fields: n_chroma)"),
    ("other_features", "config.json does not match"),
    ("damaged_model", "model.keras: cannot load the trained model, it is damaged"),
    ("no_model", "holds no trained model (model.keras or model.joblib with training.json)"),
    ("no_config", "is not a run directory: no config.json"),
    ("missing_dir", "does not exist"),
])
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_incompatible_run_directory_is_named(keras_run, audio_files, tmp_path, capsys, damage, words,
                                             command):
    run = _copy_run(keras_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    if damage == "truncated_json":
        (run / "config.json").write_text((run / "config.json").read_text()[:100])
    elif damage == "other_version":
        (run / "config.json").write_text(json.dumps({**config, "version": 1}))
    elif damage == "unknown_field":
        config["pipeline"]["transform"]["n_chroma"] = 12
        (run / "config.json").write_text(json.dumps(config))
    elif damage == "other_features":
        config["pipeline"]["transform"]["n_mfcc"] = 13
        (run / "config.json").write_text(json.dumps(config))
    elif damage == "damaged_model":
        (run / "model.keras").write_bytes((run / "model.keras").read_bytes()[:2000])
    elif damage == "no_model":
        (run / "model.keras").unlink()
    elif damage == "no_config":
        (run / "config.json").unlink()
    elif damage == "missing_dir":
        shutil.rmtree(run)
    if command == "evaluate":
        code, _, err = cli(evaluate.main, ["--run", run, "--quiet"], capsys)
    else:
        code, _, err = cli(predict.main, [audio_files["odd_name"], "--run", run], capsys)
    assert code == 2
    assert err.startswith("error: ") and str(run) in err and words in err, err


def test_evaluate_subprocess_on_a_damaged_config_prints_no_traceback(keras_run, tmp_path):
    run = _copy_run(keras_run, tmp_path / "run")
    (run / "config.json").write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "pipeline.evaluate", "--run", str(run)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"error: {run / 'config.json'}: damaged JSON" in proc.stderr


def test_where_the_data_lives_is_not_part_of_a_run(keras_run, tmp_path):
    """A run resumes after its dataset moved; a run dir with nothing trained takes a new config."""
    from core.errors import RunDirError
    from pipeline.experiments.run_dir import RunDir

    run = RunDir(keras_run)
    cfg, train_cfg, _ = run.load_config()
    moved = PipelineConfig.from_dict(cfg.to_dict())
    moved.dataset = DatasetConfig(name=cfg.dataset.name, data_dir="/elsewhere", manual_dir="/x")
    run.check_same_config(moved, train_cfg)  # no error
    other = TrainConfig.from_dict({**train_cfg.to_dict(), "learning_rate": 0.5})
    with pytest.raises(RunDirError, match="another configuration.*learning_rate"):
        run.check_same_config(cfg, other)
    started = RunDir(tmp_path / "started")
    started.save_config(cfg, train_cfg)
    assert run.has_progress() and not started.has_progress()


# --------------------------------------------------------------------------------------------
# faults: kills
def test_history_rows_beyond_the_backup_are_trimmed(tmp_path):
    """CSVLogger writes an epoch's row before BackupAndRestore saves that epoch; a kill between
    the two (or mid-row) must not leave a row the resumed run writes again."""
    from pipeline.experiments.keras_training import trim_history

    path = tmp_path / "history.csv"
    path.write_text("epoch,accuracy,loss\n0,0.1,2.3\n1,0.2,2.1\n2,0.3,1.9\n3,0.")
    trim_history(path, 2)
    assert path.read_text().splitlines() == ["epoch,accuracy,loss", "0,0.1,2.3", "1,0.2,2.1"]


def test_backup_damaged_by_a_kill_falls_back_or_starts_over(tmp_path):
    """A kill while BackupAndRestore writes training_metadata.json leaves it empty."""
    from pipeline.experiments.run_dir import RunDir
    from pipeline.experiments.keras_training import finished_epochs_in_backup

    run = RunDir(tmp_path)
    backup = run.backup_dir
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(b"epoch 3 weights")
    (backup / "training_metadata.json").write_text('{"epoch": 3, "batch": 0}')
    assert finished_epochs_in_backup(run) == 3
    (backup / "training_metadata.json").write_text("")  # killed mid-write
    (backup / "latest.weights.h5.bkp").write_bytes(b"epoch 2 weights")
    (backup / "training_metadata.json.bkp").write_text('{"epoch": 2, "batch": 0}')
    assert finished_epochs_in_backup(run) == 2  # the previous backup, weights and all
    assert (backup / "latest.weights.h5").read_bytes() == b"epoch 2 weights"
    for f in backup.glob("*.bkp"):
        f.unlink()
    (backup / "training_metadata.json").write_text("")
    assert finished_epochs_in_backup(run) == 0 and not backup.exists()  # start over


TRAIN_EPOCHS = 8


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_training_killed_mid_epoch_resumes_from_the_last_finished_epoch(small_data_dir, tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "pipeline.train", "--dataset-config", "synthetic_small",
            "--data-dir", small_data_dir, "--run-dir", str(run), "--transform", "mel",
            "--model", "cnn2d", "--window-seconds", "1.5", "--step-seconds", "0.5",
            "--epochs", str(TRAIN_EPOCHS), "--patience", "100", "--verbose", "2"]
    metadata = run / "backup" / "training_metadata.json"
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while not (metadata.exists() and history_epochs(run)):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (run / "metrics.json").exists(), "training ended before it was killed"
    finished = json.loads(metadata.read_text())["epoch"]
    assert 1 <= finished < TRAIN_EPOCHS

    second = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    print(f"killed after {finished} finished epoch(s)")
    assert f"resuming from epoch {finished + 1} of {TRAIN_EPOCHS}" in second.stdout
    epochs_run = [int(line.split()[1].split("/")[0]) for line in second.stdout.splitlines()
                  if line.startswith("Epoch ")]
    assert epochs_run == list(range(finished + 1, TRAIN_EPOCHS + 1))
    assert history_epochs(run) == list(range(TRAIN_EPOCHS))  # every epoch once, in order
    assert (run / "metrics.json").exists() and (run / "model.keras").exists()
    assert not (run / "backup").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_compare_killed_mid_grid_reuses_finished_runs(small_data_dir, tmp_path):
    report = tmp_path / "report"
    args = ["--quick", "--dataset-config", "synthetic_small", "--data-dir", small_data_dir,
            "--report-dir", str(report)]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.compare", *args], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 400
        while not list(report.glob("runs/*/metrics.json")):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no run finished in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = {p.parent.name: p.parent for p in report.glob("runs/*/metrics.json")}
    assert 1 <= len(finished) < len(comparison_runs.QUICK_GRID)
    assert not (report / "results.csv").exists()
    stamps = {name: (d / "metrics.json").stat().st_mtime_ns for name, d in finished.items()}
    models = {name: next(d.glob("model.*")).stat().st_mtime_ns for name, d in finished.items()}

    assert compare.main(args) == 0
    for name, d in finished.items():
        assert next(d.glob("model.*")).stat().st_mtime_ns == models[name], f"{name} was retrained"
        assert (d / "metrics.json").stat().st_mtime_ns == stamps[name]
    rows = (report / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + len(comparison_runs.QUICK_GRID)
    assert len(list(report.glob("runs/*/metrics.json"))) == len(comparison_runs.QUICK_GRID)


# --------------------------------------------------------------------------------------------
# determinism
def _train_in_subprocess(small_data_dir, run: Path, *flags) -> None:
    proc = subprocess.run([sys.executable, "-m", "pipeline.train", *FAST, "--data-dir", small_data_dir,
                           "--run-dir", str(run), *flags], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_same_seed_same_data_same_keras_metrics_in_two_processes(keras_run, small_data_dir, tmp_path):
    """Initial weights, shuffles and dropout are all seeded: another process, the same run."""
    again = tmp_path / "again"
    _train_in_subprocess(small_data_dir, again, "--transform", "mfcc", "--model", "cnn1d")
    assert (again / "metrics.json").read_text() == (keras_run / "metrics.json").read_text()
    assert (again / "history.csv").read_text() == (keras_run / "history.csv").read_text()
    assert training_without_timing(again) == training_without_timing(keras_run)


def test_same_seed_same_data_same_random_forest_in_two_processes(small_data_dir, tmp_path):
    """The forest's bootstrap and feature draws come from the run's seed (random_state)."""
    here, there = tmp_path / "here", tmp_path / "there"
    assert train.main([*FAST, "--data-dir", small_data_dir, "--run-dir", str(here),
                       "--transform", "mfcc", "--model", "rf"]) == 0
    _train_in_subprocess(small_data_dir, there, "--transform", "mfcc", "--model", "rf")
    assert (here / "metrics.json").read_text() == (there / "metrics.json").read_text()
    assert training_without_timing(here) == training_without_timing(there)
    other_seed = tmp_path / "other_seed"
    assert train.main([*FAST, "--data-dir", small_data_dir, "--run-dir", str(other_seed),
                       "--transform", "mfcc", "--model", "rf", "--seed", "7"]) == 0
    assert (other_seed / "metrics.json").read_text() != (here / "metrics.json").read_text()
