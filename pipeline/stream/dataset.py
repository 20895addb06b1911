"""The tf.data graph: gtzan_tfds TFRecords -> songs -> windows -> batches of features.

    load_songs      TFDS shards, read in parallel (ReadConfig), only audio/label/song_id decoded
        |           training: shard order shuffled + a small buffer of songs shuffled (seeded)
    song -> windows int16 -> [resample to cfg.window.sample_rate] -> frame_windows, per song,
        |           in parallel; every window keeps its song's label and song_id
        |           training: [random window starts, augment.random_windows] -> blocks of
        |           cfg.shuffle_buffer windows (rebatch), each permuted (seeded, every epoch)
        |           evaluation: songs in file order, a song's windows consecutive (deterministic)
    batch           rebatch(batch_size), BEFORE the transform, so it is vectorised over the batch
    transform       one XLA-compiled function: int16 -> float32, [training: gain, mixup], the
        |           transform, [training: SpecAugment masks] (transform_placement "data"); with
        |           "model" the batches hold float32 windows and the model's first layer
        |           (transforms.TransformLayer) computes the same features
    prefetch        PREFETCH_BATCHES batches

Nothing holds a whole split: memory is bounded by the song shuffle buffer, one block of
windows and the prefetched batches (no ``.cache()``; TFDS's auto-cache is turned off), so it
stays flat whatever the number of songs.  Windows are kept as int16 until the transform when
no resampling is needed: a block then costs half as much.  Where the time goes, and why the
graph looks like this: docs/performance.md.

Prediction (``features_from_audio``, ``features_from_blocks`` for a file of any length) and the
benchmark use the same functions (``resample``,
``cut_windows``, ``audio_to_float``, ``make_transform``), so training, evaluation and
prediction share one implementation.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np
import tensorflow as tf

from core.audio import SAMPLE_RATE
from core.config import SPLITS, DatasetConfig, PipelineConfig
from core.errors import ConfigError, DatasetNotBuiltError
from core.resample import StreamResampler, resample
from pipeline.stream import augment, folds
from pipeline.stream.transforms import compiled_transform, make_transform
from pipeline.stream.windowing import (
    WindowStream,
    audio_to_float,
    cut_windows,
    frame_windows,
    num_windows,
    pad_to_cover,
)

AUTOTUNE = tf.data.AUTOTUNE
_DEFAULT = object()  # features_from_blocks: build the transform

# Training: songs shuffled in a buffer of this many (int16, ~1.3 MB each) before windowing;
# their windows are then permuted in blocks of PipelineConfig.shuffle_buffer windows.
SONG_SHUFFLE_BUFFER = 16
# Batches of features computed ahead of the consumer (a fixed depth, not AUTOTUNE: its buffer
# would grow over a long stream; 4 covers the gap while a new block of windows fills).
PREFETCH_BATCHES = 4
# tf.data autotuning may use at most this many bytes for its buffers (default: half the RAM).
AUTOTUNE_RAM_BUDGET = 256 << 20
# TFRecord files read at once, one song from each in turn: TFDS's default (16 files, 16 songs
# from each in a row) holds ~1 GB of songs in flight on a large split, and reading is not what
# sets the pace (the figures: docs/performance.md, "files read at once").
READ_FILES_AT_ONCE = 2


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
    """The ``tfds build`` command line that prepares ``dataset_cfg``, from any folder
    (``--imports`` registers the installed builder; without it only the repository root works)."""
    parts = ["tfds", "build", "gtzan_tfds", "--imports", "gtzan_tfds", "--config", dataset_cfg.name]
    source = _source(dataset_cfg)
    if source != "synthetic":
        placeholder = "/path/to/music" if source == "folder" else "/path/to/gtzan"
        parts += ["--manual_dir", manual_dir or placeholder]
    if dataset_cfg.data_dir:
        parts += ["--data_dir", dataset_cfg.data_dir]
    return " ".join(shlex.quote(p) for p in parts)


def _source(dataset_cfg: DatasetConfig) -> str:
    """Where the config's songs come from: "synthetic", "manual" (GTZAN) or "folder"."""
    config = builder_for(dataset_cfg).builder_config
    return getattr(config, "source", "manual")


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
    if _source(dataset_cfg) == "synthetic":
        builder.download_and_prepare()
    elif dataset_cfg.manual_dir:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=dataset_cfg.manual_dir)
        )
    else:
        where = dataset_cfg.data_dir or "the TFDS default data dir (~/tensorflow_datasets)"
        raise DatasetNotBuiltError(
            f"gtzan_tfds/{dataset_cfg.name} is not built in {where}. It needs your download "
            "(GTZAN: genres/<genre>/<genre>.000NN.au or .wav, the archive itself also works; "
            "the folder config: <label>/<song file>). "
            f"Build it with:\n    {build_command(dataset_cfg)}\n"
            "or pass its location (--manual-dir) so that it is built on first use."
        )
    return builder


def class_names(dataset_cfg: DatasetConfig) -> list[str]:
    """The dataset's labels in class-id order (its TFDS ``ClassLabel``), built on first use."""
    return list(ensure_built(dataset_cfg).info.features["label"].names)


def load_songs(
    dataset_cfg: DatasetConfig, split: str, *, shuffle_files: bool = False, seed: int = 42,
    input_context: Optional[tf.distribute.InputContext] = None,
) -> tf.data.Dataset:
    """Songs of one split: dicts ``audio`` int16 [n], ``label`` int64, ``song_id`` string.

    Shards are read in parallel (TFDS ReadConfig); only these three features are decoded.
    With ``shuffle_files`` the shard order is shuffled (seeded); otherwise the order is the
    stored one, the same on every pass.  With ``input_context`` (multi-worker training) TFDS
    gives this input pipeline every ``num_input_pipelines``-th TFRecord file only.  With
    ``dataset_cfg.folds`` the split is that of one cross-validation fold
    (``pipeline.stream.folds``): the pooled splits' songs, filtered by id.
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
        interleave_cycle_length=READ_FILES_AT_ONCE,
        interleave_block_length=1,
        input_context=input_context,
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
def song_to_windows(
    song: dict, cfg: PipelineConfig, rate_in: int = SAMPLE_RATE, seed: Optional[tf.Tensor] = None
) -> dict:
    """One song dict -> dict of its windows ``window`` [k, N], ``label`` [k], ``song_id`` [k].

    Windows stay int16 when no resampling is needed (converted with the transform, after
    batching); resampled songs give float32 windows.  With a ``seed`` (training with
    ``augment.random_offsets``) the k windows start at random samples instead of the grid.
    """
    audio = song["audio"]
    if cfg.window.sample_rate != rate_in:
        audio = resample(audio_to_float(audio), rate_in, cfg.window.sample_rate)
    if seed is None:
        windows = frame_windows(audio, cfg.window)
    else:
        windows = augment.random_windows(audio, cfg.window, seed)
    count = tf.shape(windows)[0]
    return {
        "window": windows,
        "label": tf.fill([count], tf.cast(song["label"], tf.int64)),
        "song_id": tf.fill([count], song["song_id"]),
    }


def _permute(block: dict, seed: tf.Tensor) -> dict:
    """The windows of a block (every field alike) in a seeded random order."""
    n = tf.shape(block["label"])[0]
    order = tf.argsort(tf.random.stateless_uniform([n], seed))
    return {k: tf.gather(v, order) for k, v in block.items()}


def training_windows(songs: tf.data.Dataset, cfg: PipelineConfig, rate_in: int) -> tf.data.Dataset:
    """Songs -> shuffled batches of windows (dicts), ``cfg.batch_size`` each.

    Songs are shuffled (a buffer of ``SONG_SHUFFLE_BUFFER``), cut into windows in parallel,
    gathered into blocks of ``cfg.shuffle_buffer`` windows (~``shuffle_buffer / 10`` songs), and
    each block is permuted (seeded, new every epoch).  ``rebatch`` moves whole tensors, never
    one window at a time: per-window tf.data elements cost more CPU than the log-mel itself
    (docs/performance.md).  Memory: one block and the song buffer, whatever the data size.
    """
    songs = songs.shuffle(SONG_SHUFFLE_BUFFER, seed=cfg.seed, reshuffle_each_iteration=True)
    if cfg.augment.random_offsets:
        songs = tf.data.Dataset.zip(songs, augment.seed_stream(cfg.seed, augment.OFFSETS))
        per_song = songs.map(lambda song, seed: song_to_windows(song, cfg, rate_in, seed),
                             num_parallel_calls=AUTOTUNE)
    else:
        per_song = songs.map(lambda song: song_to_windows(song, cfg, rate_in),
                             num_parallel_calls=AUTOTUNE)
    blocks = tf.data.Dataset.zip(
        per_song.rebatch(cfg.shuffle_buffer), augment.seed_stream(cfg.seed, augment.BLOCK_SHUFFLE)
    )
    return blocks.map(_permute, num_parallel_calls=AUTOTUNE).rebatch(cfg.batch_size)


def batches_from_songs(
    songs: tf.data.Dataset,
    cfg: PipelineConfig,
    *,
    training: bool,
    with_song_id: bool = False,
    rate_in: int = SAMPLE_RATE,
    jit_compile: bool = True,
    num_classes: Optional[int] = None,
    one_hot: bool = False,
) -> tf.data.Dataset:
    """Everything after reading: songs (dicts) -> batched ``(features, label[, song_id])``.

    ``make_dataset`` feeds it TFDS songs; tests and the benchmark feed it others.
    Training batches are augmented as ``cfg.augment`` says; labels are one-hot float vectors
    [B, num_classes] with mixup or ``one_hot`` (``num_classes`` needed then), else int64 ids.
    """
    cfg.validate()
    if training:
        batches = training_windows(songs, cfg, rate_in)
    else:  # file order, a song's windows consecutive (as unbatch().batch(), in one copy)
        per_song = songs.map(lambda song: song_to_windows(song, cfg, rate_in),
                             num_parallel_calls=AUTOTUNE, deterministic=True)
        batches = per_song.rebatch(cfg.batch_size)
    finish = make_batch_fn(cfg, with_song_id=with_song_id, jit_compile=jit_compile,
                           training=training, num_classes=num_classes, one_hot=one_hot)
    if training and cfg.augment.per_batch:
        batches = tf.data.Dataset.zip(batches, augment.seed_stream(cfg.seed, augment.BATCH))
    batches = batches.map(finish, num_parallel_calls=AUTOTUNE, deterministic=True)
    return batches.prefetch(PREFETCH_BATCHES).with_options(_options())


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.autotune.ram_budget = AUTOTUNE_RAM_BUDGET
    return options


def _transform_fn(cfg: PipelineConfig, jit_compile: bool):
    if jit_compile and cfg.transform.name != "raw":
        return compiled_transform(cfg.transform, cfg.window.sample_rate)
    return make_transform(cfg.transform, cfg.window.sample_rate)


def make_batch_fn(
    cfg: PipelineConfig,
    *,
    with_song_id: bool = False,
    jit_compile: bool = True,
    training: bool = False,
    num_classes: Optional[int] = None,
    one_hot: bool = False,
):
    """Batch dict (and a seed, when ``training`` with augmentation) -> ``(features, label[,
    song_id])``.  Features are raw float32 windows when ``cfg.transform_placement == "model"``;
    int16 windows are converted inside the (XLA-compiled, ``jit_compile``) transform."""
    in_data = cfg.transform_placement == "data"
    aug = cfg.augment if training and cfg.augment.per_batch else None
    mixup = aug is not None and aug.mixup_alpha > 0
    if (mixup or one_hot) and not num_classes:
        raise ValueError("one-hot labels (mixup) need num_classes")
    if aug is not None:
        features = augment.training_features(cfg, transform=in_data)
        if jit_compile and (in_data or aug.gain_db or mixup):
            features = tf.function(features, jit_compile=True)
    else:
        features = _transform_fn(cfg, jit_compile) if in_data else audio_to_float

    def finish(batch, seed=None):
        labels = batch["label"]
        if mixup or one_hot:
            labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        if aug is None:
            x = features(batch["window"])
        else:
            mixing = None
            if mixup:
                mixing = augment.mixup_weights(tf.shape(labels)[0], aug.mixup_alpha, seed)
                labels = augment.mix(labels, *mixing)
            x = features(batch["window"], seed, mixing)
        if with_song_id:
            return x, labels, batch["song_id"]
        return x, labels

    return finish


def count_windows(songs: tf.data.Dataset, cfg: PipelineConfig, rate_in: int = SAMPLE_RATE) -> int:
    """Windows in one pass over ``songs``: the fixed grid's count, which random offsets keep.
    Reads every song once (no windowing).  With it a repeated training stream gets its
    ``steps_per_epoch``."""
    rate_out = cfg.window.sample_rate

    def count(song):
        n = tf.cast(tf.shape(song["audio"])[0], tf.int64)
        n = (n * rate_out + rate_in - 1) // rate_in  # resample's length: ceil(n * out / in)
        return num_windows(n, cfg.window)

    counts = songs.map(count, num_parallel_calls=AUTOTUNE)
    return int(counts.reduce(tf.constant(0, tf.int32), lambda a, b: a + b))


def epoch_steps(cfg: PipelineConfig, split: str = "train") -> int:
    """Batches in one epoch of ``split`` (the last one partial), for ``steps_per_epoch``."""
    windows = count_windows(load_songs(cfg.dataset, split), cfg)
    return -(-windows // cfg.batch_size)


def make_dataset(
    cfg: PipelineConfig,
    split: str,
    *,
    training: bool,
    with_song_id: bool = False,
    jit_compile: bool = True,
    input_context: Optional[tf.distribute.InputContext] = None,
    one_hot: bool = False,
) -> tf.data.Dataset:
    """Batched ``(features, label)`` (or ``(features, label, song_id)``) of one split.

    training=True: shuffled shards, songs and windows (seeded by ``cfg.seed``; reshuffled
    every epoch), windows of many songs mixed in every batch, augmented as ``cfg.augment``
    says (labels one-hot with mixup).  training=False: deterministic order, all windows of a
    song consecutive, never augmented; ``one_hot`` gives one-hot labels (to validate a model
    compiled for mixup's soft labels).  ``jit_compile``: run the transform XLA-compiled inside
    tf.data (see docs/performance.md); ignored with placement "model".
    ``input_context`` (multi-worker training): this input pipeline reads only its share of
    the split's TFRecord files (batches keep ``cfg.batch_size``).
    """
    cfg.validate()
    songs = load_songs(cfg.dataset, split, shuffle_files=training, seed=cfg.seed,
                       input_context=input_context)
    soft = one_hot or (training and cfg.augment.mixup_alpha > 0)
    return batches_from_songs(
        songs, cfg, training=training, with_song_id=with_song_id, jit_compile=jit_compile,
        num_classes=len(class_names(cfg.dataset)) if soft else None, one_hot=one_hot,
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


def batch_transform(cfg: PipelineConfig, jit_compile: bool = True):
    """The transform ``features_from_blocks`` applies to each batch of windows (None when the
    model computes it, placement "model").  Build it once and pass it to every call: each new
    compiled function compiles again (seconds, and memory a long-running server keeps)."""
    if cfg.transform_placement != "data":
        return None
    return _transform_fn(cfg, jit_compile)


def features_from_blocks(
    blocks: Iterable[np.ndarray],
    cfg: PipelineConfig,
    batch_size: Optional[int] = None,
    *,
    transform=_DEFAULT,
    jit_compile: bool = True,
) -> Iterator[tf.Tensor]:
    """``features_from_audio`` of a file given as consecutive float blocks at 22,050 Hz.

    Memory is bounded by one block and one batch, whatever the file's length: the blocks are
    resampled to ``cfg.window.sample_rate`` by ``core.resample.StreamResampler`` (the state
    carried across blocks: the samples of ``resample`` on the whole file), cut by
    ``windowing.WindowStream`` (the windows of ``frame_windows``, with ``cut_windows``) and
    transformed batch by batch by the transform training compiles (``transform``: from
    ``batch_transform``, built here when not given).  A smaller last batch is zero-padded to a
    power of two before the transform and cut after it, so a compiled transform meets at most
    log2(batch_size) + 1 shapes however many files it serves.  Yields the batches of
    ``features_from_audio`` of the joined blocks (tests/test_long_audio.py).
    """
    cfg.validate()
    batch_size = batch_size or cfg.batch_size
    if transform is _DEFAULT:
        transform = batch_transform(cfg, jit_compile)
    resampler = StreamResampler(SAMPLE_RATE, cfg.window.sample_rate)
    windows = WindowStream(cfg.window, batch_size)

    def features(batches):
        for batch in batches:
            yield _padded_call(transform, batch, batch_size) if transform is not None else batch

    for block in blocks:
        yield from features(windows.push(resampler.process(block)))
    windows.push(resampler.flush())
    yield from features(windows.finish())


def _padded_call(fn, batch: tf.Tensor, batch_size: int) -> tf.Tensor:
    n = int(batch.shape[0])
    size = min(batch_size, 1 << max(n - 1, 0).bit_length())  # the next power of two
    if size == n:
        return fn(batch)
    return fn(tf.pad(batch, [[0, size - n], [0, 0]]))[:n]
