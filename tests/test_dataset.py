"""The tf.data graph: windows per song, labels, order, shuffling, placement, prediction.

Most tests feed ``batches_from_songs`` in-memory songs (the same dicts TFDS yields), so they
are fast and independent of the builder; the last ones read the real gtzan_tfds synthetic
config through TFDS (skipped while the builder is not importable).
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from core.config import DatasetConfig, PipelineConfig, TransformConfig, WindowConfig
from core.errors import DatasetNotBuiltError
from pipeline.stream.dataset import (
    batches_from_songs,
    features_from_audio,
    load_songs,
    make_dataset,
)
from core.resample import resample
from pipeline.stream.transforms import TransformLayer, feature_shape, make_transform
from pipeline.stream.windowing import frame_windows

SR = 22_050
# (seconds, label): 30 s songs, one a bit longer, one GTZAN-short, one shorter than a window
SONG_SPECS = [(30.0, i % 10) for i in range(10)] + [(31.5, 3), (29.98, 4), (2.0, 5)]
EXPECTED_WINDOWS = [10] * 10 + [10, 9, 0]


def _songs() -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "audio": (rng.standard_normal(int(round(s * SR))) * 3000).astype(np.int16),
            "label": np.int64(label),
            "song_id": f"{i:03d}",
        }
        for i, (s, label) in enumerate(SONG_SPECS)
    ]


SONGS = _songs()


def _song_ds(songs=SONGS) -> tf.data.Dataset:
    return tf.data.Dataset.from_generator(
        lambda: iter(songs),
        output_signature={
            "audio": tf.TensorSpec([None], tf.int16),
            "label": tf.TensorSpec([], tf.int64),
            "song_id": tf.TensorSpec([], tf.string),
        },
    )


def _cfg(**kw) -> PipelineConfig:
    cfg = PipelineConfig(batch_size=16, shuffle_buffer=64)
    cfg.transform = TransformConfig(name=kw.pop("transform", "raw"))
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def _collect(ds) -> tuple[np.ndarray, np.ndarray, list[str]]:
    xs, ys, ids = [], [], []
    for x, y, s in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
        ids += [v.decode() for v in s.numpy()]
    return np.concatenate(xs), np.concatenate(ys), ids


def test_eval_windows_per_song_labels_and_order():
    cfg = _cfg()
    x, y, ids = _collect(batches_from_songs(_song_ds(), cfg, training=False, with_song_id=True))
    counts = collections.Counter(ids)
    for i, expected in enumerate(EXPECTED_WINDOWS):
        assert counts.get(f"{i:03d}", 0) == expected
    assert x.shape == (sum(EXPECTED_WINDOWS), 66_150) and x.dtype == np.float32
    # songs in order, each song's windows consecutive and in time order, labels per song
    assert ids == sorted(ids)
    start = 0
    for i, expected in enumerate(EXPECTED_WINDOWS):
        audio = SONGS[i]["audio"].astype(np.float32) / 32768
        for k in range(expected):
            np.testing.assert_array_equal(x[start + k], audio[k * 66_150 : (k + 1) * 66_150])
        assert set(y[start : start + expected]) <= {SONGS[i]["label"]}
        start += expected


def test_eval_order_is_deterministic():
    cfg = _cfg(transform="mel")
    ds = batches_from_songs(_song_ds(), cfg, training=False, with_song_id=True)
    a, b = _collect(ds), _collect(ds)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == b[2]
    assert a[0].shape[1:] == feature_shape(cfg)


def test_training_mixes_songs_and_keeps_labels():
    cfg = _cfg()
    ds = batches_from_songs(_song_ds(), cfg, training=True, with_song_id=True)
    seen = collections.Counter()
    batches = list(ds)
    for x, y, s in batches:
        ids = [v.decode() for v in s.numpy()]
        if len(ids) == cfg.batch_size:
            assert len(set(ids)) >= 5, ids  # a batch is not one song
        for window, label, sid in zip(x.numpy(), y.numpy(), ids):
            song = SONGS[int(sid)]
            assert label == song["label"]  # no window labelled differently from its song
            audio = song["audio"].astype(np.float32) / 32768
            matches = [  # which of its song's windows this is (exactly one must match)
                k for k in range(EXPECTED_WINDOWS[int(sid)])
                if np.array_equal(window, audio[k * 66_150 : (k + 1) * 66_150])
            ]
            assert len(matches) == 1
            k = matches[0]
            seen[(sid, k)] += 1
    # every window exactly once per epoch
    assert len(seen) == sum(EXPECTED_WINDOWS) and set(seen.values()) == {1}
    # not in file order
    first_ids = [v.decode() for v in batches[0][2].numpy()]
    assert first_ids != sorted(first_ids)


def test_training_is_seeded():
    def first_epoch(seed):
        cfg = _cfg(seed=seed)
        ds = batches_from_songs(_song_ds(), cfg, training=True, with_song_id=True)
        return _collect(ds)[2]

    assert first_epoch(1) == first_epoch(1)
    assert first_epoch(1) != first_epoch(2)


def test_without_song_id_yields_pairs():
    cfg = _cfg(transform="mfcc")
    x, y = next(iter(batches_from_songs(_song_ds(), cfg, training=True)))
    assert x.shape == (16,) + feature_shape(cfg) and y.dtype == tf.int64


def test_model_placement_yields_raw_windows_for_transform_layer():
    data_cfg = _cfg(transform="mel")
    model_cfg = dataclasses.replace(data_cfg, transform_placement="model")
    raw, _, ids_model = _collect(
        batches_from_songs(_song_ds(SONGS[:2]), model_cfg, training=False, with_song_id=True)
    )
    feats, _, ids_data = _collect(
        batches_from_songs(_song_ds(SONGS[:2]), data_cfg, training=False, with_song_id=True)
    )
    assert raw.shape == (20, 66_150) and ids_model == ids_data
    layer = TransformLayer.from_pipeline_config(model_cfg)
    np.testing.assert_allclose(layer(raw).numpy(), feats, atol=1e-3)


def test_resampling_in_the_pipeline():
    cfg = _cfg(window=WindowConfig(sample_rate=11_025))
    x, y, ids = _collect(
        batches_from_songs(_song_ds(SONGS[:1]), cfg, training=False, with_song_id=True)
    )
    assert x.shape == (10, 33_075)
    song = tf.constant(SONGS[0]["audio"].astype(np.float32) / 32768)
    expected = frame_windows(resample(song, SR, 11_025), cfg.window).numpy()
    np.testing.assert_allclose(x, expected, atol=1e-6)


# --- prediction ------------------------------------------------------------------------------
def test_features_from_audio_equals_pipeline_windows():
    cfg = _cfg(transform="mel", window=WindowConfig(step_seconds=1.0, pad_end=True))
    audio = SONGS[10]["audio"].astype(np.float32) / 32768  # 31.5 s
    windows = frame_windows(tf.constant(audio), cfg.window)  # the whole song at once
    assert windows.shape[0] == 30  # starts 0..29 s, the last one padded
    batches = list(features_from_audio(audio, cfg, batch_size=8))
    assert [b.shape[0] for b in batches] == [8, 8, 8, 6]
    expected = make_transform(cfg.transform, SR)(windows).numpy()
    np.testing.assert_allclose(np.concatenate(batches), expected, atol=1e-3)


def test_features_from_audio_short_files_and_raw_placement():
    cfg = _cfg(transform="mel")
    short = np.zeros(SR, np.float32)  # 1 s
    assert list(features_from_audio(short, cfg)) == []
    (padded,) = list(features_from_audio(short, cfg, pad_short=True))
    assert padded.shape == (1,) + feature_shape(cfg) and np.all(np.isfinite(padded))
    cfg.transform_placement = "model"
    (raw,) = list(features_from_audio(np.ones(4 * SR, np.float32), cfg))
    assert raw.shape == (1, 66_150)


@pytest.mark.slow
def test_features_from_audio_streams_long_files():
    import psutil

    cfg = _cfg(transform="mel")
    rng = np.random.default_rng(0)

    def stream(seconds: int) -> tuple[int, int]:
        audio = (0.1 * rng.standard_normal(seconds * SR)).astype(np.float32)
        before = psutil.Process().memory_info().rss
        windows = sum(b.shape[0] for b in features_from_audio(audio, cfg, batch_size=32))
        return windows, psutil.Process().memory_info().rss - before

    assert stream(600)[0] == 200  # 10 minutes; also warms up tracing, XLA and the allocator
    windows, grown = stream(1200)
    assert windows == 400
    # all 400 windows at once would hold ~1 GB of spectrogram intermediates; streaming holds
    # the audio (106 MB as numpy + tensor) and a few batches
    assert grown < 2.5 * 1200 * SR * 4


# --- through TFDS ----------------------------------------------------------------------------
def _tfds_builder_available() -> bool:
    try:
        import tensorflow_datasets as tfds

        import gtzan_tfds  # noqa: F401

        return "gtzan_tfds" in tfds.list_builders(with_community_datasets=False)
    except Exception:  # noqa: BLE001  (the builder is written in parallel with this module)
        return False


needs_builder = pytest.mark.skipif(
    not _tfds_builder_available(), reason="gtzan_tfds builder not importable yet"
)


@needs_builder
def test_not_built_error_gives_the_build_command(tmp_path):
    cfg = DatasetConfig(name="gtzan", data_dir=str(tmp_path))
    with pytest.raises(DatasetNotBuiltError) as err:
        load_songs(cfg, "train")
    message = str(err.value)
    expected = "tfds build gtzan_tfds --imports gtzan_tfds --config gtzan --manual_dir /path/to/gtzan --data_dir"
    assert f"{expected} {tmp_path}" in message


@pytest.fixture(scope="module")
def synthetic_data_dir(tmp_path_factory):
    if not _tfds_builder_available():
        pytest.skip("gtzan_tfds builder not importable yet")
    return str(tmp_path_factory.mktemp("tfds"))


@needs_builder
def test_synthetic_songs_through_tfds(synthetic_data_dir):
    cfg = PipelineConfig(dataset=DatasetConfig(name="synthetic", data_dir=synthetic_data_dir))
    cfg.batch_size = 32
    songs = load_songs(cfg.dataset, "test")  # builds on first use
    song = next(iter(songs))
    assert set(song) == {"audio", "label", "song_id"}
    assert song["audio"].dtype == tf.int16 and song["label"].dtype == tf.int64
    ids = [s["song_id"].numpy() for s in songs]
    assert ids == [s["song_id"].numpy() for s in load_songs(cfg.dataset, "test")]  # stable

    x, y, sid = next(iter(make_dataset(cfg, "test", training=False, with_song_id=True)))
    assert tuple(x.shape[1:]) == feature_shape(cfg) and np.all(np.isfinite(x.numpy()))
    x, y = next(iter(make_dataset(cfg, "train", training=True)))
    assert x.shape[0] == 32 and y.shape == (32,)


def test_a_split_is_read_a_few_files_at_a_time(small_data_dir):
    """Songs in flight are bounded by the files read at once, not by the number of files: with
    TFDS's default (16 files, 16 songs from each in a row) a 10x dataset held ~1 GB of songs in
    flight (docs/performance.md).  Here: at no point of a pass have more than
    READ_FILES_AT_ONCE files been started and not finished."""
    from pathlib import Path

    import tensorflow_datasets as tfds

    from pipeline.stream.dataset import READ_FILES_AT_ONCE

    folder = next(Path(small_data_dir).glob("gtzan_tfds/synthetic_small/*"))
    features = tfds.builder_from_directory(str(folder)).info.features
    files = sorted(folder.glob("*-train.tfrecord-*"))
    assert len(files) > READ_FILES_AT_ONCE  # else the bound could not show
    file_of = {}
    for i, path in enumerate(files):
        for record in tf.data.TFRecordDataset(str(path)):
            file_of[features.deserialize_example(record)["song_id"].numpy().decode()] = i
    remaining = collections.Counter(file_of.values())
    dataset = DatasetConfig(name="synthetic_small", data_dir=small_data_dir)
    open_files, most_open = set(), 0
    for song in load_songs(dataset, "train", shuffle_files=True, seed=3):
        i = file_of[song["song_id"].numpy().decode()]
        open_files.add(i)
        most_open = max(most_open, len(open_files))
        remaining[i] -= 1
        if remaining[i] == 0:
            open_files.discard(i)
    assert sum(remaining.values()) == 0  # every song read once
    assert most_open <= READ_FILES_AT_ONCE
