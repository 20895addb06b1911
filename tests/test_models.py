"""Tests of the approach registry (models/): shapes, refusals, learning, freezing, baselines.

Small shapes and a few epochs, so the file runs in well under a minute on two CPU cores.
"""

import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from models.registry import (  # noqa: E402
    APPROACHES,
    build_model,
    check_compatible,
    compile_model,
    get_approach,
    pool_features,
)
from core.config import TRANSFORMS  # noqa: E402
from core.errors import ConfigError  # noqa: E402
from pipeline.experiments.seeding import seed_everything  # noqa: E402

# Small stand-ins for the real shapes (raw (66150,), fft (33076,), stft (130, 1025), ...).
SMALL_SHAPES = {"raw": (4096,), "fft": (1025,), "stft": (20, 33), "mel": (20, 16), "mfcc": (20, 8)}
NUM_CLASSES = 3
# The approaches on the pretrained musicnn networks have their own tests (test_musicnn_approaches.py).
KERAS = [name for name, a in APPROACHES.items() if a.kind == "keras" and not a.needs_weights]
SKLEARN = [name for name, a in APPROACHES.items() if a.kind == "sklearn" and not a.needs_weights]
VALID = [(m, t) for m in KERAS for t in APPROACHES[m].transforms]
INVALID = [(m, t) for m, t in itertools.product(APPROACHES, TRANSFORMS)
           if t not in APPROACHES[m].transforms]


def synthetic(shape, n, seed=0):
    """A trivially separable problem with dB-like offsets: each class lights up its own third
    of the feature axis (2-D) or has its own tone frequency (1-D raw audio)."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % NUM_CLASSES)
    if len(shape) == 1:
        t = np.arange(shape[0])
        freq = np.array([0.01, 0.05, 0.15])[y][:, None]
        x = 0.5 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, (n, 1)))
        x += 0.1 * rng.standard_normal((n,) + shape)
    else:
        x = -50.0 + 5.0 * rng.standard_normal((n,) + shape)
        width = shape[1] // NUM_CLASSES
        for k in range(NUM_CLASSES):
            x[y == k, :, k * width:(k + 1) * width] += 20.0
    return x.astype("float32"), y.astype("int32")


def dataset(x, y, batch_size=16):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def all_weights(layer):
    return [w.numpy().copy() for w in layer.weights]


# --- registry ---------------------------------------------------------------------------------
def test_registry_entries_are_consistent():
    assert set(APPROACHES) == {"svc", "rf", "cnn1d", "cnn2d", "lstm", "encoder_classifier",
                               "musicnn", "musicnn_finetune"}
    for name, a in APPROACHES.items():
        assert a.name == name and a.kind in ("keras", "sklearn") and a.description
        assert set(a.transforms) <= set(TRANSFORMS)
        assert "seed" not in a.defaults and "input_shape" not in a.defaults
    assert APPROACHES["encoder_classifier"].pretrain is not None
    assert APPROACHES["cnn1d"].transforms == ("raw", "fft", "stft", "mel", "mfcc")


def test_declared_hyperparameters_are_the_functions_own():
    """Each step declares the keyword arguments of its function with the same defaults (the
    registry reads no signature: this keeps the declarations honest), and what a search tries
    includes the default."""
    import inspect

    for name, a in APPROACHES.items():
        steps = [s for s in (a.build_step, a.pretrain_step, a.featurize_step, a.to_keras_step) if s]
        for step in steps:
            params = inspect.signature(step.fn).parameters
            for hp_name, h in step.hparams.items():
                assert params[hp_name].default == h.default, (name, hp_name)
                assert not h.choices or h.default in h.choices, (name, hp_name)
            assert set(step.reads) <= set(params) and set(step.reads) <= set(a.defaults), name
    lstm = get_approach("lstm")
    assert lstm.build_step.bind({"units": 8, "blocks": 2}) == {"units": 8}
    cnn1d = get_approach("cnn1d").hparams
    assert cnn1d["front_kernel"].searched_on("raw") and not cnn1d["front_kernel"].searched_on("mel")
    assert not cnn1d["pool_size"].searched_on("raw")


@pytest.mark.parametrize("model,transform", INVALID)
def test_incompatible_pairs_are_refused(model, transform):
    with pytest.raises(ConfigError, match=f"^{model} needs .*, not {transform}$"):
        check_compatible(model, transform)


def test_refusal_message_says_why():
    with pytest.raises(ConfigError) as err:
        check_compatible("cnn2d", "raw")
    assert str(err.value) == "cnn2d needs a time-frequency transform (stft, mel, mfcc), not raw"
    check_compatible("cnn2d", "mel")  # no error
    with pytest.raises(ConfigError, match="unknown transform 'wav'"):
        check_compatible("cnn2d", "wav")


def test_unknown_name_and_hparam():
    with pytest.raises(ValueError, match="unknown model 'vgg'; valid: svc, rf, cnn1d"):
        get_approach("vgg")
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vgg", (20, 16), 3)
    with pytest.raises(ValueError, match=r"hyperparameter\(s\) for cnn2d: width; valid: .*filters"):
        build_model("cnn2d", (20, 16), 3, width=3)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        build_model("svc", None, 3, n_estimators=3)


def test_builders_refuse_wrong_rank():
    with pytest.raises(ValueError, match=r"cnn2d needs 2-D features .* got input_shape \(4096,\)"):
        build_model("cnn2d", (4096,), 3)
    with pytest.raises(ValueError, match="lstm needs 2-D features"):
        build_model("lstm", (2, 3, 4), 3)


def test_compile_model():
    model = compile_model(build_model("cnn2d", SMALL_SHAPES["mel"], 3), learning_rate=0.01,
                          optimizer="sgd")
    assert model.compiled and isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        compile_model(model, optimizer="lbfgs")


# --- keras approaches -------------------------------------------------------------------------
@pytest.mark.parametrize("model,transform", VALID)
def test_keras_approach_builds_for_each_valid_transform(model, transform):
    shape = SMALL_SHAPES[transform]
    net = build_model(model, shape, NUM_CLASSES)
    x, _ = synthetic(shape, 4)
    probs = net(x, training=False).numpy()
    assert probs.shape == (4, NUM_CLASSES)
    assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_same_seed_same_initial_weights():
    def weights(seed):
        seed_everything(seed)
        return [w.numpy() for w in build_model("cnn1d", (20, 16), 3).weights]

    a, b, c = weights(1), weights(1), weights(2)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_building_a_model_leaves_the_global_random_state_alone():
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    build_model("cnn2d", (20, 16), 3, seed=7)  # the seed is for sklearn's random_state only
    assert np.array_equal(np.random.random(3), expected)


@pytest.mark.parametrize(
    "model,transform", [("cnn1d", "mel"), ("cnn1d", "raw"), ("cnn2d", "mel"), ("lstm", "mfcc")]
)
def test_keras_approach_learns_separable_problem(model, transform):
    shape = SMALL_SHAPES[transform]
    x, y = synthetic(shape, 96, seed=0)
    x_test, y_test = synthetic(shape, 48, seed=1)
    seed_everything(0)
    net = compile_model(build_model(model, shape, NUM_CLASSES), learning_rate=3e-3)
    net.fit(dataset(x, y), epochs=8, shuffle=False, verbose=0)
    accuracy = np.mean(net.predict(x_test, verbose=0).argmax(axis=1) == y_test)
    assert accuracy >= 0.7, f"{model} on {transform}: accuracy {accuracy:.2f} (chance 0.33)"


def test_model_saves_and_loads_without_custom_objects(tmp_path):
    net = build_model("cnn1d", SMALL_SHAPES["raw"], NUM_CLASSES)
    x, _ = synthetic(SMALL_SHAPES["raw"], 4)
    net.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), net.predict(x, verbose=0), atol=1e-6)


def test_encoder_classifier_pretrains_then_keeps_encoder_frozen(tmp_path):
    approach = get_approach("encoder_classifier")
    shape = SMALL_SHAPES["mel"]
    x, y = synthetic(shape, 96, seed=0)
    x_val, y_val = synthetic(shape, 48, seed=1)
    seed_everything(0)
    net = build_model("encoder_classifier", shape, NUM_CLASSES)
    encoder = net.get_layer("encoder")

    history = approach.pretrain(net, dataset(x, y), dataset(x_val, y_val), epochs=6, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0]
    # Predicting zeros scores mean(normalised x ** 2) ~ 1; the autoencoder does clearly better.
    zeros_mse = float(np.mean(np.square(encoder.get_layer("input_norm")(x_val))))
    assert history.history["val_loss"][-1] < 0.7 * zeros_mse
    assert not encoder.trainable and not encoder.trainable_weights

    frozen = all_weights(encoder)
    compile_model(net, learning_rate=3e-3).fit(dataset(x, y), epochs=6, shuffle=False, verbose=0)
    for before, after in zip(frozen, all_weights(encoder)):  # moving statistics included
        np.testing.assert_array_equal(before, after)
    accuracy = np.mean(net.predict(x_val, verbose=0).argmax(axis=1) == y_val)
    assert accuracy >= 0.6, f"accuracy {accuracy:.2f} (chance 0.33)"

    net.save(tmp_path / "ec.keras")
    loaded = keras.models.load_model(tmp_path / "ec.keras")
    np.testing.assert_allclose(loaded.predict(x_val, verbose=0), net.predict(x_val, verbose=0),
                               atol=1e-5)
    loaded_encoder = loaded.get_layer("encoder")
    assert not loaded_encoder.trainable and not loaded_encoder.trainable_weights
    assert loaded.trainable_weights  # the head still learns
    loaded.fit(dataset(x, y), epochs=1, shuffle=False, verbose=0)  # compiled state from the file
    for before, after in zip(frozen, all_weights(loaded_encoder)):
        np.testing.assert_array_equal(before, after)


def test_pretrain_through_a_wrapping_model_and_recompiles(tmp_path):
    """As when the pipeline puts the transform in the model: raw -> front -> classifier.  The
    wrapper is compiled before pretraining (as a Keras Tuner build does)."""
    shape = SMALL_SHAPES["mfcc"]
    x, y = synthetic(shape, 32)
    raw = x.reshape(len(x), -1) / 10.0 + 4.0  # what the front turns back into x
    core = build_model("encoder_classifier", shape, NUM_CLASSES)
    inputs = keras.Input(shape=raw.shape[1:], name="window")
    features = keras.layers.Rescaling(10.0, offset=-40.0)(keras.layers.Reshape(shape)(inputs))
    net = compile_model(keras.Model(inputs, core(features)), optimizer="rmsprop")

    get_approach("encoder_classifier").pretrain(net, dataset(raw, y).map(lambda a, b: a), None,
                                                epochs=1, verbose=0)
    encoder = core.get_layer("encoder")
    norm = encoder.get_layer("input_norm")  # adapted on the front's output, i.e. on x
    np.testing.assert_allclose(norm.mean.numpy().ravel(), x.mean(axis=(0, 1)), rtol=1e-4)
    assert not encoder.trainable and isinstance(net.optimizer, keras.optimizers.RMSprop)

    frozen = all_weights(encoder)
    net.fit(dataset(raw, y), epochs=1, shuffle=False, verbose=0)
    for before, after in zip(frozen, all_weights(encoder)):
        np.testing.assert_array_equal(before, after)
    net.save(tmp_path / "wrapped.keras")
    loaded = keras.models.load_model(tmp_path / "wrapped.keras")
    loaded_encoder = loaded.layers[-1].get_layer("encoder")
    assert not loaded_encoder.trainable and not loaded_encoder.trainable_weights


def test_pretrain_with_zero_epochs_adapts_and_freezes():
    shape = SMALL_SHAPES["mfcc"]
    x, y = synthetic(shape, 16)
    net = build_model("encoder_classifier", shape, NUM_CLASSES)
    history = get_approach("encoder_classifier").pretrain(net, dataset(x, y), None, epochs=0,
                                                          verbose=0)
    assert history.history.get("loss", []) == []
    assert not net.get_layer("encoder").trainable
    norm = net.get_layer("encoder").get_layer("input_norm")
    np.testing.assert_allclose(norm.mean.numpy().ravel(), x.mean(axis=(0, 1)), rtol=1e-4)


# --- scikit-learn baselines -------------------------------------------------------------------
def test_pool_features_2d_matches_numpy():
    x = np.random.default_rng(0).normal(-40, 10, (3, 20, 8)).astype("float32")
    expected = np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=-1)
    pooled = pool_features(tf.constant(x))
    assert pooled.shape == (3, 16)
    np.testing.assert_allclose(pooled.numpy(), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("n_bins,n_bands", [(1025, 64), (100, 7), (5, 64)])
def test_pool_features_1d_bands_match_numpy(n_bins, n_bands):
    x = np.random.default_rng(0).normal(-40, 10, (2, n_bins)).astype("float32")
    bands = min(n_bins, n_bands)
    band_of_bin = np.arange(n_bins) * bands // n_bins
    parts = [x[:, band_of_bin == b] for b in range(bands)]
    expected = np.concatenate(
        [np.stack([p.mean(axis=1) for p in parts], 1), np.stack([p.std(axis=1) for p in parts], 1)],
        axis=1,
    )
    pooled = pool_features(x, n_bands=n_bands)
    assert pooled.shape == (2, 2 * bands)
    np.testing.assert_allclose(pooled.numpy(), expected, rtol=1e-5, atol=1e-4)


def test_pool_features_refuses_other_ranks():
    with pytest.raises(ValueError, match="pool_features needs"):
        pool_features(tf.zeros((2, 3, 4, 5)))


@pytest.mark.parametrize("name", SKLEARN)
def test_sklearn_baseline_fits_pooled_features(name):
    x, y = synthetic(SMALL_SHAPES["mel"], 60, seed=0)
    x_test, y_test = synthetic(SMALL_SHAPES["mel"], 30, seed=1)
    hp = {"n_estimators": 20} if name == "rf" else {}
    clf = build_model(name, None, NUM_CLASSES, seed=0, **hp)
    clf.fit(pool_features(x).numpy(), y)
    probs = clf.predict_proba(pool_features(x_test).numpy())
    assert probs.shape == (30, NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert np.mean(probs.argmax(axis=1) == y_test) >= 0.9
    assert clf.steps[0][0] == "standardscaler"


def test_sklearn_seed_is_the_random_state():
    svc = build_model("svc", None, 3, seed=7, C=2.0)[-1].estimator
    assert svc.random_state == 7 and svc.C == 2.0
    assert build_model("rf", None, 3, seed=7, max_depth=4)[-1].get_params()["max_depth"] == 4
