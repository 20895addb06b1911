"""Parameter sweeps, seed repeats and parameter effects.

- ``pipeline.sweep`` on synthetic_small: a 2 x 2 product grid (+ one invalid value) k-fold by
  song; the report's accuracies, intervals, resolution columns and plots; invalid settings
  skipped with their reason; a re-run reuses finished runs, a lost fold is retrained alone.
- the sweep plan on configs only: what is skipped and why, what is one run.
- ``--repeats``: combined figures and the paired test on hand-made summaries; a 3-fold x
  2-repeat Keras run (1 epoch) with a seed per repeat; the scikit-learn ones run once.
- ``parameter_effects`` and the tuner's ``trial_effects`` on hand-made rows.
"""

from __future__ import annotations

import csv
import json

import pytest

from core.config import PipelineConfig, TrainConfig
from core.errors import ConfigError
from pipeline import sweep as sweep_cli
from pipeline import train as train_cli
from pipeline.experiments import sweep
from pipeline.experiments.comparison_runs import make_job
from pipeline.experiments.crossval import paired_comparison as mcnemar
from pipeline.experiments.crossval import wilson_interval
from pipeline.experiments.parameter_effects import effects_table, parameter_effects
from pipeline.experiments.repeats import combine_repeats, paired_comparison

SMALL = ["--dataset-config", "synthetic_small", "--verbose", "0"]
RF = ["--models", "rf", "--transforms", "mfcc", "--hparam", "n_estimators=20", "--folds", "3",
      "--n-mfcc", "13"]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


# --- the sweep command, end to end ------------------------------------------------------------
def test_sweep_product_grid_report_skips_invalid_and_reuses_runs(small_data_dir, tmp_path):
    report = tmp_path / "sweep"
    argv = [*SMALL, "--data-dir", small_data_dir, *RF, "--report-dir", str(report),
            "--sweep", "n_mels=8,32", "--sweep", "hop_length=512,1024", "--repeats", "2"]
    assert sweep_cli.main(argv) == 0
    rows = _rows(report / "sweep.csv")
    assert len(rows) == 4  # the 2 x 2 settings
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert {r["n_mels"] for r in skipped} == {"8"}  # n_mfcc 13 > 8 mel bands
    assert all("n_mfcc (13) must not exceed n_mels (8)" in r["reason"] for r in skipped)
    done = [r for r in rows if r["status"] == "ok"]
    assert len(done) == 2
    for r in done:
        assert float(r["ms_per_frame"]) == pytest.approx(1000 * int(r["hop_length"]) / 22050,
                                                         abs=1e-3)
        assert float(r["hz_per_bin"]) == pytest.approx(22050 / 2048, abs=1e-3)
        assert r["mel_bands"] == r["n_mels"] and r["mfcc"] == "13"
        cv = json.loads((tmp_path / r["run_dir"] / "cv.json").read_text())
        assert cv["num_songs"] == 40 and cv["folds"] == 3
        assert float(r["song_accuracy"]) == pytest.approx(cv["song_accuracy_mean_vote"], abs=1e-4)
        correct = round(cv["song_accuracy_mean_vote"] * 40)
        assert float(r["ci_low"]) == pytest.approx(wilson_interval(correct, 40)[0], abs=1e-4)
        assert r["repeats"] == "1"  # rf barely depends on the seed: --repeats 2 runs it once
        assert not (tmp_path / r["run_dir"] / "repeat_1").exists()
        assert r["p_vs_best"] == "" or 0 < float(r["p_vs_best"]) <= 1
    text = (report / "sweep.md").read_text()
    assert "skipped: n_mfcc (13) must not exceed n_mels (8)" in text
    assert "not repeated" in text and "Which parameters moved" in text
    assert (report / "sweep_hop_length.png").stat().st_size > 0
    assert not (report / "sweep_n_mels.png").exists()  # one n_mels ran: nothing to plot

    # a re-run reuses every finished run; a fold lost to a kill is trained again alone
    models = sorted(report.glob("runs/*/*/fold_*/model.joblib"))
    assert len(models) == 2 * 3
    stamps = {p: p.stat().st_mtime_ns for p in models}
    lost = models[0]
    lost.unlink()
    assert sweep_cli.main(argv) == 0
    for path, stamp in stamps.items():
        assert (path.stat().st_mtime_ns == stamp) == (path != lost), path
    again = _rows(report / "sweep.csv")
    for r in (*rows, *again):
        r.pop("training_seconds")  # the retrained fold took its own time
    assert again == rows

    # --report-only: the finished settings reported, a new one listed as not run, none trained
    wider = [*argv[:-4], "--sweep", "hop_length=512,1024,2048", "--report-only"]
    assert sweep_cli.main(wider) == 0
    new = [r for r in _rows(report / "sweep.csv") if r["hop_length"] == "2048"]
    assert [r["reason"] for r in new if r["n_mels"] == "32"] == [sweep.NOT_RUN]
    assert not list(report.glob("runs/*/*hop_length-2048"))


# --- the plan, on configs only ----------------------------------------------------------------
def _job(transform="mel", model="cnn2d", **transform_fields):
    cfg = PipelineConfig()
    cfg.dataset.folds = 5
    for k, v in transform_fields.items():
        setattr(cfg.transform, k, v)
    return make_job(transform, model, cfg, TrainConfig(), all_folds=True)


@pytest.mark.parametrize("axes,reason", [
    ({"n_mels": [128, 2000]}, "n_mels (2000) must not exceed n_fft/2+1 (1025)"),
    ({"hop_length": [512, 4096]}, "hop_length (4096) is longer than the analysis window"),
    ({"n_fft": [2048, 131072]}, "shorter than n_fft (131072)"),
    ({"window_seconds": [3.0, -1.0]}, "window_seconds must be positive"),
])
def test_invalid_settings_are_planned_as_skipped_with_their_reason(axes, reason):
    cells = sweep.plan([_job()], axes, "product")
    assert [c.skipped is None for c in cells] == [True, False]
    assert reason in cells[1].skipped


def test_parameters_an_approach_does_not_use_are_not_varied_for_it():
    jobs = [_job("mel", "cnn2d"), _job("mfcc", "lstm")]
    cells = sweep.plan(jobs, {"n_mfcc": [13, 20, 40], "hop_length": [256, 512]}, "product")
    by = {}
    for c in cells:
        by.setdefault(c.approach, []).append(c.key)
    assert by["cnn2d on mel"] == ["hop_length-256", "hop_length-512"]  # n_mfcc: one run each
    assert len(by["lstm on mfcc"]) == 6
    one = sweep.plan(jobs[:1], {"n_mels": [64, 128], "hop_length": [256, 512]}, "one-at-a-time")
    assert [c.setting for c in one] == [{"n_mels": 64, "hop_length": 512},
                                        {"n_mels": 128, "hop_length": 512},
                                        {"n_mels": 128, "hop_length": 256}]


def test_resolution_speaks_in_ms_and_hz():
    cell = sweep.plan([_job("mfcc", "lstm")], {"hop_length": [256]}, "product")[0]
    res = sweep.resolution(cell.job.cfg)
    assert res["ms_per_frame"] == pytest.approx(11.61, abs=0.01)
    assert res["window_ms"] == pytest.approx(92.88, abs=0.01)
    assert res["hz_per_bin"] == pytest.approx(10.77, abs=0.01)
    assert (res["mel_bands"], res["mfcc"], res["frames"]) == (128, 20, 1 + 66150 // 256)


@pytest.mark.parametrize("items,message", [
    (["n_mels"], "NAME=V1,V2"), (["colour=1,2"], "not a sweepable parameter"),
    (["n_mels=1,x"], "not a int"), (["n_mels=1", "n-mels=2"], "given twice"), ([], "at least one"),
])
def test_bad_sweep_axes_are_user_errors(items, message):
    with pytest.raises(ConfigError, match=message):
        sweep.parse_axes(items)


# --- seed repeats -----------------------------------------------------------------------------
def _cv(decisions, fold_acc=(0.5, 0.5)):
    """A cross-validation summary of (song_id, right?) decisions."""
    songs = [{"song_id": s, "label": "a", "predicted": "a" if ok else "b"} for s, ok in decisions]
    acc = sum(ok for _, ok in decisions) / len(decisions)
    return {"songs": songs, "num_songs": len(songs), "song_accuracy_mean_vote": acc,
            "song_accuracy_interval": [0, 1], "fold_song_accuracies": list(fold_acc),
            "song_accuracy_majority_vote": acc, "window_accuracy": acc, "song_macro_f1": acc,
            "confusion_matrix_song": [[1, 0], [0, 1]], "training_seconds": 2.0}


def test_repeats_combine_into_mean_and_seed_spread():
    runs = [_cv([("x", True), ("y", True), ("z", False), ("w", False)], (0.5, 0.5)),
            _cv([("x", True), ("y", False), ("z", False), ("w", False)], (0.5, 0.0))]
    combined = combine_repeats(runs, [42, 43], requested=2)
    assert combined["song_accuracy_mean_vote"] == pytest.approx(0.375)
    assert combined["seed_song_accuracy_std"] == pytest.approx(0.1767767, abs=1e-6)
    assert combined["fold_song_accuracies"] == [0.5, 0.25]
    assert combined["song_accuracy_interval"] == pytest.approx(wilson_interval(1.5, 4))
    assert len(combined["songs"]) == 8 and combined["training_seconds"] == 4.0
    single = combine_repeats(runs[:1], [42], requested=3)
    assert single["repeats_skipped"] and single["song_accuracy_mean_vote"] == 0.5


def test_the_paired_test_uses_every_repeat_and_is_mcnemar_with_one():
    a = _cv([("x", True), ("y", True), ("z", False), ("w", True)])
    b = _cv([("x", False), ("y", True), ("z", True), ("w", False)])
    assert paired_comparison(a, b) == mcnemar(a, b)
    a2 = combine_repeats([a, _cv([("x", False), ("y", True), ("z", False), ("w", True)])],
                         [42, 43])
    paired = paired_comparison(a2, b)  # x: 1/2 right against 0/1: still a's song
    assert (paired["only_a"], paired["only_b"]) == (2, 1)
    with pytest.raises(ValueError, match="different songs"):
        paired_comparison(a, _cv([("q", True)]))


def test_train_folds_with_repeats_trains_each_fold_with_each_seed(small_data_dir, tmp_path):
    root = tmp_path / "cv"
    argv = [*SMALL, "--data-dir", small_data_dir, "--run-dir", str(root), "--transform", "mfcc",
            "--model", "cnn1d", "--epochs", "1", "--window-seconds", "3", "--step-seconds", "3",
            "--folds", "3", "--repeats", "2", "--hparam", "filters=4"]
    assert train_cli.main(argv) == 0
    combined = json.loads((root / "cv_repeats.json").read_text())
    assert combined["repeats"] == 2 and combined["seeds"] == [42, 43]
    assert len(combined["songs"]) == 80  # 40 songs x 2 repeats
    per_repeat = [json.loads((d / "cv.json").read_text())["song_accuracy_mean_vote"]
                  for d in (root, root / "repeat_1")]
    assert combined["song_accuracy_mean_vote"] == pytest.approx(sum(per_repeat) / 2)
    for fold in range(3):
        for d, seed in ((root, 42), (root / "repeat_1", 43)):
            config = json.loads((d / f"fold_{fold}" / "config.json").read_text())
            assert config["pipeline"]["seed"] == seed
            assert config["pipeline"]["dataset"]["fold"] == fold
    # compare's table (cv_report) shows the seeds beside the folds
    from pipeline.experiments.crossval_report import write_cv_report

    table = write_cv_report([(combined, root)], tmp_path / "report", "synthetic_small")
    assert (f"2 seeds: {combined['song_accuracy_mean_vote']:.1%} +- "
            f"{combined['seed_song_accuracy_std']:.1%}") in table
    assert "Seeds: each fold trained with that many seeds" in table


def test_repeats_need_every_fold():
    with pytest.raises(ConfigError, match="--folds"):
        train_cli.main([*SMALL, "--repeats", "2"])


# --- parameter effects ------------------------------------------------------------------------
def test_parameter_effects_are_marginal_means():
    rows = [({"hop": h, "mels": m}, 0.5 + 0.1 * (h == 256) + 0.01 * (m == 64))
            for h in (256, 512, 1024) for m in (64, 128)]
    effects = parameter_effects(rows + [({"hop": 256}, None)])
    assert [e["parameter"] for e in effects] == ["hop", "mels"]
    hop = effects[0]
    assert hop["effect"] == pytest.approx(0.1) and hop["best_value"] == 256
    assert [v["count"] for v in hop["values"]] == [2, 2, 2]
    assert hop["spearman"] < 0  # larger hops, lower scores
    assert effects[1]["spearman"] is None  # two values: no rank correlation
    assert "| hop | 10.0 |" in effects_table(effects)


def test_tuner_summary_says_which_parameters_moved_the_objective():
    from tuning.trial_effects import effects_markdown

    records = [{"values": {"n_mels": m, "lr": 1e-3}, "score": s}
               for m, s in ((64, 0.6), (128, 0.8), (64, 0.5))]
    lines = "\n".join(effects_markdown(records, ["n_mels"], "val_song_accuracy"))
    assert "| n_mels | 25.0 |" in lines and "lr" not in lines
