"""The approaches on the pretrained musicnn networks: ``musicnn`` (frozen features + probe) and
``musicnn_finetune`` (new head, top blocks fine-tuned).

- registry entries, hyperparameters routed to the callables that take them;
- the pipeline the approaches imply (no flag needed) and the flags they refuse;
- ``pipeline.train --model musicnn`` with no pipeline flag, end to end with evaluate and
  ``predict --json``, and ``musicnn_finetune`` likewise;
- the fine-tune freezes and unfreezes the right layers, and the network's BatchNorm stays in
  inference mode (frozen weights and moving statistics unchanged by ``fit``);
- a missing ``musicnn`` wheel is one clear error; compare and tuning take the approaches.

Tests that need the checkpoints skip without the ``musicnn`` wheel.
"""

from __future__ import annotations

import importlib.util
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import tensorflow as tf  # noqa: E402

from core.errors import ConfigError, WeightsNotFoundError  # noqa: E402
from models import musicnn_checkpoint  # noqa: E402
from models.musicnn_finetune import BASE_NAME, unfrozen_blocks  # noqa: E402
from models.registry import (  # noqa: E402
    APPROACHES, build_model, compile_model, featurizer, get_approach, run_pretrain,
)
from pipeline import compare, evaluate, predict, train  # noqa: E402
from pipeline.cli import flags  # noqa: E402
from pipeline.experiments import comparison_runs  # noqa: E402

needs_wheel = pytest.mark.skipif(
    not musicnn_checkpoint.is_installed(),
    reason=f"musicnn wheel not installed ({musicnn_checkpoint.INSTALL_HINT})",
)
SMALL = ["--dataset-config", "synthetic_small", "--verbose", "0"]


# --- registry ---------------------------------------------------------------------------------
def test_registry_entries():
    probe, tune = get_approach("musicnn"), get_approach("musicnn_finetune")
    assert probe.kind == "sklearn" and tune.kind == "keras"
    for a in (probe, tune):
        assert a.transforms == ("musicnn",) and a.needs_weights
        assert a.requires == {"transform.name": "musicnn", "window.sample_rate": 16000}
        assert a.presets["window.window_seconds"] == a.presets["window.step_seconds"] == 2.976
    assert probe.defaults == {"probe": "logistic", "C": 1.0, "weights": "msd", "layer": "max_pool"}
    assert set(tune.defaults) == {"weights", "layer", "dense_units", "dropout",
                                  "head_learning_rate", "unfreeze"}
    assert tune.presets["train.learning_rate"] == 1e-4 and tune.pretrain is not None
    assert not any(a.needs_weights or a.requires for n, a in APPROACHES.items()
                   if not n.startswith("musicnn"))


def test_hyperparameters_reach_the_callables_that_take_them():
    probe = build_model("musicnn", None, 10, seed=3, C=0.5, layer="penultimate")
    assert probe[-1].C == 0.5 and probe[-1].random_state == 3  # layer is not the probe's
    assert featurizer("musicnn", {"layer": "penultimate", "C": 0.5}).keywords == {
        "weights": "msd", "layer": "penultimate"}
    assert featurizer("svc", {"C": 2.0}) is APPROACHES["svc"].featurize
    with pytest.raises(ConfigError, match="unknown hyperparameter"):
        featurizer("musicnn", {"blocks": 2})
    with pytest.raises(ConfigError, match="unknown probe"):
        build_model("musicnn", None, 10, probe="tree")


# --- what the approach implies ---------------------------------------------------------------
def _configs(*argv):
    args = flags.apply_approach_settings(train.build_parser().parse_args(list(argv)))
    return flags.pipeline_config_from_args(args).validate(), flags.train_config_from_args(args)


def test_the_approach_sets_its_pipeline_where_no_flag_was_given():
    cfg, run = _configs("--model", "musicnn")
    assert (cfg.transform.name, cfg.window.sample_rate) == ("musicnn", 16000)
    assert cfg.window.window_length == 47616 and cfg.window.step_length == 47616
    assert run.learning_rate == 1e-3  # the sklearn approach has no learning-rate preset
    cfg, _ = _configs("--model", "musicnn", "--step-seconds", "1.488", "--transform", "musicnn")
    assert cfg.window.step_length == 23808  # presets give way to flags
    _, run = _configs("--model", "musicnn_finetune")
    assert run.learning_rate == 1e-4
    _, run = _configs("--model", "musicnn_finetune", "--learning-rate", "3e-4")
    assert run.learning_rate == 3e-4
    cfg, _ = _configs("--model", "cnn2d")
    assert (cfg.transform.name, cfg.window.sample_rate) == ("mel", 22050)  # others: unchanged


@pytest.mark.parametrize("flag,value", [("--transform", "mel"), ("--sample-rate", "22050")])
def test_a_flag_contradicting_the_approach_is_refused(flag, value, tmp_path):
    with pytest.raises(ConfigError, match=f"^{flag} {value} does not fit --model musicnn, which "
                                          f"needs {flag} (musicnn|16000)"):
        train.main(["--model", "musicnn", flag, value, "--run-dir", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


def test_missing_wheel_is_one_clear_error(monkeypatch, tmp_path, small_data_dir):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "musicnn" else find_spec(name, *a))
    with pytest.raises(WeightsNotFoundError, match="pip install --no-deps musicnn==0.1.0$"):
        train.main(["--model", "musicnn", *SMALL, "--data-dir", small_data_dir,
                    "--run-dir", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()
    assert "musicnn" not in comparison_runs.default_models()


# --- end to end -----------------------------------------------------------------------------
@needs_wheel
def test_train_musicnn_with_no_pipeline_flag_then_evaluate_and_predict(
        small_data_dir, tmp_path, capsys):
    run = tmp_path / "musicnn"
    assert train.main(["--model", "musicnn", *SMALL, "--data-dir", small_data_dir,
                       "--run-dir", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())["pipeline"]
    assert config["transform"]["name"] == "musicnn" and config["window"]["sample_rate"] == 16000
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_songs"] == 10 and metrics["num_windows"] == 30  # 9 s songs: 3 windows
    training = json.loads((run / "training.json").read_text())
    assert training["fitted_on"] == "train+validation"
    assert 0.0 <= training["validation_song_accuracy"] <= 1.0
    capsys.readouterr()
    assert evaluate.main(["--run", str(run), "--quiet"]) == 0
    assert json.loads((run / "metrics.json").read_text()) == metrics

    wav = tmp_path / "tone.wav"  # 7 s at 44.1 kHz: resampled to 16 kHz, two 2.976 s windows
    t = np.arange(7 * 44100) / 44100
    sf.write(wav, 0.3 * np.sin(2 * np.pi * 440 * t).astype("float32"), 44100)
    capsys.readouterr()
    assert predict.main([str(wav), "--run", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["genre"] in metrics["class_names"] and len(result["window_starts"]) == 2
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


@needs_wheel
def test_train_musicnn_finetune_end_to_end(small_data_dir, tmp_path):
    run = tmp_path / "finetune"
    assert train.main(["--model", "musicnn_finetune", *SMALL, "--data-dir", small_data_dir,
                       "--run-dir", str(run), "--epochs", "1", "--pretrain-epochs", "1"]) == 0
    assert json.loads((run / "metrics.json").read_text())["num_songs"] == 10
    assert json.loads((run / "config.json").read_text())["train"]["learning_rate"] == 1e-4
    loaded = keras.models.load_model(run / "model.keras")  # no custom objects
    assert loaded.get_layer(BASE_NAME).get_layer("midend_3_conv").trainable


# --- the fine-tune's freezing ----------------------------------------------------------------
def _patches(n, seed=0):
    rng = np.random.default_rng(seed)
    return (3.0 * rng.random((n, 187, 96))).astype("float32"), np.arange(n) % 3


def _snapshot(layer):
    return {w.path: w.numpy().copy() for w in layer.weights}


def _changed(before, layer):
    return {path for path, w in _snapshot(layer).items() if not np.array_equal(w, before[path])}


@needs_wheel
def test_finetune_trains_the_head_then_only_the_unfrozen_blocks_with_bn_in_inference(tmp_path):
    x, y = _patches(24)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model = build_model("musicnn_finetune", (187, 96), 3)
    base = model.get_layer(BASE_NAME)
    start = _snapshot(base)
    head = _snapshot(model.get_layer("probabilities"))
    run_pretrain("musicnn_finetune", model, ds, ds, hparams={"unfreeze": 1}, epochs=2, verbose=0)
    assert not _changed(start, base), "the head stage changed the pretrained network"
    assert _changed(head, model.get_layer("probabilities"))
    trainable = {w.path for w in base.trainable_weights}
    assert trainable == {"midend_3_conv/kernel", "midend_3_conv/bias"}  # BatchNorm stays frozen
    compile_model(model, learning_rate=1e-3)
    model.fit(ds, epochs=2, verbose=0)
    assert _changed(start, base) == trainable  # moving statistics of every BatchNorm unchanged
    assert all(layer.rate == 0 for layer in base.layers if isinstance(layer, keras.layers.Dropout))

    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)
    assert {w.path for w in loaded.get_layer(BASE_NAME).trainable_weights} == trainable


@needs_wheel
def test_finetune_with_penultimate_unfreezes_the_backend_first():
    model = build_model("musicnn_finetune", (187, 96), 3, layer="penultimate")
    run_pretrain("musicnn_finetune", model, None, None,
                 hparams={"layer": "penultimate", "unfreeze": 2}, epochs=0)
    trainable = {w.path.split("/")[0] for w in model.get_layer(BASE_NAME).trainable_weights}
    assert trainable == {"backend_dense", "midend_3_conv"}  # not the tag logits: off the path


def test_finetune_refuses_other_inputs_and_depths():
    with pytest.raises(ConfigError, match=r"needs musicnn patches of shape \(187, 96\)"):
        build_model("musicnn_finetune", (130, 128), 10)
    assert unfrozen_blocks("max_pool", 2) == ("midend_3", "midend_2")
    with pytest.raises(ConfigError, match=r"unfreeze must be 0\.\.4"):
        unfrozen_blocks("max_pool", 5)


# --- compare and tuning ---------------------------------------------------------------------
def test_compare_gives_each_approach_its_pipeline_and_refuses_conflicts(capsys):
    args = compare.build_parser().parse_args(["--window-seconds", "1.5"])
    pairs = [("mfcc", "svc"), ("musicnn", "musicnn")]
    jobs = compare.make_jobs(args, pairs, explicit_models=False)  # the default grid
    assert [j.model for j in jobs] == ["svc"] and "musicnn on musicnn left out" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="^musicnn on musicnn: .*47616 samples"):
        compare.make_jobs(args, pairs, explicit_models=True)
    jobs = compare.make_jobs(compare.build_parser().parse_args([]), pairs, explicit_models=True)
    assert [j.cfg.window.sample_rate for j in jobs] == [22050, 16000]
    assert jobs[1].cfg.transform.name == "musicnn" and not jobs[1].all_folds


def test_tuning_searches_the_finetune_on_its_pipeline():
    from tuning import search
    from tuning.search_space import SearchSpace

    args = search.build_parser().parse_args(["--model", "musicnn_finetune"])
    model, transform, _ = search.resolve_approach(args)
    base, base_train = search.base_configs(args, model, transform)
    assert (transform, base.window.sample_rate, base_train.learning_rate) == ("musicnn", 16000, 1e-4)
    space = SearchSpace.for_approach(model, transform)
    assert space.spec("learning_rate") == {"type": "FloatRange", "min_value": 1e-5,
                                           "max_value": 1e-3, "sampling": "log"}
    assert {"unfreeze", "head_learning_rate", "dense_units", "layer"} <= set(space.entries)
    assert space.why_invalid({"unfreeze": 2, "learning_rate": 1e-4}, base, base_train) is None


@needs_wheel
def test_a_tuning_trial_trains_the_finetune_in_two_stages(small_data_dir):
    import keras_tuner

    from tuning import search
    from tuning.hypermodel import TrialHyperModel
    from tuning.search_space import SearchSpace

    args = search.build_parser().parse_args(
        ["--model", "musicnn_finetune", *SMALL, "--data-dir", small_data_dir,
         "--epochs", "1", "--pretrain-epochs", "1"])
    base, base_train = search.base_configs(args, "musicnn_finetune", "musicnn")
    space = SearchSpace.for_approach("musicnn_finetune", "musicnn", fixed={
        "unfreeze": 2, "dense_units": 0, "layer": "max_pool", "weights": "msd"})
    hypermodel = TrialHyperModel(space, base, base_train)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    base_net = model.get_layer(BASE_NAME)
    assert not base_net.trainable_weights  # built frozen: the head trains first
    history = hypermodel.fit(hp, model, epochs=1)
    assert {w.path.split("/")[0] for w in base_net.trainable_weights} == {
        "midend_3_conv", "midend_2_conv"}
    assert {"val_accuracy", "val_song_accuracy"} <= set(history.history)
