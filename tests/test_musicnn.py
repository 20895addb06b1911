"""Tests of the musicnn port: the input transform and the networks against the originals.

- The ``"musicnn"`` transform against musicnn's own preprocessing done with librosa.
- ``models.musicnn`` against the original TF1 graphs, imported from the wheel's ``.meta``
  files and run in a ``tf.compat.v1.Session`` (in a private ``tf.Graph``; eager stays on).
- Checkpoint mapping (every tensor used once; wrong maps fail), ``.keras`` round trip.

Inputs are patches of real GTZAN clips (the shared sample), resampled to 16 kHz with
``core.resample.resample``.  Everything skips cleanly without the ``musicnn`` wheel or the
shared data.  Tolerances are just above the errors measured on these clips (stated per test).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import functools  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from core import musicnn_input  # noqa: E402
from core.config import PipelineConfig, TransformConfig, WindowConfig  # noqa: E402
from core.errors import ConfigError, UserError, WeightsNotFoundError  # noqa: E402
from core.resample import resample  # noqa: E402
from models import musicnn, musicnn_checkpoint  # noqa: E402
from pipeline.stream.transforms import (  # noqa: E402
    TransformLayer,
    compiled_transform,
    feature_shape,
    feature_shape_for,
    make_transform,
    round_to_float16,
)

CLIPS = ("blues.00000", "classical.00001", "metal.00002", "reggae.00003")  # varied material
WINDOW = 48_000  # the pipeline's 3 s window at 16 kHz: 188 frames, the transform keeps 187


def _installed() -> bool:
    try:
        musicnn_checkpoint.checkpoint_dir("msd")
    except WeightsNotFoundError:
        return False
    return True


needs_wheel = pytest.mark.skipif(
    not _installed(), reason=f"musicnn wheel not installed ({musicnn_checkpoint.INSTALL_HINT})"
)


# --------------------------------------------------------------------------------------------
# data: 16 kHz windows and musicnn patches of real clips
def _clip_16k(sample_dir, clip: str) -> np.ndarray:
    import soundfile as sf

    genre = clip.split(".")[0]
    audio, rate = sf.read(sample_dir / "genres" / genre / f"{clip}.wav", dtype="float32")
    return resample(tf.constant(audio), rate, musicnn_input.SAMPLE_RATE).numpy()


@pytest.fixture(scope="module")
def windows(gtzan_sample_dir) -> np.ndarray:
    """Three 3 s windows (start, middle, end) of each clip of CLIPS: [12, 48000] at 16 kHz."""
    rows = []
    for clip in CLIPS:
        audio = _clip_16k(gtzan_sample_dir, clip)
        for start in (0, (len(audio) - WINDOW) // 2, len(audio) - WINDOW):
            rows.append(audio[start: start + WINDOW])
    return np.stack(rows)


@pytest.fixture(scope="module")
def patches(windows) -> np.ndarray:
    """musicnn input patches of ``windows``: [12, 187, 96]."""
    return make_transform(TransformConfig(name="musicnn"), musicnn_input.SAMPLE_RATE)(
        windows
    ).numpy()


def librosa_musicnn_features(window: np.ndarray) -> np.ndarray:
    """musicnn's extractor.batch_data on one window, librosa 0.7's reflect padding made explicit.

    The float16 mel goes back to float32 before ``10000 * mel``: under the NumPy musicnn ran on
    (< 1.17) ``10000`` promoted the product to float32; NumPy 2 keeps float16 (NEP 50), where
    any mel above 6.55 overflows to inf.
    """
    import librosa

    mel = librosa.feature.melspectrogram(
        y=window, sr=16000, hop_length=256, n_fft=512, n_mels=96, pad_mode="reflect"
    ).T
    mel = mel.astype(np.float16).astype(np.float32)
    return np.log10(10000 * mel + 1)[: musicnn_input.PATCH_FRAMES]


# --------------------------------------------------------------------------------------------
# the original TF1 graph
# output name -> tensor of the graph saved by musicnn's training code (found by listing its ops)
MUSICNN_TENSORS = {
    "tags": "model/Sigmoid:0",
    "penultimate": "model/batch_normalization_10/batchnorm/add_1:0",
    "mean_pool": "model/moments/Squeeze:0",  # [B, 753, 1]: tf.nn.moments over time
    "max_pool": "model/Max:0",  # [B, 753, 1]
}
VGG_TENSORS = {
    "tags": "model/Sigmoid:0",
    **{f"pool{k}": f"model/max_pooling2d{'' if k == 1 else f'_{k - 1}'}/MaxPool:0"
       for k in range(1, 6)},
}


@functools.lru_cache(maxsize=None)
def reference_session(weights: str) -> tf.compat.v1.Session:
    """The original graph of ``weights`` with its checkpoint restored, in its own tf.Graph."""
    from tensorflow.core.protobuf import meta_graph_pb2

    folder = musicnn.checkpoint_dir(weights)
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((folder / ".meta").read_bytes())
    tensors = VGG_TENSORS if weights in musicnn.VGG_WEIGHTS else MUSICNN_TENSORS
    outputs = sorted({t.split(":")[0] for t in tensors.values()})
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(
        meta.graph_def, outputs + ["save/restore_all"]
    )
    for node in graph_def.node:  # stale shapes and the author's devices
        node.attr.pop("_output_shapes", None)
        node.device = ""
        if "seed2" in node.attr and not (node.attr["seed"].i or node.attr["seed2"].i):
            # the dropout's random op, never taken at inference: seeded so that it also runs
            # where a test before this one turned on TF's op determinism for the process
            node.attr["seed"].i, node.attr["seed2"].i = 1, 1
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    session.run("save/restore_all", {"save/Const:0": f"{folder}/"})
    return session


def reference_outputs(weights: str, patches: np.ndarray) -> dict[str, np.ndarray]:
    tensors = VGG_TENSORS if weights in musicnn.VGG_WEIGHTS else MUSICNN_TENSORS
    feed = {"model/Placeholder:0": patches, "model/Placeholder_2:0": False}
    values = reference_session(weights).run(dict(tensors), feed)
    return {k: v.squeeze(-1) if k.endswith("_pool") else v for k, v in values.items()}


@functools.lru_cache(maxsize=None)
def ported(weights: str) -> keras.Model:
    build = musicnn.build_vgg if weights in musicnn.VGG_WEIGHTS else musicnn.build_musicnn
    return build(weights)


# --------------------------------------------------------------------------------------------
# the transform
@pytest.mark.parametrize("compiled", [False, True], ids=["graph", "xla"])
def test_transform_matches_musicnn_preprocessing_with_librosa(windows, patches, compiled):
    """Against librosa (musicnn's extractor: melspectrogram with reflect padding, float16, log).

    Both sides round the mel power to float16, so float32 differences of ~1e-6 in the power
    flip a float16 rounding now and then: such an entry differs by one float16 step, at most
    ``log10(1 + 2**-10)`` = 4.24e-4 after the log; measured on these 12 windows: max 4.2e-4,
    in 0.05 % of entries (0.03-0.05 % on each of the 50 sample clips); every other entry
    differs by at most 9.5e-7.  Tolerances: one float16 step, 0.1 % of entries, 2e-6.
    The same holds XLA-compiled, as tf.data runs it (where TF 2.17's XLA elided a plain float16
    cast: see test_round_to_float16_is_numpys_cast_also_under_xla).
    """
    if compiled:
        patches = compiled_transform(TransformConfig(name="musicnn"), 16000)(windows).numpy()
    assert patches.shape == (len(windows), 187, 96) and patches.dtype == np.float32
    reference = np.stack([librosa_musicnn_features(w) for w in windows])
    err = np.abs(patches - reference)
    assert err.max() <= np.log10(1 + 2.0**-10) + 1e-6
    flipped = err > 1e-5
    assert flipped.mean() < 1e-3
    assert err[~flipped].max() < 2e-6
    assert reference.max() > 4.0  # real music, not silence


def test_round_to_float16_is_numpys_cast_also_under_xla():
    """Every finite float16, the midpoints between neighbours (ties to even) and the float32
    values on either side of them, subnormals, overflow, random magnitudes, both signs: equal
    to ``astype(np.float16)``, eager and XLA-compiled.  (TF 2.17's XLA elided a
    ``tf.cast`` float16 round trip as excess precision, which is why the function exists; TF 2.21's
    keeps it: docs/musicnn.md.  The function does not depend on either.)"""
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32)
    mids = ((halves[1:].astype(np.float64) + halves[:-1]) / 2).astype(np.float32)
    rng = np.random.default_rng(0)
    x = np.concatenate([halves, mids, np.nextafter(mids, np.float32(0)),
                        np.nextafter(mids, np.float32(np.inf)),
                        (10.0 ** rng.uniform(-12, 6, 100_000)).astype(np.float32),
                        np.float32([65504, 65519.99, 65520, 7e4, 1e-30, 0, np.inf])])
    x = np.concatenate([x, -x, np.float32([np.nan])])
    expected = x.astype(np.float16).astype(np.float32)
    for jit in (False, True):
        got = tf.function(round_to_float16, jit_compile=jit)(tf.constant(x)).numpy()
        np.testing.assert_array_equal(got, expected, err_msg=f"jit_compile={jit}")


def test_transform_fixes_its_settings_and_keeps_first_187_frames(windows):
    """Other TransformConfig fields are ignored; longer windows give their first 187 frames."""
    default = make_transform(TransformConfig(name="musicnn"), 16000)
    other = make_transform(TransformConfig(name="musicnn", n_fft=2048, hop_length=512,
                                           n_mels=128, pad_mode="constant", top_db=None), 16000)
    short = windows[:2, : musicnn_input.MIN_WINDOW_LENGTH]
    np.testing.assert_array_equal(default(short).numpy(), other(short).numpy())
    # frames 0..185 end by sample 185 * 256 + 256 = 47,616: the same in both windows (frame
    # 186 of the short one is padded by reflection); a float16 step of slack for round-off
    np.testing.assert_allclose(default(short).numpy()[:, :-1],
                               default(windows[:2]).numpy()[:, :-1], rtol=0, atol=4.3e-4)
    cfg = TransformConfig(name="musicnn")
    for length, frames in ((musicnn_input.MIN_WINDOW_LENGTH, 187), (WINDOW, 187), (40_000, 157)):
        assert default(np.zeros((1, length), np.float32)).shape[1:] == (frames, 96)
        assert feature_shape_for(cfg, length) == (frames, 96)


def test_transform_validation_and_layer():
    cfg = PipelineConfig(window=WindowConfig(sample_rate=16000, window_seconds=3.0),
                         transform=TransformConfig(name="musicnn")).validate()
    assert feature_shape(cfg) == (musicnn_input.PATCH_FRAMES, musicnn_input.N_MELS)
    with pytest.raises(ConfigError, match="needs 16000 Hz windows"):
        PipelineConfig(transform=TransformConfig(name="musicnn")).validate()  # 22,050 Hz
    with pytest.raises(ConfigError, match="at least 47616 samples"):
        PipelineConfig(window=WindowConfig(sample_rate=16000, window_seconds=2.9),
                       transform=TransformConfig(name="musicnn")).validate()
    layer = TransformLayer.from_pipeline_config(cfg)
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, WINDOW)).astype(np.float32)
    expected = make_transform(cfg.transform, 16000)(x).numpy()
    np.testing.assert_array_equal(layer(x).numpy(), expected)
    assert layer.compute_output_shape((None, WINDOW)) == (None, 187, 96)


# --------------------------------------------------------------------------------------------
# the networks against the original graphs
# Max abs error allowed per output: about 2-3x the largest measured on the 12 patches of
# `patches` for either checkpoint (float32 round-off; relative errors are all below 5e-6).
MUSICNN_TOLERANCE = {  # measured (msd, mtt)
    "tags": 3e-6,  # 6.0e-7, 1.3e-6
    "penultimate": 1e-5,  # 3.9e-6, 4.0e-6
    "mean_pool": 1.5e-5,  # 3.4e-6, 5.7e-6
    "max_pool": 6e-4,  # 1.5e-4, 2.8e-4 (values up to 130)
}
VGG_TOLERANCE = {  # measured (msd_vgg, mtt_vgg)
    "tags": 1e-6,  # 2.5e-7, 1.8e-7
    "pool1": 1e-4,  # 3.9e-5, 1.5e-5
    "pool2": 1e-4,  # 2.7e-5, 3.0e-5
    "pool3": 1e-4,  # 2.1e-5, 1.6e-5
    "pool4": 1e-4,  # 1.9e-5, 1.8e-5
    "pool5": 1e-5,  # 3.2e-6, 2.4e-6
}


@needs_wheel
@pytest.mark.parametrize("weights", musicnn.WEIGHTS + musicnn.VGG_WEIGHTS)
def test_port_matches_original_tf1_graph(weights, patches):
    tolerance = VGG_TOLERANCE if weights in musicnn.VGG_WEIGHTS else MUSICNN_TOLERANCE
    expected = reference_outputs(weights, patches)
    got = ported(weights)(patches, training=False)
    assert set(got) == set(tolerance) == set(expected)
    for name, atol in tolerance.items():
        value = got[name].numpy()
        assert value.shape == expected[name].shape, name
        err = np.abs(value - expected[name]).max()
        assert err <= atol, f"{weights} {name}: max abs error {err:.3g} > {atol:g}"
    # real, varied outputs: the tags move by more than the error from patch to patch
    assert np.abs(got["tags"].numpy() - expected["tags"]).max() < 1e-3 < np.ptp(expected["tags"])


@needs_wheel
def test_tags_make_sense_on_real_music(patches):
    """Tag names are in output order: the clips' genres come out on top (3 windows each)."""
    def top(weights, clip, k):
        i = CLIPS.index(clip)
        mean = ported(weights)(patches[3 * i: 3 * i + 3], training=False)["tags"].numpy().mean(0)
        names = musicnn.tag_names(weights)
        return [names[j] for j in np.argsort(-mean)[:k]]

    assert top("mtt", "classical.00001", 1) == ["classical"]
    assert top("msd", "blues.00000", 1) == ["blues"]
    assert "heavy metal" in top("msd", "metal.00002", 2)


# --------------------------------------------------------------------------------------------
# checkpoint mapping
def _checkpoint_keys(weights):
    prefix = f"{musicnn.checkpoint_dir(weights)}/"
    return tf.compat.v1.train.NewCheckpointReader(prefix).get_variable_to_shape_map()


@needs_wheel
def test_every_checkpoint_tensor_is_used_once():
    keys = _checkpoint_keys("msd")
    weights = sorted(k for k in keys if not musicnn_checkpoint.is_optimizer_state(k))
    assert len(keys) == 150 and len(weights) == 64  # 8 conv, 11 BN, 2 dense; Adam slots
    mapped = sorted(f"{musicnn.MUSICNN_SCOPES[v.path.split('/')[0]]}/{v.name}"
                    for v in ported("msd").weights)
    assert mapped == weights  # each once
    # the Conv1D kernels of the mid end are the TF1 [7, C, 1, 64] kernels without the 1
    reader = tf.compat.v1.train.NewCheckpointReader(f"{musicnn.checkpoint_dir('msd')}/")
    kernel = ported("msd").get_layer("midend_1_conv").kernel.numpy()
    np.testing.assert_array_equal(kernel, reader.get_tensor("conv2d_5/kernel")[:, :, 0, :])
    assert ported("msd").count_params() == 792_079
    assert ported("msd_vgg").count_params() == 607_030


def test_check_exactly_once_names_the_culprits():
    available = ["a/kernel", "a/bias", "b/kernel", "a/kernel/Adam", "a/kernel/Adam_1",
                 "beta1_power", "beta2_power"]
    musicnn_checkpoint.check_exactly_once(["a/kernel", "a/bias", "b/kernel"], available)
    with pytest.raises(ValueError, match=r"unused checkpoint tensors: b/kernel$"):
        musicnn_checkpoint.check_exactly_once(["a/kernel", "a/bias"], available)
    with pytest.raises(ValueError, match=r"not in the checkpoint: c/bias; .*unused.*: b/kernel"):
        musicnn_checkpoint.check_exactly_once(["a/kernel", "a/bias", "c/bias"], available)
    with pytest.raises(ValueError, match=r"used more than once: a/kernel; unused.*: b/kernel"):
        musicnn_checkpoint.check_exactly_once(["a/kernel", "a/bias", "a/kernel"], available)


@needs_wheel
def test_wrong_mapping_fails_and_assigns_nothing():
    model = musicnn.build_musicnn("mtt", load_weights=False)
    before = [w.numpy().copy() for w in model.weights]
    prefix = f"{musicnn.checkpoint_dir('mtt')}/"
    # two layers on one scope (same shapes): conv2d_6 used twice, conv2d_7 unused
    wrong = dict(musicnn.MUSICNN_SCOPES, midend_3_conv="conv2d_6")
    with pytest.raises(ValueError, match=r"more than once: conv2d_6/bias, conv2d_6/kernel; unused "
                                         r"checkpoint tensors: conv2d_7/bias, conv2d_7/kernel$"):
        musicnn_checkpoint.assign_checkpoint(model, prefix, wrong)
    missing = {k: v for k, v in musicnn.MUSICNN_SCOPES.items() if k != "backend_logits"}
    with pytest.raises(ValueError, match="layer 'backend_logits' has no musicnn checkpoint scope"):
        musicnn_checkpoint.assign_checkpoint(model, prefix, missing)
    with pytest.raises(ValueError, match="layer 'input_bn' has no musicnn checkpoint scope"):
        musicnn.load_checkpoint_weights(musicnn.build_vgg("mtt_vgg", load_weights=False), "mtt")
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))


def test_missing_wheel_and_unknown_names(monkeypatch):
    with pytest.raises(ConfigError, match="unknown weights 'gtzan'; valid: msd, mtt$"):
        musicnn.build_musicnn("gtzan", load_weights=False)
    with pytest.raises(ConfigError, match="valid: msd_vgg, mtt_vgg$"):
        musicnn.build_vgg("msd", load_weights=False)
    monkeypatch.setattr(musicnn_checkpoint.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsNotFoundError, match="pip install --no-deps musicnn==0.1.0") as err:
        musicnn.build_musicnn("msd")
    assert isinstance(err.value, UserError)
    with pytest.raises(WeightsNotFoundError):
        musicnn.tag_names("mtt")


@needs_wheel
def test_tag_names():
    msd, mtt = musicnn.tag_names("msd"), musicnn.tag_names("mtt_vgg")
    assert len(msd) == len(mtt) == musicnn.NUM_TAGS
    assert msd[:3] == ["rock", "pop", "alternative"] and mtt[:3] == ["guitar", "classical", "slow"]


# --------------------------------------------------------------------------------------------
# Keras serialisation
def test_keras_round_trip(tmp_path):
    """Random weights (no wheel needed): the saved file holds the whole model and its dict."""
    keras.utils.set_random_seed(1)
    model = musicnn.build_musicnn("msd", load_weights=False)
    x = np.random.default_rng(0).uniform(0, 5, (3, 187, 96)).astype(np.float32)
    model.save(tmp_path / "musicnn.keras")
    loaded = keras.models.load_model(tmp_path / "musicnn.keras")
    got, expected = loaded(x, training=False), model(x, training=False)
    assert set(got) == {"tags", "penultimate", "mean_pool", "max_pool"}
    for name in expected:
        np.testing.assert_array_equal(got[name].numpy(), expected[name].numpy())
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
