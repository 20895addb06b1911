"""The tf.data graph: gtzan_tfds TFRecords -> songs -> windows -> batches of features.

    load_songs      TFDS shards, read in parallel (ReadConfig), only audio/label/song_id decoded
        |           training: shard order shuffled + a small buffer of songs shuffled (seeded)
    song -> windows int16 -> [resample to cfg.window.sample_rate] -> frame_windows, per song,
        |           in parallel; every window keeps its song's label and song_id
        |           training: windows of 16 songs interleaved, then a bounded shuffle buffer
        |           evaluation: songs in file order, a song's windows consecutive (deterministic)
    batch           BEFORE the transform, so the transform is vectorised over the batch
    transform       int16 -> float32, then make_transform (transform_placement == "data"); with
        |           "model" the batches hold raw float32 windows and the model's first layer
        |           (transforms.TransformLayer) computes the same features
    prefetch        AUTOTUNE

Nothing holds a whole split: memory is bounded by the shuffle buffers and prefetching (no
``.cache()``; TFDS's auto-cache is turned off).  Windows are kept as int16 until they are
batched when no resampling is needed: the window shuffle buffer then costs half as much.

Prediction (``features_from_audio``) and the benchmark use the same functions (``resample``,
``cut_windows``, ``audio_to_float``, ``make_transform``), so training, evaluation and
prediction share one implementation.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from core.audio import SAMPLE_RATE
from core.config import SPLITS, DatasetConfig, PipelineConfig
from core.errors import ConfigError, DatasetNotBuiltError
from core.resample import resample
from pipeline.stream import folds
from pipeline.stream.transforms import compiled_transform, make_transform
from pipeline.stream.windowing import audio_to_float, cut_windows, frame_windows, pad_to_cover

AUTOTUNE = tf.data.AUTOTUNE

# Training: songs shuffled in a buffer of this many (int16, ~1.3 MB each) before windowing ...
SONG_SHUFFLE_BUFFER = 32
# ... and windows of this many songs interleaved before the window shuffle buffer.
SONGS_INTERLEAVED = 16


# --------------------------------------------------------------------------------------------
# which dataset: a gtzan_tfds config by name, a custom one as JSON, or one built earlier
def builder_for(dataset_cfg: DatasetConfig):
    """The TFDS builder of ``dataset_cfg.name``.

    The name is a gtzan_tfds config (``synthetic``, ``gtzan``, ...), a custom config as JSON
    like ``tfds build --config`` takes (``{"name": "synthetic_x10", "songs_per_genre": 160}``),
    or the name of a custom config built earlier into ``data_dir``.
    """
    import tensorflow_datasets as tfds

    import gtzan_tfds

    name = dataset_cfg.name
    if name.lstrip().startswith("{"):
        return gtzan_tfds.Builder(config=_custom_config(name), data_dir=dataset_cfg.data_dir)
    if name in gtzan_tfds.Builder.builder_configs:
        return gtzan_tfds.Builder(config=name, data_dir=dataset_cfg.data_dir)
    built = _built_copy(name, dataset_cfg.data_dir)
    if built is None:
        valid = ", ".join(gtzan_tfds.Builder.builder_configs)
        raise ConfigError(
            f"unknown dataset config {name!r}: not a gtzan_tfds config ({valid}) and not built in "
            f"{dataset_cfg.data_dir or 'the TFDS default data dir'}; a custom config is given as "
            'JSON, e.g. --dataset-config \'{"name": "synthetic_x10", "songs_per_genre": 160}\''
        )
    return tfds.builder_from_directory(str(built))


def _custom_config(text: str):
    import gtzan_tfds

    try:
        fields = json.loads(text)
        return gtzan_tfds.GtzanConfig(**fields)
    except (ValueError, TypeError) as e:  # bad JSON, unknown or invalid fields
        raise ConfigError(f"invalid dataset config {text!r}: {e}") from e


def _built_copy(name: str, data_dir: Optional[str]) -> Optional[Path]:
    """The newest built version folder of a custom config, if there is one."""
    import tensorflow_datasets as tfds

    root = Path(data_dir or tfds.core.constants.DATA_DIR).expanduser() / "gtzan_tfds" / name
    versions = sorted(p for p in root.glob("*.*.*") if (p / "dataset_info.json").exists())
    return versions[-1] if versions else None


def build_command(dataset_cfg: DatasetConfig, manual_dir: Optional[str] = None) -> str:
    """The ``tfds build`` command line that prepares ``dataset_cfg``."""
    parts = ["tfds", "build", "gtzan_tfds", "--config", dataset_cfg.name]
    if _needs_download(dataset_cfg):
        parts += ["--manual_dir", manual_dir or "/path/to/gtzan"]
    if dataset_cfg.data_dir:
        parts += ["--data_dir", dataset_cfg.data_dir]
    return " ".join(shlex.quote(p) for p in parts)


def _needs_download(dataset_cfg: DatasetConfig) -> bool:
    config = builder_for(dataset_cfg).builder_config
    return getattr(config, "source", "manual") != "synthetic"


def ensure_built(dataset_cfg: DatasetConfig):
    """The TFDS builder of ``dataset_cfg``, prepared (built on first use when possible).

    Builds the dataset when it needs no download (the synthetic configs) or when
    ``dataset_cfg.manual_dir`` says where the download is; otherwise raises
    ``DatasetNotBuiltError`` with the command that builds it.
    """
    import tensorflow_datasets as tfds

    dataset_cfg.validate()
    builder = builder_for(dataset_cfg)
    if builder.is_prepared():
        return builder
    if not _needs_download(dataset_cfg):
        builder.download_and_prepare()
    elif dataset_cfg.manual_dir:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=dataset_cfg.manual_dir)
        )
    else:
        where = dataset_cfg.data_dir or "the TFDS default data dir (~/tensorflow_datasets)"
        raise DatasetNotBuiltError(
            f"gtzan_tfds/{dataset_cfg.name} is not built in {where}. It needs your download "
            "(GTZAN: genres/<genre>/<genre>.000NN.au or .wav, the archive itself also works). "
            f"Build it with:\n    {build_command(dataset_cfg)}\n"
            "or pass its location (--manual-dir) so that it is built on first use."
        )
    return builder


def class_names(dataset_cfg: DatasetConfig) -> list[str]:
    """The dataset's labels in class-id order (its TFDS ``ClassLabel``), built on first use."""
    return list(ensure_built(dataset_cfg).info.features["label"].names)


def load_songs(
    dataset_cfg: DatasetConfig, split: str, *, shuffle_files: bool = False, seed: int = 42
) -> tf.data.Dataset:
    """Songs of one split: dicts ``audio`` int16 [n], ``label`` int64, ``song_id`` string.

    Shards are read in parallel (TFDS ReadConfig); only these three features are decoded.
    With ``shuffle_files`` the shard order is shuffled (seeded); otherwise the order is the
    stored one, the same on every pass.  With ``dataset_cfg.folds`` the split is that of one
    cross-validation fold (``pipeline.stream.folds``): the pooled splits' songs, filtered by id.
    """
    import tensorflow_datasets as tfds

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    builder = ensure_built(dataset_cfg)
    read_config = tfds.ReadConfig(
        shuffle_seed=seed if shuffle_files else None,
        try_autocache=False,  # never cache a whole split in memory
        num_parallel_calls_for_interleave_files=AUTOTUNE,
        num_parallel_calls_for_decode=AUTOTUNE,
    )
    wanted = tfds.decode.PartialDecoding({"audio": True, "label": True, "song_id": True})
    if not dataset_cfg.folds:
        return builder.as_dataset(
            split=split, shuffle_files=shuffle_files, read_config=read_config, decoders=wanted
        )
    ids = folds.fold_song_ids(builder, dataset_cfg, split)
    pooled = builder.as_dataset(split=dataset_cfg.fold_splits, shuffle_files=shuffle_files,
                                read_config=read_config, decoders=wanted)
    return folds.keep_songs(pooled, ids)


# --------------------------------------------------------------------------------------------
# songs -> windows -> batches
def song_to_windows(song: dict, cfg: PipelineConfig, rate_in: int = SAMPLE_RATE) -> dict:
    """One song dict -> dict of its windows ``window`` [k, N], ``label`` [k], ``song_id`` [k].

    Windows stay int16 when no resampling is needed (converted after batching); resampled
    songs give float32 windows.
    """
    audio = song["audio"]
    if cfg.window.sample_rate != rate_in:
        audio = resample(audio_to_float(audio), rate_in, cfg.window.sample_rate)
    windows = frame_windows(audio, cfg.window)
    count = tf.shape(windows)[0]
    return {
        "window": windows,
        "label": tf.fill([count], tf.cast(song["label"], tf.int64)),
        "song_id": tf.fill([count], song["song_id"]),
    }


def _own_windows(song_windows: dict) -> tf.data.Dataset:
    """A song's windows one by one, each in its own buffer.

    A slice of a tensor may share the song's buffer (TF does that for aligned slices): one
    such window waiting in the shuffle buffer would keep its whole song alive, and peak
    memory would grow far beyond ``shuffle_buffer`` windows.  DeepCopy prevents that.
    """
    return tf.data.Dataset.from_tensor_slices(song_windows).map(
        lambda w: {**w, "window": tf.raw_ops.DeepCopy(x=w["window"])}
    )


def batches_from_songs(
    songs: tf.data.Dataset,
    cfg: PipelineConfig,
    *,
    training: bool,
    with_song_id: bool = False,
    rate_in: int = SAMPLE_RATE,
    jit_compile: bool = True,
) -> tf.data.Dataset:
    """Everything after reading: songs (dicts) -> batched ``(features, label[, song_id])``.

    ``make_dataset`` feeds it TFDS songs; tests and the benchmark feed it others.
    """
    cfg.validate()
    to_windows = lambda song: song_to_windows(song, cfg, rate_in)  # noqa: E731
    if training:
        songs = songs.shuffle(SONG_SHUFFLE_BUFFER, seed=cfg.seed, reshuffle_each_iteration=True)
        per_song = songs.map(to_windows, num_parallel_calls=AUTOTUNE)
        windows = per_song.interleave(
            _own_windows, cycle_length=SONGS_INTERLEAVED, block_length=1
        )
        windows = windows.shuffle(cfg.shuffle_buffer, seed=cfg.seed, reshuffle_each_iteration=True)
    else:
        per_song = songs.map(to_windows, num_parallel_calls=AUTOTUNE, deterministic=True)
        windows = per_song.unbatch()  # a song's windows stay consecutive, songs in order
    batches = windows.batch(cfg.batch_size)
    finish = make_batch_fn(cfg, with_song_id=with_song_id, jit_compile=jit_compile)
    return batches.map(finish, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)


def _transform_fn(cfg: PipelineConfig, jit_compile: bool):
    if jit_compile and cfg.transform.name != "raw":
        return compiled_transform(cfg.transform, cfg.window.sample_rate)
    return make_transform(cfg.transform, cfg.window.sample_rate)


def make_batch_fn(cfg: PipelineConfig, *, with_song_id: bool = False, jit_compile: bool = True):
    """Batch dict -> ``(features, label[, song_id])``; features are raw float32 windows when
    ``cfg.transform_placement == "model"``.  ``jit_compile``: XLA-compile the transform."""
    transform = _transform_fn(cfg, jit_compile) if cfg.transform_placement == "data" else None

    def finish(batch):
        x = audio_to_float(batch["window"])
        if transform is not None:
            x = transform(x)
        if with_song_id:
            return x, batch["label"], batch["song_id"]
        return x, batch["label"]

    return finish


def make_dataset(
    cfg: PipelineConfig,
    split: str,
    *,
    training: bool,
    with_song_id: bool = False,
    jit_compile: bool = True,
) -> tf.data.Dataset:
    """Batched ``(features, label)`` (or ``(features, label, song_id)``) of one split.

    training=True: shuffled shards, songs and windows (seeded by ``cfg.seed``; reshuffled
    every epoch), windows of many songs interleaved so that a batch is not one song.
    training=False: deterministic order, all windows of a song consecutive.
    ``jit_compile``: run the transform XLA-compiled inside tf.data (measured 1.3-1.5x faster
    than plain tf.signal on CPU; see pipeline/bench.py); ignored with placement "model".
    """
    cfg.validate()
    songs = load_songs(cfg.dataset, split, shuffle_files=training, seed=cfg.seed)
    return batches_from_songs(
        songs, cfg, training=training, with_song_id=with_song_id, jit_compile=jit_compile
    )


# --------------------------------------------------------------------------------------------
# prediction on one file of any length
def features_from_audio(
    audio: np.ndarray,
    cfg: PipelineConfig,
    batch_size: Optional[int] = None,
    *,
    apply_transform: Optional[bool] = None,
    pad_short: bool = False,
    jit_compile: bool = True,
) -> tf.data.Dataset:
    """Batches of features ``[b, ...]`` of a whole file (float audio at 22,050 Hz).

    Streams: windows are cut per batch (``windowing.cut_windows``, the cutter training uses)
    and transformed batch by batch, so a 10-minute file needs the audio plus one batch in
    memory, whatever the overlap.  The windows are exactly those of ``frame_windows`` (same
    count and padding rule).  ``apply_transform`` defaults to
    ``cfg.transform_placement == "data"``: with "model" the batches are raw windows for a
    model that starts with ``TransformLayer``.  ``pad_short=True`` zero-pads a file shorter
    than one window to one window instead of yielding nothing.
    """
    cfg.validate()
    batch_size = batch_size or cfg.batch_size
    if apply_transform is None:
        apply_transform = cfg.transform_placement == "data"
    audio = audio_to_float(tf.convert_to_tensor(audio))
    if audio.shape.rank != 1:
        raise ValueError(f"expected mono audio [n], got shape {audio.shape}")
    audio = resample(audio, SAMPLE_RATE, cfg.window.sample_rate)
    audio, count = pad_to_cover(audio, cfg.window, pad_short=pad_short)
    transform = _transform_fn(cfg, jit_compile) if apply_transform else None

    def cut(first):
        first = tf.cast(first, tf.int32)
        windows = cut_windows(audio, first, tf.minimum(batch_size, count - first), cfg.window)
        return transform(windows) if transform is not None else windows

    return (
        tf.data.Dataset.range(0, int(count), batch_size)
        .map(cut, num_parallel_calls=AUTOTUNE, deterministic=True)
        .prefetch(AUTOTUNE)
    )
