"""Augmentation of the training stream (pipeline/stream/augment.py) and the stream's mixing.

Small in-memory songs (short windows) keep these fast; the graph is the one make_dataset uses.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from core.config import AugmentConfig, PipelineConfig, TransformConfig, WindowConfig
from core.errors import ConfigError
from pipeline.stream import augment
from pipeline.stream.dataset import batches_from_songs, features_from_audio
from pipeline.stream.transforms import feature_shape, make_transform
from test_dataset import _collect as _epoch  # (features, labels, song ids) of one pass

SR = 22_050
WINDOW = WindowConfig(window_seconds=0.25, step_seconds=0.25)  # 5,512 samples, 11 frames
ALL = AugmentConfig(random_offsets=True, gain_db=6.0, mixup_alpha=0.4, time_masks=2,
                    time_mask_frames=3, freq_masks=2, freq_mask_bins=8)


def _songs(count: int, seconds: float = 2.5, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"audio": (rng.standard_normal(int(seconds * SR)) * 3000).astype(np.int16),
             "label": np.int64(i % 10), "song_id": f"{i:03d}"} for i in range(count)]


def _ds(songs) -> tf.data.Dataset:
    return tf.data.Dataset.from_generator(
        lambda: iter(songs),
        output_signature={"audio": tf.TensorSpec([None], tf.int16),
                          "label": tf.TensorSpec([], tf.int64),
                          "song_id": tf.TensorSpec([], tf.string)})


def _cfg(transform="mel", augment=ALL, **kw) -> PipelineConfig:
    return PipelineConfig(window=WINDOW, transform=TransformConfig(name=transform),
                          augment=augment, batch_size=16, **kw).validate()


SONGS = _songs(12)


@pytest.mark.parametrize("transform", ["stft", "mel", "mfcc", "raw"])
def test_augmented_batches_have_the_feature_shape_and_soft_labels(transform):
    cfg = _cfg(transform)
    x, y, ids = _epoch(batches_from_songs(_ds(SONGS), cfg, training=True, with_song_id=True,
                                          num_classes=10))
    assert x.shape == (len(ids),) + feature_shape(cfg) and np.all(np.isfinite(x))
    assert len(ids) == 12 * 10  # random offsets keep the grid's window count
    assert y.shape == (len(ids), 10) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(y.max(axis=1) < 0.999) > 0.5  # most labels are mixtures


def test_augmentation_is_seeded_and_new_every_epoch():
    def epochs(seed, n=2):
        ds = batches_from_songs(_ds(SONGS), _cfg(seed=seed), training=True, with_song_id=True,
                                num_classes=10)
        return [_epoch(ds) for _ in range(n)]

    a, b = epochs(1), epochs(1)
    for (xa, ya, ia), (xb, yb, ib) in zip(a, b):
        assert ia == ib
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], a[1][0])  # the second epoch draws again
    assert not np.array_equal(a[0][0], epochs(2, 1)[0][0])  # another seed, other draws


def test_evaluation_and_prediction_never_augment():
    plain, augmented = _cfg(augment=AugmentConfig()), _cfg()

    def evaluation(cfg):
        return _epoch(batches_from_songs(_ds(SONGS), cfg, training=False, with_song_id=True))

    (xp, yp, ip), (xa, ya, ia) = evaluation(plain), evaluation(augmented)
    np.testing.assert_array_equal(xa, xp)
    np.testing.assert_array_equal(ya, yp)
    assert ia == ip
    audio = SONGS[0]["audio"].astype(np.float32) / 32768
    predicted = np.concatenate(list(features_from_audio(audio, augmented)))
    np.testing.assert_array_equal(predicted, np.concatenate(list(features_from_audio(audio, plain))))
    np.testing.assert_allclose(predicted, xp[:10], atol=1e-3)  # the first song's windows


def test_masks_cover_whole_bands_with_the_window_mean():
    aug = AugmentConfig(time_masks=2, time_mask_frames=4, freq_masks=1, freq_mask_bins=5)
    features = tf.random.normal([64, 30, 20]) * 10
    out = augment.spec_masks(features, aug, tf.constant([3, 4], tf.int64)).numpy()
    f = features.numpy()
    changed = out != f
    for i in range(64):
        mean = f[i].mean()
        np.testing.assert_allclose(out[i][changed[i]], mean, atol=1e-5)
        frames = np.flatnonzero(changed[i].all(axis=1))  # masked frames: the whole frame
        bins = np.flatnonzero(changed[i].all(axis=0))
        assert len(frames) <= 2 * 4 and len(bins) <= 5
        # every changed value lies in a masked frame or a masked bin
        assert np.all(changed[i] == (np.isin(np.arange(30), frames)[:, None]
                                     | np.isin(np.arange(20), bins)[None, :]))
    assert changed.any(axis=(1, 2)).mean() > 0.8  # widths may be 0, but rarely all of them


def test_mfcc_masks_act_on_the_log_mel_before_the_dct():
    cfg = _cfg("mfcc", AugmentConfig(freq_masks=1, freq_mask_bins=128))
    windows = tf.constant(np.random.default_rng(0).standard_normal((8, 5512)).astype(np.float32))
    seed = tf.constant([5, 6], tf.int64)
    ours = augment.masked_transform(cfg)(windows, seed).numpy()
    from pipeline.stream.transforms import log_mel_transform, mfcc_from_log_mel

    log_mel = log_mel_transform(cfg.transform, SR)(windows)
    expected = mfcc_from_log_mel(augment.spec_masks(log_mel, cfg.augment, seed), cfg.transform)
    np.testing.assert_allclose(ours, expected.numpy(), atol=1e-4)
    assert not np.allclose(ours, make_transform(cfg.transform, SR)(windows).numpy(), atol=1e-3)


def test_random_offsets_cover_the_song():
    length = WINDOW.window_length
    n = 10 * length + 1000  # 10 grid windows and some slack
    audio = tf.range(n, dtype=tf.float32)  # each sample names its position
    starts = []
    for k in range(40):
        windows = augment.random_windows(audio, WINDOW, tf.constant([k, 0], tf.int64)).numpy()
        assert windows.shape == (10, length)
        assert np.array_equal(windows - windows[:, :1], np.broadcast_to(np.arange(length), windows.shape))
        starts += list(windows[:, 0].astype(int))
    starts = np.array(starts)
    assert starts.min() >= 0 and starts.max() <= n - length
    counts, _ = np.histogram(starts, bins=20, range=(0, n - length + 1))
    assert counts.min() > 0  # every twentieth of the song is a start somewhere
    assert len(set(starts)) > 300  # not a few fixed grids


def test_consecutive_training_windows_come_from_many_songs():
    """Default shuffle settings: a batch of 32 windows of 10-window songs holds many songs."""
    songs = _songs(100, seconds=2.5)
    cfg = PipelineConfig(window=WINDOW, transform=TransformConfig(name="raw"), batch_size=32)
    _, _, ids = _epoch(batches_from_songs(_ds(songs), cfg, training=True, with_song_id=True))
    assert collections.Counter(ids) == {f"{i:03d}": 10 for i in range(100)}
    per_batch = [len(set(ids[i : i + 32])) for i in range(0, len(ids) - 31, 32)]
    assert min(per_batch) >= 12 and np.mean(per_batch) >= 15, per_batch
    same_song_neighbours = np.mean([a == b for a, b in zip(ids, ids[1:])])
    assert same_song_neighbours < 0.15
    first = [int(i) for i in ids[:32]]
    assert max(first) - min(first) > 20  # not the first few songs in file order


def test_config_validation_flags_and_round_trip():
    from pipeline.cli.flags import add_pipeline_args, pipeline_config_from_args

    with pytest.raises(ConfigError, match="mixup_alpha"):
        AugmentConfig(mixup_alpha=-1).validate()
    with pytest.raises(ConfigError, match="transform-placement"):
        _cfg(transform_placement="model")
    parser = argparse.ArgumentParser()
    add_pipeline_args(parser)
    args = parser.parse_args(["--random-offsets", "true", "--mixup-alpha", "0.3",
                              "--time-masks", "1"])
    cfg = pipeline_config_from_args(args)
    assert cfg.augment == AugmentConfig(random_offsets=True, mixup_alpha=0.3, time_masks=1)
    assert PipelineConfig.from_dict(cfg.to_dict()) == cfg
    old = cfg.to_dict()
    del old["augment"]  # config.json of a run from before augmentation existed
    assert PipelineConfig.from_dict(old).augment == AugmentConfig()


def test_mixup_model_compiles_for_soft_labels_and_validates_on_one_hot():
    import keras

    from models.common import compile_model

    cfg = _cfg("mel", AugmentConfig(mixup_alpha=0.4))
    train = batches_from_songs(_ds(SONGS[:4]), cfg, training=True, num_classes=10)
    val = batches_from_songs(_ds(SONGS[4:6]), cfg, training=False, num_classes=10, one_hot=True)
    inputs = keras.Input(feature_shape(cfg))
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs))
    model = compile_model(keras.Model(inputs, outputs), soft_labels=True)
    history = model.fit(train, validation_data=val, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "val_accuracy" in history.history


def test_search_space_tunes_augmentation():
    from core.config import TrainConfig
    from tuning.search_space import SearchSpace

    mel = SearchSpace.for_approach("cnn2d", "mel")
    assert {"random_offsets", "mixup_alpha", "gain_db", "time_masks", "freq_masks"} <= set(mel.entries)
    raw = SearchSpace.for_approach("cnn1d", "raw")
    assert "time_masks" not in raw.entries and "mixup_alpha" in raw.entries
    cfg, _ = mel.configs({"time_masks": 2, "mixup_alpha": 0.2, "random_offsets": True},
                         PipelineConfig(), TrainConfig(model="cnn2d"))
    assert cfg.augment == dataclasses.replace(AugmentConfig(), time_masks=2, mixup_alpha=0.2,
                                              random_offsets=True)


def test_repeated_training_stream_reshuffles_each_epoch():
    """pipeline.train fits on ds.repeat() with steps_per_epoch = epoch_steps: every epoch
    holds each window once, in a new order, with new augmentation draws."""
    from pipeline.stream.dataset import count_windows

    cfg = _cfg("raw", AugmentConfig(gain_db=6.0))
    assert count_windows(_ds(SONGS), cfg) == 120
    steps = -(-120 // cfg.batch_size)
    ds = batches_from_songs(_ds(SONGS), cfg, training=True, with_song_id=True).repeat()
    batches = list(ds.take(2 * steps))
    epochs = [batches[:steps], batches[steps:]]
    ids = [[v.decode() for b in e for v in b[2].numpy()] for e in epochs]
    for e in ids:
        assert collections.Counter(e) == {f"{i:03d}": 10 for i in range(12)}
    assert ids[0] != ids[1]


@pytest.mark.parametrize("transform", ["stft", "mel", "raw", "fft"])
def test_masks_only_on_the_time_frequency_transforms(transform):
    """stft/mel: the plain transform, then spec_masks (after the dB); raw/fft: masks ignored."""
    cfg = _cfg(transform, AugmentConfig(time_masks=2, time_mask_frames=4, freq_masks=2,
                                        freq_mask_bins=4))
    windows = tf.constant(np.random.default_rng(1).standard_normal((8, 5512)).astype(np.float32))
    seed = tf.constant([7, 8], tf.int64)
    plain = make_transform(cfg.transform, SR)(windows)
    ours = augment.masked_transform(cfg)(windows, seed).numpy()
    if transform in augment.MASKED_TRANSFORMS:
        np.testing.assert_allclose(ours, augment.spec_masks(plain, cfg.augment, seed).numpy())
        assert not np.allclose(ours, plain.numpy())
    else:
        np.testing.assert_array_equal(ours, plain.numpy())


def test_random_gain_scales_each_window_by_one_factor_within_the_range():
    windows = tf.constant(np.random.default_rng(2).uniform(0.5, 1.0, (256, 100)).astype(np.float32))
    out = augment.random_gain(windows, 6.0, tf.constant([1, 2], tf.int64)).numpy()
    ratio_db = 20 * np.log10(out / windows.numpy())
    np.testing.assert_allclose(ratio_db, ratio_db[:, :1] * np.ones((1, 100)), atol=1e-4)
    assert ratio_db.min() >= -6.0 - 1e-4 and ratio_db.max() <= 6.0 + 1e-4
    assert ratio_db.min() < -4 and ratio_db.max() > 4  # spread over the range, both ways


def test_mixup_mixes_waveforms_and_labels_with_the_same_weights():
    batch = 64
    waves = tf.constant(np.random.default_rng(3).standard_normal((batch, 50)).astype(np.float32))
    labels = tf.eye(batch)  # every row its own class: the mixed label names partner and weight
    lam, partner = augment.mixup_weights(batch, 0.4, tf.constant([4, 5], tf.int64))
    x, y = augment.mix(waves, lam, partner).numpy(), augment.mix(labels, lam, partner).numpy()
    lam, partner = lam.numpy(), partner.numpy()
    assert sorted(partner) == list(range(batch)) and np.all((lam >= 0) & (lam <= 1))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6)
    w = waves.numpy()
    for i in range(batch):
        np.testing.assert_allclose(x[i], lam[i] * w[i] + (1 - lam[i]) * w[partner[i]], atol=1e-5)
        if partner[i] != i:
            assert y[i, i] == pytest.approx(lam[i]) and y[i, partner[i]] == pytest.approx(1 - lam[i])
    # Beta(0.4, 0.4) puts most weight near 0 and 1, with mean 1/2
    assert 0.3 < lam.mean() < 0.7 and np.mean((lam < 0.2) | (lam > 0.8)) > 0.4
