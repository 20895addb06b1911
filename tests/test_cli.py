"""The train / evaluate / predict / compare command lines, end to end on tiny synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from models.registry import APPROACHES
from pipeline import compare
from pipeline.experiments import comparison_runs
from pipeline.experiments import comparison_report as report_lib
from pipeline import evaluate
from pipeline import predict
from pipeline import train
from core.config import TRANSFORMS
from core.errors import ConfigError
from core.errors import DatasetNotBuiltError

# Short windows keep every approach at a few seconds per run.
FAST = ["--window-seconds", "1.5", "--step-seconds", "1.5", "--epochs", "2", "--pretrain-epochs", "1",
        "--verbose", "0", "--dataset-config", "synthetic_small"]
VALID_TRANSFORM = {"svc": "mfcc", "rf": "mfcc", "cnn1d": "raw", "cnn2d": "mel", "lstm": "mfcc",
                   "encoder_classifier": "mfcc"}


def _train(run_dir, data_dir, *extra):
    return train.main([*FAST, "--data-dir", data_dir, "--run-dir", str(run_dir), *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_data_dir):
    run_dir = tmp_path_factory.mktemp("runs") / "mfcc_cnn1d"
    assert _train(run_dir, small_data_dir, "--transform", "mfcc", "--model", "cnn1d") == 0
    return run_dir


# The approaches on the pretrained musicnn networks bring their own pipeline (16 kHz, 2.976 s
# windows, not FAST's): tests/test_musicnn_approaches.py trains them end to end.
FROM_SCRATCH = sorted(name for name, a in APPROACHES.items() if not a.needs_weights)


@pytest.mark.parametrize("model", FROM_SCRATCH)
def test_every_approach_trains_and_evaluates(model, tmp_path, small_data_dir):
    assert set(VALID_TRANSFORM) == set(FROM_SCRATCH)
    run = tmp_path / model
    assert _train(run, small_data_dir, "--transform", VALID_TRANSFORM[model], "--model", model) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["num_songs"] == 10 and m["num_windows"] == 60  # 10 test songs x six 1.5 s windows
    for key in ("window_accuracy", "song_accuracy_mean_vote", "song_accuracy_majority_vote"):
        assert 0.0 <= m[key] <= 1.0
    assert np.sum(m["confusion_matrix_song"]) == 10
    assert (run / "confusion_matrix.png").stat().st_size > 10_000
    assert (run / "config.json").exists()
    assert (run / ("model.joblib" if APPROACHES[model].kind == "sklearn" else "model.keras")).exists()
    if APPROACHES[model].kind == "keras":
        assert (run / "training_curves.png").exists() and (run / "logs").is_dir()
        assert not (run / "backup").exists()  # BackupAndRestore state is gone once training ends


def test_run_directory_contents(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["pipeline"]["transform"]["name"] == "mfcc"
    assert config["pipeline"]["window"]["window_seconds"] == 1.5
    assert config["train"]["model"] == "cnn1d"
    assert config["class_names"][0] == "blues"


def test_evaluate_reproduces_the_test_metrics(trained, capsys):
    before = json.loads((trained / "metrics.json").read_text())
    assert evaluate.main(["--run", str(trained), "--quiet"]) == 0
    after = json.loads((trained / "metrics.json").read_text())
    assert after["window_accuracy"] == pytest.approx(before["window_accuracy"])
    assert after["confusion_matrix_window"] == before["confusion_matrix_window"]
    assert "song accuracy" in capsys.readouterr().out
    assert evaluate.main(["--run", str(trained), "--split", "validation", "--quiet"]) == 0
    assert (trained / "metrics_validation.json").exists()


def test_rerun_of_a_finished_run_is_reused(trained, small_data_dir):
    stamp = (trained / "model.keras").stat().st_mtime_ns
    assert _train(trained, small_data_dir, "--transform", "mfcc", "--model", "cnn1d") == 0
    assert (trained / "model.keras").stat().st_mtime_ns == stamp


def test_run_dir_of_another_config_is_refused(trained, small_data_dir):
    with pytest.raises(ConfigError, match="another configuration.*n_mfcc"):
        _train(trained, small_data_dir, "--transform", "mfcc", "--model", "cnn1d", "--n-mfcc", "13")


def _wav(path, seconds, sr=22050, channels=1):
    rng = np.random.default_rng(0)
    audio = 0.1 * rng.standard_normal((int(seconds * sr), channels)).astype(np.float32)
    sf.write(path, audio, sr)
    return path


def test_predict_json_any_rate_and_bad_files(trained, tmp_path, capsys):
    good = _wav(tmp_path / "stereo 44k ünï.wav", 4.0, sr=44100, channels=2)
    short = _wav(tmp_path / "short.wav", 0.5)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio" * 100)
    code = predict.main([str(good), str(short), str(junk), "--run", str(trained), "--json",
                         "--plot", str(tmp_path / "timeline.png")])
    assert code == 1  # some files failed, the good one still ran
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.out.splitlines()]
    ok = [r for r in lines if "error" not in r]
    assert len(ok) == 1 and ok[0]["file"] == str(good)
    assert len(ok[0]["window_probabilities"]) == 2  # 4 s -> two 1.5 s windows
    assert sum(ok[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert ok[0]["genre"] == max(ok[0]["probabilities"], key=ok[0]["probabilities"].get)
    errors = {r["file"]: r["error"] for r in lines if "error" in r}
    assert "too short" in errors[str(short)]
    assert str(junk) in errors[str(junk)]
    assert "short.wav" in out.err and "junk.wav" in out.err
    assert (tmp_path / f"timeline_{good.stem}.png").exists()


def test_invalid_pair_is_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="cnn2d needs a time-frequency transform"):
        train.main(["--transform", "raw", "--model", "cnn2d", "--run-dir", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


def test_unknown_model_lists_valid_ones():
    with pytest.raises(ConfigError, match="valid: .*lstm"):
        train.main(["--model", "transformer"])


def test_invalid_parameter_values():
    with pytest.raises(ConfigError, match="window_seconds must be positive"):
        train.main(["--window-seconds", "-3"])
    with pytest.raises(ConfigError, match="n_mels .* must not exceed"):
        train.main(["--n-fft", "256", "--n-mels", "200"])


def test_real_dataset_not_built_names_the_build_command(tmp_path):
    with pytest.raises(DatasetNotBuiltError, match="tfds build gtzan_tfds --imports gtzan_tfds --config fault_filtered"):
        train.main(["--dataset-config", "fault_filtered", "--data-dir", str(tmp_path), "--model", "svc",
                    "--transform", "mfcc", "--run-dir", str(tmp_path / "r")])


def test_cli_error_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.train", "--transform", "raw", "--model", "lstm",
         "--run-dir", str(tmp_path / "r")], capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error: lstm needs a time-frequency transform" in proc.stderr


def test_compare_quick_writes_the_report(tmp_path, small_data_dir):
    report = tmp_path / "report"
    args = ["--quick", "--dataset-config", "synthetic_small", "--data-dir", small_data_dir,
            "--report-dir", str(report), "--hparam", "dropout=0.5"]
    assert compare.main(args) == 0
    for name in ("results.csv", "results.md", "accuracy.png", "per_class.csv", "per_class.md",
                 "per_class.png"):
        assert (report / name).stat().st_size > 0, name
    rows = (report / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + len(comparison_runs.QUICK_GRID)
    assert len(list(report.glob("confusion_*.png"))) == report_lib.BEST_CONFUSION_MATRICES
    assert "synthetic data" in (report / "results.md").read_text()
    # --hparam reaches every approach that has the hyperparameter, and only those.
    hparams = {d.name: json.loads((d / "config.json").read_text())["train"]["hparams"]
               for d in report.glob("runs/*")}
    assert hparams == {"mfcc_svc": {}, "mfcc_rf": {}, "mfcc_cnn1d": {"dropout": 0.5},
                       "mel_cnn2d": {"dropout": 0.5}, "mfcc_lstm": {"dropout": 0.5}}
    # A second run reuses every finished run instead of training again, also after one of
    # them was re-evaluated (evaluation leaves what training recorded alone).
    assert evaluate.main(["--run", str(report / "runs" / "mfcc_cnn1d"), "--quiet"]) == 0
    stamps = {p: p.stat().st_mtime_ns for p in report.glob("runs/*/model.*")}
    assert compare.main(args) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in report.glob("runs/*/model.*")}
    assert len((report / "results.csv").read_text().splitlines()) == 1 + len(comparison_runs.QUICK_GRID)


def test_compare_refuses_an_hparam_no_approach_has(tmp_path):
    with pytest.raises(ConfigError, match="--hparam units: not a hyperparameter of any approach"):
        compare.main(["--models", "svc", "cnn2d", "--transforms", "mel", "--hparam", "units=8",
                      "--report-dir", str(tmp_path / "report")])
    assert not (tmp_path / "report").exists()


def test_compare_grid_skips_invalid_and_excluded_pairs():
    pairs = comparison_runs.grid(["cnn2d", "svc"], ["raw", "mel", "stft"], exclude=["stft:cnn2d"])
    assert pairs == [("mel", "cnn2d"), ("mel", "svc"), ("stft", "svc")]
    full = comparison_runs.grid(comparison_runs.DEFAULT_MODELS, TRANSFORMS)
    assert len(full) == 22 and ("raw", "cnn1d") in full and ("raw", "cnn2d") not in full
    pretrained = comparison_runs.grid(comparison_runs.PRETRAINED_MODELS, TRANSFORMS)
    assert pretrained == [("musicnn", "musicnn"), ("musicnn", "musicnn_finetune")]


@pytest.mark.parametrize("strategy", ["mirrored", "multi-worker"])
def test_distribution_strategies_train_on_one_machine(strategy, tmp_path, small_data_dir):
    # One CPU replica (multi-worker without TF_CONFIG is a one-worker cluster): the same
    # command a multi-device or multi-machine run uses, checked end to end.
    run = tmp_path / strategy
    assert _train(run, small_data_dir, "--transform", "mfcc", "--model", "cnn1d",
                  "--strategy", strategy) == 0
    assert json.loads((run / "config.json").read_text())["train"]["strategy"] == strategy
    m = json.loads((run / "metrics.json").read_text())
    assert m["num_songs"] == 10 and 0.0 <= m["window_accuracy"] <= 1.0
