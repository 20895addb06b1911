"""tuning of the scikit-learn approaches (svc, rf, the musicnn probe) through Keras Tuner's SklearnTuner.

The space (no training), the song-grouped cross-validation against a leaky window split, a real
rf search whose trial scores are recomputed by hand, its best_run read by evaluate and predict,
a search killed mid-way and resumed, a musicnn search that passes the network once per weights
and exports its best run, and the nested evaluation (search inside each outer training fold).
Data: gtzan_tfds/synthetic_small (20/10/10 songs of 9 s); rf on 1 s windows every 3 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.errors import ConfigError
from models import musicnn_checkpoint
from pipeline.experiments.song_cv import SongKFold, song_cv_scores
from tuning.search_space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]
needs_wheel = pytest.mark.skipif(not musicnn_checkpoint.is_installed(),
                                 reason="musicnn wheel not installed")


def rf_args(data_dir, directory, *extra, max_trials=2) -> list[str]:
    """A tiny rf search: 1 s windows every 3 s (3 per song), two FFT sizes, 3 song folds."""
    return ["--model", "rf", "--transform", "mfcc", "--dataset-config", "synthetic_small",
            "--data-dir", str(data_dir), "--window-seconds", "1.0", "--step-seconds", "3.0",
            "--sample-rate", "22050", "--choices", "n_fft=512,1024", "--fix", "hop_length=512",
            "--fix", "n_mels=40", "--choices", "n_mfcc=13,20", "--choices", "n_estimators=20,40",
            "--cv-folds", "3", "--max-trials", str(max_trials), "--directory", str(directory),
            "--project-name", "p", "--verbose", "0", *extra]


def completed(project: Path) -> dict[str, float]:
    out = {}
    for f in sorted(project.glob("trial_*/trial.json")):
        try:
            state = json.loads(f.read_text())
        except ValueError:
            continue
        if state["status"] == "COMPLETED":
            out[state["trial_id"]] = state["score"]
    return out


# --- the space --------------------------------------------------------------------------------
def test_space_of_the_scikit_learn_approaches():
    probe = SearchSpace.for_approach("musicnn", "musicnn")
    assert list(probe.entries) == ["step_seconds", "probe", "C", "weights", "layer"]
    rf = SearchSpace.for_approach("rf", "mfcc")
    assert {"window_seconds", "n_fft", "n_mfcc", "n_estimators", "min_samples_leaf"} <= set(rf.entries)
    # fitted once on vectors: no optimizer, no training stream to augment
    assert not {"learning_rate", "batch_size", "mixup_alpha", "gain_db"} & set(rf.entries)
    with pytest.raises(ConfigError, match="not a hyperparameter of rf"):
        SearchSpace.for_approach("rf", "mfcc", fixed={"learning_rate": 0.01})
    cfg, train = probe.configs({"step_seconds": 1.488, "weights": "mtt", "layer": "mean_pool",
                                "probe": "svc", "C": 10.0},
                               *_musicnn_base())
    assert cfg.window.step_seconds == 1.488 and cfg.window.window_seconds == pytest.approx(2.976)
    assert train.hparams == {"weights": "mtt", "layer": "mean_pool", "probe": "svc", "C": 10.0}


def _musicnn_base():
    from core.config import PipelineConfig, TrainConfig, TransformConfig, WindowConfig

    return (PipelineConfig(window=WindowConfig(sample_rate=16000, window_seconds=2.976,
                                               step_seconds=2.976),
                           transform=TransformConfig(name="musicnn")),
            TrainConfig(model="musicnn"))


def test_cli_refuses_what_does_not_apply_to_a_scikit_learn_approach(tmp_path):
    from tuning import search

    base = ["--model", "rf", "--transform", "mfcc", "--directory", str(tmp_path), "--show-space"]
    with pytest.raises(ConfigError, match="does not apply to rf"):
        search.main(base + ["--objective", "val_accuracy"])
    with pytest.raises(ConfigError, match="hyperband allocates training epochs"):
        search.main(base[:-1] + ["--tuner", "hyperband", "--dataset-config", "synthetic_small",
                                 "--data-dir", str(tmp_path / "d"), "--max-trials", "1"])
    assert not any(tmp_path.iterdir())  # refused before a project folder was written
    with pytest.raises(ConfigError, match="grid needs discrete values: .*learning_rate"):
        search.main(["--model", "lstm", "--transform", "mfcc", "--tuner", "grid", "--show-space"])
    assert search.main(base + ["--tuner", "grid"]) == 0


# --- cross-validation by song ---------------------------------------------------------------------
def _song_identity_data(songs=30, windows=6, seed=0):
    """Windows whose features name their song and say nothing of its genre."""
    rng = np.random.default_rng(seed)
    song_ids = np.repeat([f"s{i:02d}" for i in range(songs)], windows)
    labels = np.repeat(np.arange(songs) % 3, windows)
    x = np.repeat(rng.normal(size=(songs, 8)), windows, axis=0) + 0.01 * rng.normal(size=(songs * windows, 8))
    return x, labels, song_ids


def test_song_folds_hold_whole_songs_and_do_not_leak():
    from sklearn.model_selection import KFold
    from sklearn.neighbors import KNeighborsClassifier

    x, y, songs = _song_identity_data()
    cv = SongKFold(5, seed=1)
    held_out = []
    for fit, held in cv.split(x, y, songs):
        assert not set(songs[fit]) & set(songs[held])  # never a song on both sides
        held_out.extend(sorted(set(songs[held])))
        assert np.bincount(y[held][::6], minlength=3).max() <= 2  # genres dealt evenly
    assert sorted(held_out) == sorted(set(songs))  # every song held out exactly once
    nearest = lambda: KNeighborsClassifier(1)  # noqa: E731 (memorises songs)
    by_song = song_cv_scores(nearest, x, y, songs, cv, 3)["cv_song_accuracy"]

    class WindowFolds(SongKFold):  # the leak: folds of windows, a song on both sides
        def split(self, X, y, groups):
            return KFold(5, shuffle=True, random_state=1).split(X)

    leaky = song_cv_scores(nearest, x, y, songs, WindowFolds(5), 3)["cv_song_accuracy"]
    assert leaky == 1.0  # it recognises the song, not the genre
    assert by_song < 0.7  # chance is 1/3: nothing to memorise across songs


# --- a real search --------------------------------------------------------------------------------
def test_rf_search_scores_by_song_and_retrains_a_run_evaluate_and_predict_read(
        small_data_dir, tmp_path, capsys):
    from pipeline import evaluate, predict
    from tuning import search
    from tuning.estimator_search import EstimatorHyperModel

    assert search.main(rf_args(small_data_dir, tmp_path)) == 0
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["objective"] == "cv_song_accuracy" and summary["trial_counts"] == {"COMPLETED": 2}
    best = summary["best_trials"][0]
    # the trial's score, recomputed by hand from the same vectors: train + validation songs
    args = search.build_parser().parse_args(rf_args(small_data_dir, tmp_path))
    space = search.make_space(args, "rf", "mfcc")
    hypermodel = EstimatorHyperModel(space, *search.base_configs(args, "rf", "mfcc"), verbose=False)
    hp = space.hp.copy()
    hp.values.update(best["values"])
    x, y, songs = hypermodel.trial_data(hp)
    assert len(set(songs)) == 30 and len(x) == 90  # 20 train + 10 validation songs, 3 windows
    again = song_cv_scores(lambda: hypermodel.build(hp), x, y, songs, SongKFold(3, 42), 10)
    assert best["score"] == pytest.approx(again["cv_song_accuracy"])
    assert best["metrics"]["cv_window_accuracy"] == pytest.approx(again["cv_window_accuracy"])

    run = tmp_path / "p" / "best_run"
    config = json.loads((run / "config.json").read_text())
    assert config["pipeline"]["transform"]["n_fft"] == best["values"]["n_fft"]
    assert config["train"]["hparams"]["n_estimators"] == best["values"]["n_estimators"]
    assert summary["best_run"]["test"]["num_songs"] == 10
    assert evaluate.main(["--run", str(run), "--quiet"]) == 0
    wav = tmp_path / "song.wav"
    sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal(4 * 22050).astype(np.float32), 22050)
    capsys.readouterr()
    assert predict.main([str(wav), "--run", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert "cv_song_accuracy (objective)" in (tmp_path / "p" / "summary.md").read_text()


def test_grid_tries_every_combination_once_then_stops(small_data_dir, tmp_path):
    from tuning import search

    args = rf_args(small_data_dir, tmp_path, "--tuner", "grid", "--no-retrain", "--fix",
                   "n_fft=512", "--fix", "max_features=sqrt", "--choices", "min_samples_leaf=1,4",
                   max_trials=10)
    assert search.main(args) == 0
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["trial_counts"] == {"COMPLETED": 8}  # the grid, then no more (max 10)
    tried = sorted((t["values"]["n_mfcc"], t["values"]["n_estimators"], t["values"]["min_samples_leaf"])
                   for t in summary["best_trials"])
    assert tried == sorted((m, n, leaf) for m in (13, 20) for n in (20, 40) for leaf in (1, 4))


@pytest.mark.timeout(600)
def test_rf_search_killed_mid_way_resumes_without_losing_or_repeating(small_data_dir, tmp_path,
                                                                      kill_when):
    args = rf_args(small_data_dir, tmp_path, "--no-retrain", "--choices", "n_estimators=200,300",
                   max_trials=4)
    project = tmp_path / "p"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    proc = subprocess.Popen([sys.executable, "-m", "tuning.search", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, lambda: completed(project))
    before = completed(project)
    assert 1 <= len(before) < 4
    result = subprocess.run([sys.executable, "-m", "tuning.search", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    finished = completed(project)
    assert sorted(finished) == [str(i) for i in range(4)]
    assert {k: finished[k] for k in before} == before  # finished trials kept as they were
    events = [json.loads(line) for line in (project / "trial_events.jsonl").read_text().splitlines()]
    assert sorted(e["trial_id"] for e in events if e["event"] == "end") == [str(i) for i in range(4)]


# --- the musicnn probe --------------------------------------------------------------------------
@needs_wheel
def test_musicnn_search_passes_the_network_once_per_weights_and_exports_its_best(
        small_data_dir, tmp_path, network_windows):
    import tensorflow as tf

    from pipeline.serving.exporting import export_run
    from tuning import search

    assert search.main(["--model", "musicnn", "--dataset-config", "synthetic_small",
                        "--data-dir", small_data_dir, "--embedding-dir", str(tmp_path / "emb"),
                        "--fix", "probe=logistic", "--fix", "step_seconds=2.976",
                        "--choices", "C=0.1,1.0", "--cv-folds", "3", "--max-trials", "4",
                        "--directory", str(tmp_path), "--project-name", "m",
                        "--verbose", "0"]) == 0
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["trial_counts"] == {"COMPLETED": 4}
    weights = {t["values"]["weights"] for t in summary["best_trials"]}
    # 40 songs x 3 windows, once per network tried: a trial costs a probe fit, not a pass
    assert network_windows["windows"] == 120 * len(weights)
    info = export_run(tmp_path / "m" / "best_run", tmp_path / "export")
    assert info["approach"] == "musicnn"
    serve = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(4 * 16000) / 16000).astype(np.float32)
    out = serve(audio=tf.constant(tone), sample_rate=tf.constant(16000, tf.int32))
    assert float(tf.reduce_sum(out["probabilities"])) == pytest.approx(1.0, abs=1e-4)


# --- nested evaluation --------------------------------------------------------------------------
@needs_wheel
def test_nested_evaluation_searches_inside_each_outer_training_fold(small_data_dir, tmp_path):
    """The musicnn probe (its vectors from the store: cheap); the code is the same for any
    approach."""
    from tuning import nested, search
    from tuning.estimator_search import EstimatorHyperModel

    args = ["--model", "musicnn", "--dataset-config", "synthetic_small", "--data-dir",
            small_data_dir, "--folds", "3", "--fix", "probe=logistic", "--fix", "weights=msd",
            "--fix", "step_seconds=2.976", "--choices", "C=0.01,1.0", "--cv-folds", "3",
            "--max-trials", "2", "--directory", str(tmp_path), "--project-name", "p",
            "--verbose", "0"]
    assert nested.main(args) == 0
    result = json.loads((tmp_path / "p" / "nested.json").read_text())
    assert result["tuned"]["num_songs"] == result["default"]["num_songs"] == 40
    assert len(result["fold_records"]) == 3

    def tested(run):
        return {s["song_id"] for s in json.loads((run / "metrics.json").read_text())["songs"]}

    all_tested = set()
    for fold in range(3):
        project = tmp_path / "p" / f"fold_{fold}"
        test_songs = tested(project / "best_run")
        assert test_songs == tested(project / "default_run")  # both arms on the same songs
        all_tested |= test_songs
        # the songs this fold's search scored its trials on: never its test songs
        fold_args = search.build_parser().parse_args([*args, "--fold", str(fold)])
        base = search.base_configs(fold_args, "musicnn", "musicnn")
        space = search.make_space(fold_args, "musicnn", "musicnn")
        _, _, searched = EstimatorHyperModel(space, *base, verbose=False).trial_data(space.hp.copy())
        assert not set(searched) & test_songs and len(set(searched)) + len(test_songs) == 40
    assert len(all_tested) == 40  # every song tested once
    assert "only tuned right" in (tmp_path / "p" / "nested.md").read_text()


def test_nested_and_the_old_probe_study_refuse_clearly(tmp_path, capsys):
    from pipeline.experiments import probe_study
    from tuning import nested

    base = ["--model", "rf", "--transform", "mfcc", "--directory", str(tmp_path)]
    with pytest.raises(ConfigError, match="--folds K .at least 2. sets the outer folds"):
        nested.main(base)
    with pytest.raises(ConfigError, match="--fold is chosen by the nested evaluation"):
        nested.main(base + ["--folds", "3", "--fold", "1"])
    with pytest.raises(ConfigError, match="leave out --no-retrain"):
        nested.main(base + ["--folds", "3", "--no-retrain"])
    assert not any(tmp_path.iterdir())  # refused before anything was written
    assert probe_study.main([]) == 2
    assert "python -m tuning.search --model musicnn --tuner grid" in capsys.readouterr().err
