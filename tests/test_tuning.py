"""tuning: the search space, a tiny real search, resume after a kill, chief + two workers.

Everything runs on gtzan_tfds/synthetic_small (20/10/10 songs of 9 s) with 1 s windows every
3 s (60/30/30 windows), an LSTM of 4-8 units and 1-2 epochs per trial, so a trial takes a few
seconds.  The resume and distributed tests run the real CLI in subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import DatasetConfig, PipelineConfig, TrainConfig
from core.errors import ConfigError
from tuning.search_space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]
DATASET = "synthetic_small"


# --------------------------------------------------------------------------------------------
# fixtures
def search_args(data_dir, directory, *extra, max_trials=2) -> list[str]:
    """Flags of a tiny search: lstm on mfcc, 1 s windows every 3 s, a few units, 1 epoch."""
    return [
        "--model", "lstm", "--transform", "mfcc",
        "--dataset-config", DATASET, "--data-dir", str(data_dir),
        "--window-seconds", "1.0", "--step-seconds", "3.0", "--sample-rate", "22050",
        "--epochs", "1", "--max-trials", str(max_trials),
        "--choices", "units=4,8", "--fix", "layers=1", "--fix", "dense_units=0",
        "--choices", "n_fft=512,1024", "--choices", "n_mels=32,40", "--choices", "n_mfcc=8,13",
        "--directory", str(directory), "--project-name", "p", "--verbose", "0",
        *extra,
    ]


def read_events(project: Path) -> list[dict]:
    path = project / "trial_events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trial_files(project: Path) -> dict[str, dict]:
    out = {}
    for f in sorted(project.glob("trial_*/trial.json")):
        try:
            state = json.loads(f.read_text())
        except ValueError:  # being written (not atomically by keras_tuner itself)
            continue
        out[state["trial_id"]] = state
    return out


def completed(project: Path) -> dict[str, float]:
    return {tid: s["score"] for tid, s in trial_files(project).items() if s["status"] == "COMPLETED"}


def plain_env() -> dict:
    """This environment without keras_tuner's distributed variables (a standalone search)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}


def run_cli(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuning.search", *args], cwd=ROOT,
                          env=plain_env(), capture_output=True, text=True, **kw)


# --------------------------------------------------------------------------------------------
# the search space (no training)
def test_space_covers_model_training_and_pipeline():
    cnn = SearchSpace.for_approach("cnn2d", "mel")
    for name in ("blocks", "filters", "kernel_size", "dense_units", "dropout",
                 "learning_rate", "optimizer", "batch_size",
                 "window_seconds", "sample_rate", "n_fft", "hop_length", "n_mels"):
        assert name in cnn.entries, name
    assert "n_mfcc" not in cnn.entries and "units" not in cnn.entries
    lstm = SearchSpace.for_approach("lstm", "mfcc")
    for name in ("units", "layers", "bidirectional", "n_mels", "n_mfcc"):
        assert name in lstm.entries, name
    raw = SearchSpace.for_approach("cnn1d", "raw")
    assert {"front_kernel", "front_stride"} <= set(raw.entries)
    assert not {"n_fft", "hop_length", "n_mels"} & set(raw.entries)
    assert "front_kernel" not in SearchSpace.for_approach("cnn1d", "mfcc").entries
    assert set(SearchSpace.for_approach("cnn2d", "mel", tune="pipeline").entries) == {
        "window_seconds", "sample_rate", "n_fft", "hop_length", "n_mels",
        "random_offsets", "gain_db", "mixup_alpha", "time_masks", "freq_masks"}


def test_space_overrides_and_errors():
    space = SearchSpace.for_approach("lstm", "mfcc", fixed={"units": 16}, choices={"n_fft": [512, 1024]})
    assert space.spec("units") == {"type": "Fixed", "value": 16}
    assert space.spec("n_fft") == {"type": "Choice", "values": [512, 1024]}
    assert space.hp.get("n_fft") == 512  # a keras_tuner.HyperParameters, defaults set
    mixed = SearchSpace.for_approach("lstm", "mfcc", choices={"dropout": [0, 0.2]})
    assert mixed.spec("dropout") == {"type": "Choice", "values": [0.0, 0.2]}
    with pytest.raises(ConfigError, match="units=None: a pinned value must be"):
        SearchSpace.for_approach("lstm", "mfcc", fixed={"units": None})
    with pytest.raises(ConfigError, match="not a hyperparameter of lstm"):
        SearchSpace.for_approach("lstm", "mfcc", fixed={"filters": 8})
    svc = SearchSpace.for_approach("svc", "mfcc")  # scikit-learn: tests/test_tuning_sklearn.py
    assert "C" in svc.entries and "learning_rate" not in svc.entries


def test_trial_values_map_onto_the_configs():
    space = SearchSpace.for_approach("lstm", "mfcc")
    base = PipelineConfig(dataset=DatasetConfig(name="synthetic"))
    values = {"window_seconds": 1.5, "sample_rate": 16000, "n_fft": 1024, "hop_length": 256,
              "n_mels": 64, "n_mfcc": 13, "learning_rate": 3e-4, "optimizer": "rmsprop",
              "batch_size": 16, "units": 32, "bidirectional": True, "tuner/epochs": 4}
    cfg, train = space.configs(values, base, TrainConfig(epochs=7, hparams={"dropout": 0.1}))
    assert cfg.window.window_seconds == 1.5 and cfg.window.step_seconds == 1.5  # ratio kept
    assert cfg.window.sample_rate == 16000 and cfg.batch_size == 16
    t = cfg.transform
    assert (t.name, t.n_fft, t.hop_length, t.n_mels, t.n_mfcc) == ("mfcc", 1024, 256, 64, 13)
    assert train.model == "lstm" and train.epochs == 7
    assert (train.learning_rate, train.optimizer) == (3e-4, "rmsprop")
    assert train.hparams == {"dropout": 0.1, "units": 32, "bidirectional": True}
    cfg.validate()


def test_invalid_combinations_are_never_sampled():
    """n_mels > n_fft/2+1 and hop > n_fft exist in this space; the oracle never proposes them."""
    import keras_tuner

    from tuning.tuners import RandomOracle, ResumableOracleMixin

    space = SearchSpace.for_approach("lstm", "mfcc", choices={
        "n_fft": [256, 2048], "n_mels": [128, 200], "hop_length": [128, 512]})
    base, base_train = PipelineConfig(), TrainConfig(model="lstm")
    assert not space.is_valid({"n_fft": 256, "n_mels": 200}, base, base_train)
    assert not space.is_valid({"n_fft": 256, "hop_length": 512}, base, base_train)
    valid, total = space.count_valid(base, base_train)
    assert 0 < valid < total
    oracle = RandomOracle(objective="val_accuracy", max_trials=100, hyperparameters=space.hp, seed=3)
    oracle.values_filter = lambda v: space.is_valid(v, base, base_train)
    responses = [oracle.populate_space(str(i)) for i in range(40)]
    draws = [r["values"] for r in responses]
    assert all(r["status"] == "RUNNING" for r in responses)
    assert all(space.is_valid(d, base, base_train) for d in draws)
    assert {d["n_fft"] for d in draws} == {256, 2048}  # both still sampled

    # A proposal outside the valid region (as a Bayesian optimum may be) is replaced.
    invalid = {**draws[0], "n_fft": 256, "n_mels": 200}

    class Proposing(keras_tuner.oracles.RandomSearchOracle):
        def populate_space(self, trial_id):
            return {"status": "RUNNING", "values": dict(invalid, **{"tuner/epochs": 2})}

    class Filtered(ResumableOracleMixin, Proposing):
        pass

    filtered = Filtered(objective="val_accuracy", max_trials=10, hyperparameters=space.hp, seed=3)
    filtered.values_filter = oracle.values_filter
    response = filtered.populate_space("7")
    assert response["status"] == "RUNNING" and response["values"]["tuner/epochs"] == 2
    assert space.is_valid(response["values"], base, base_train)


def test_no_valid_combination_is_a_clear_error():
    from tuning.search import main

    with pytest.raises(ConfigError, match="no valid combination"):
        main(["--model", "lstm", "--transform", "mel", "--choices", "n_fft=256",
              "--choices", "n_mels=200,300", "--show-space"])


def test_default_approach_is_the_best_keras_row_of_the_compare_report(tmp_path):
    from tuning.search import best_of_compare_report

    csv = tmp_path / "results.csv"
    csv.write_text(
        "approach,transform,model,window_accuracy,song_accuracy\n"
        "svc on mfcc,mfcc,svc,0.9,0.95\n"           # scikit-learn: not searchable
        "cnn2d on mel,mel,cnn2d,0.7,0.8\n"
        "lstm on mfcc,mfcc,lstm,0.75,0.7\n"
    )
    assert best_of_compare_report(csv) == ("lstm", "mfcc")
    assert best_of_compare_report(csv, objective="val_song_accuracy") == ("cnn2d", "mel")
    assert best_of_compare_report(csv, transform="mel") == ("cnn2d", "mel")
    assert best_of_compare_report(tmp_path / "missing.csv") is None


def test_explicit_flags_pin_hyperparameters(tmp_path):
    from tuning.search import build_parser, make_space, resolve_approach

    args = build_parser().parse_args(
        ["--sample-rate", "16000", "--batch-size", "8", "--hparam", "units=12",
         "--compare-results", str(tmp_path / "none.csv")])
    model, transform, _ = resolve_approach(args)
    assert (model, transform) == ("cnn2d", "mel")  # no report: the default
    args = build_parser().parse_args(["--model", "lstm", "--transform", "mfcc",
                                      "--sample-rate", "16000", "--hparam", "units=12"])
    space = make_space(args, "lstm", "mfcc")
    assert space.spec("sample_rate") == {"type": "Fixed", "value": 16000}
    assert space.spec("units") == {"type": "Fixed", "value": 12}
    assert space.spec("n_fft")["type"] == "Choice"


# --------------------------------------------------------------------------------------------
# a tiny real search, in process
def test_tiny_search_song_objective_retrains_the_best(small_data_dir, tmp_path, monkeypatch):
    """Random search on song-level validation accuracy: every trial streams its own pipeline,
    the summary lists the best trials, the best configuration is retrained into a run dir that
    pipeline.evaluate accepts."""
    import tensorflow as tf

    import tuning.hypermodel as hypermodel_mod
    from tuning.search import main

    made = []
    real_make_dataset = hypermodel_mod.make_dataset

    def recording_make_dataset(cfg, split, **kw):
        ds = real_make_dataset(cfg, split, **kw)
        made.append((cfg, split, ds))
        return ds

    monkeypatch.setattr(hypermodel_mod, "make_dataset", recording_make_dataset)
    assert main(search_args(small_data_dir, tmp_path, "--objective", "val_song_accuracy",
                            "--tuner", "random", max_trials=3)) == 0
    project = tmp_path / "p"
    summary = json.loads((project / "summary.json").read_text())
    assert summary["trial_counts"] == {"COMPLETED": 3}
    scores = [t["score"] for t in summary["best_trials"]]
    assert scores == sorted(scores, reverse=True)
    for t in summary["best_trials"]:
        assert t["score"] == pytest.approx(t["metrics"]["val_song_accuracy"])
        assert 0 <= t["metrics"]["val_accuracy"] <= 1
    assert "val_song_accuracy (objective)" in (project / "summary.md").read_text()

    # Each trial built its own train and validation pipelines from its own values; all
    # streamed tf.data datasets.
    space = SearchSpace.for_approach("lstm", "mfcc", fixed={"window_seconds": 1.0, "sample_rate": 22050})
    trials = {t["trial_id"]: t["values"] for t in summary["best_trials"]}
    trial_cfgs = [cfg for cfg, split, _ in made[: 2 * len(trials)]]
    assert all(isinstance(ds, tf.data.Dataset) for _, _, ds in made)
    for tid, values in trials.items():
        assert sum(c.transform == space.configs(values, c, TrainConfig())[0].transform
                   for c in trial_cfgs) >= 2, f"trial {tid} did not get its own pipeline"

    best = summary["best_trials"][0]
    run = Path(summary["best_run"]["run_dir"])
    assert run == project / "best_run"
    assert (run / "model.keras").exists() and (run / "metrics.json").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["pipeline"]["transform"]["n_fft"] == best["values"]["n_fft"]
    assert config["train"]["hparams"]["units"] == best["values"]["units"]
    assert summary["best_run"]["test"]["num_songs"] == 10

    from pipeline.experiments.run_evaluation import evaluate_split
    from pipeline.experiments.predictor import Predictor

    again = evaluate_split(Predictor.from_run(run), "test", verbose=False)
    assert again["song_accuracy_mean_vote"] == pytest.approx(summary["best_run"]["test"]["song_accuracy_mean_vote"])


def test_hyperband_continues_trials_with_more_epochs(small_data_dir, tmp_path):
    from tuning.search import main

    # factor 2, at most 2 epochs: one bracket of two 1-epoch trials, the better continued to 2
    assert main(search_args(small_data_dir, tmp_path, "--tuner", "hyperband", "--epochs", "2",
                            "--hyperband-factor", "2", "--no-retrain", max_trials=3)) == 0
    trials = trial_files(tmp_path / "p")
    assert len(trials) == 3 and all(t["status"] == "COMPLETED" for t in trials.values())
    epochs = [t["hyperparameters"]["values"]["tuner/epochs"] for t in trials.values()]
    continued = [t for t in trials.values() if "tuner/trial_id" in t["hyperparameters"]["values"]]
    assert continued and max(epochs) > min(epochs)


def test_bayesian_search_samples_valid_new_values(small_data_dir, tmp_path):
    """After one random point the Gaussian process proposes; proposals outside the valid
    region or already tried are replaced by a valid random draw."""
    from tuning.search import main

    assert main(search_args(small_data_dir, tmp_path, "--tuner", "bayesian",
                            "--num-initial-points", "1", "--no-retrain", max_trials=3)) == 0
    trials = trial_files(tmp_path / "p")
    assert sorted(trials) == ["0", "1", "2"]
    assert all(t["status"] == "COMPLETED" for t in trials.values())
    space = SearchSpace.for_approach("lstm", "mfcc")
    base = PipelineConfig(dataset=DatasetConfig(name=DATASET, data_dir=small_data_dir))
    values = [t["hyperparameters"]["values"] for t in trials.values()]
    assert all(space.is_valid(v, base, TrainConfig(model="lstm")) for v in values)
    assert len({json.dumps(v, sort_keys=True) for v in values}) == 3


def test_resume_repairs_what_a_kill_between_two_writes_leaves(small_data_dir, tmp_path, capsys):
    """The two windows keras_tuner's own reload gets wrong, made by hand:
    trial 1 finished (trial.json COMPLETED) but the oracle was killed before saving that;
    trial 2's trial.json was written but the oracle never recorded creating it."""
    from tuning.search import main

    args = search_args(small_data_dir, tmp_path, "--no-retrain", max_trials=2)
    assert main(args) == 0
    project = tmp_path / "p"
    before = completed(project)
    assert set(before) == {"0", "1"}

    oracle_file = project / "oracle.json"
    state = json.loads(oracle_file.read_text())
    state["ongoing_trials"] = {"tuner0": "1"}
    state["end_order"] = [t for t in state["end_order"] if t != "1"]
    oracle_file.write_text(json.dumps(state))
    orphan = json.loads((project / "trial_1" / "trial.json").read_text())
    orphan.update(trial_id="2", status="RUNNING", score=None)
    (project / "trial_2").mkdir()
    (project / "trial_2" / "trial.json").write_text(json.dumps(orphan))
    (project / "tuner0.json").unlink()  # keras_tuner alone would not even reload the oracle

    args = search_args(small_data_dir, tmp_path, "--no-retrain", max_trials=3)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trial 1: already COMPLETED, kept" in out and "trial 2: never recorded" in out
    after = completed(project)
    assert set(after) == {"0", "1", "2"}
    assert {k: after[k] for k in before} == before
    begins = [e["trial_id"] for e in read_events(project) if e["event"] == "begin"]
    assert sorted(begins) == ["0", "1", "2"]  # nothing ran twice


def test_an_end_a_kill_kept_from_the_log_is_recovered_on_resume(small_data_dir, tmp_path):
    """Killed after the oracle ended trial 0 but before its "end" line was appended: the resume
    logs it (``recovered``), so the log still has one end per finished trial."""
    from tuning.search import main

    assert main(search_args(small_data_dir, tmp_path, "--no-retrain", max_trials=1)) == 0
    project = tmp_path / "p"
    log = project / "trial_events.jsonl"
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines()
                           if json.loads(line)["event"] != "end"))
    assert main(search_args(small_data_dir, tmp_path, "--no-retrain", max_trials=2)) == 0
    ends = [e for e in read_events(project) if e["event"] == "end"]
    assert sorted(e["trial_id"] for e in ends) == ["0", "1"]
    assert [e["trial_id"] for e in ends if e.get("recovered")] == ["0"]
    begins = [e["trial_id"] for e in read_events(project) if e["event"] == "begin"]
    assert sorted(begins) == ["0", "1"]  # trial 0 was not run again


def test_changed_settings_refuse_to_resume(small_data_dir, tmp_path):
    from tuning.search import main

    assert main(search_args(small_data_dir, tmp_path, "--no-retrain", max_trials=1)) == 0
    with pytest.raises(ConfigError, match="other settings"):
        main(search_args(small_data_dir, tmp_path, "--no-retrain", "--objective", "val_song_accuracy",
                         max_trials=1))


# --------------------------------------------------------------------------------------------
# the real CLI, killed and resumed; chief and workers
@pytest.mark.timeout(600)
def test_search_killed_after_a_trial_resumes_without_losing_or_repeating(small_data_dir, tmp_path,
                                                                         kill_when):
    args = search_args(small_data_dir, tmp_path, "--epochs", "2", "--no-retrain", max_trials=4)
    project = tmp_path / "p"
    proc = subprocess.Popen([sys.executable, "-m", "tuning.search", *args], cwd=ROOT,
                            env=plain_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, lambda: completed(project))
    finished_before = completed(project)
    assert 1 <= len(finished_before) < 4

    result = run_cli(args, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print("killed after", sorted(finished_before), [l for l in result.stdout.splitlines() if "resume:" in l])
    finished = completed(project)
    assert sorted(finished) == ["0", "1", "2", "3"]  # max_trials, ids unique
    assert {k: finished[k] for k in finished_before} == finished_before
    ends = [e["trial_id"] for e in read_events(project) if e["event"] == "end"]
    assert sorted(ends) == ["0", "1", "2", "3"]  # each trial finished exactly once
    summary = json.loads((project / "summary.json").read_text())
    assert summary["trial_counts"] == {"COMPLETED": 4}

    # A finished search re-run runs no trial.
    events_before = len(read_events(project))
    result = run_cli(args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(read_events(project)) == events_before
    assert completed(project) == finished


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_chief_and_two_workers_share_one_search(small_data_dir, tmp_path):
    from tuning.distributed import CHIEF, free_port, launch_local

    args = search_args(small_data_dir, tmp_path, "--epochs", "2", max_trials=6)
    project = tmp_path / "p"
    start = time.monotonic()
    codes = launch_local(args, workers=2, port=free_port(), log_dir=tmp_path / "logs", timeout=800)
    elapsed = time.monotonic() - start
    logs = {p.stem: p.read_text() for p in (tmp_path / "logs").glob("*.log")}
    assert codes == {CHIEF: 0, "tuner0": 0, "tuner1": 0}, {k: v[-2000:] for k, v in logs.items()}

    events = read_events(project)
    begins = [e for e in events if e["event"] == "begin"]
    ends = [e for e in events if e["event"] == "end"]
    assert sorted(e["trial_id"] for e in begins) == [str(i) for i in range(6)]  # each once
    assert sorted(e["trial_id"] for e in ends) == [str(i) for i in range(6)]
    assert all(e["status"] == "COMPLETED" for e in ends)
    runners = {e["tuner_id"] for e in begins}
    assert runners <= {"tuner0", "tuner1"}  # the chief runs no trial
    assert len({e["pid"] for e in begins}) == len(runners)
    print(f"distributed search: {elapsed:.0f} s, trials per worker:",
          {t: sum(e["tuner_id"] == t for e in begins) for t in sorted(runners)})
    assert runners == {"tuner0", "tuner1"}, "one worker ran every trial"

    # Only the chief summarised and retrained.
    summary = json.loads((project / "summary.json").read_text())
    assert summary["trial_counts"] == {"COMPLETED": 6}
    assert (project / "best_run" / "model.keras").exists()
    assert "retraining trial" in logs[CHIEF]
    assert all("retraining" not in logs[w] for w in ("tuner0", "tuner1"))
