"""Configuration of the streaming pipeline: one source of truth.

The CLIs build their flags from these dataclasses, tuning searches over their fields, tests
construct them directly, and a run directory stores them (``config.json``) so that evaluation
and prediction rebuild exactly the pipeline a model was trained with.  Defaults follow the seed
study: 22,050 Hz, 3 s windows every 3 s, n_fft 2048, hop 512, 128 mels, 20 MFCC.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from core import musicnn_input
from core.audio import SAMPLE_RATE
from core.errors import ConfigError

# "musicnn": the pretrained musicnn networks' own log-mel input (core/musicnn_input.py)
TRANSFORMS = ("raw", "fft", "stft", "mel", "mfcc", "musicnn")
TRANSFORM_PLACEMENTS = ("data", "model")  # run the transform in tf.data or as the model's first layer
SPLITS = ("train", "validation", "test")
PAD_MODES = ("constant", "reflect")  # how centred STFT frames are padded at the ends
MIN_FOLDS = 3  # k-fold: a test fold, a validation fold and at least one training fold


@dataclasses.dataclass
class DatasetConfig:
    """Which gtzan_tfds config to read, and where its TFRecords live."""

    # A gtzan_tfds config: one of its BUILDER_CONFIGS, a custom one as JSON
    # ('{"name": "synthetic_x10", "songs_per_genre": 160}'), or a custom one built earlier.
    # pipeline.stream.dataset.builder_for resolves it (and says which names are valid).
    name: str = "synthetic"
    data_dir: Optional[str] = None  # TFDS data dir; None = TFDS default (~/tensorflow_datasets)
    manual_dir: Optional[str] = None  # where a download is, to build the dataset on first use
    # k-fold cross-validation by song (pipeline.stream.folds): folds > 0 pools the songs of
    # fold_splits, deals them into `folds` genre-stratified folds (seeded by fold_seed), and
    # makes fold `fold` the test split, fold (fold + 1) % folds the validation split and the
    # other folds the train split.  0 = the dataset's own splits.
    folds: int = 0
    fold: int = 0
    fold_seed: int = 42
    fold_splits: str = "train+validation+test"  # TFDS split syntax: the splits pooled
    # The embedding store (pipeline.stream.embedding_store): an approach on a frozen network
    # (musicnn) reads that network's outputs, computed once per (network, window and input
    # config, built dataset) and kept, instead of passing every song through it on every run
    # and fold.  embeddings False: compute them in the stream every time.  embedding_dir: where
    # stores live (None: beside the dataset, <data_dir>/gtzan_tfds_embeddings/<config>/<version>).
    # Like data_dir, neither is part of what a run trained (results are the same).
    embeddings: bool = True
    embedding_dir: Optional[str] = None

    def validate(self) -> None:
        if not self.name.strip():
            raise ConfigError("the dataset config name is empty")
        if self.folds == 0:
            return
        if self.folds < MIN_FOLDS:
            raise ConfigError(
                f"folds must be 0 (the dataset's own splits) or at least {MIN_FOLDS} (test, "
                f"validation and at least one training fold), got {self.folds}"
            )
        if not 0 <= self.fold < self.folds:
            raise ConfigError(f"fold must be in 0..{self.folds - 1}, got {self.fold}")
        parts = self.fold_splits.split("+")
        if not parts or any(p not in SPLITS for p in parts) or len(set(parts)) != len(parts):
            raise ConfigError(
                f"fold_splits {self.fold_splits!r} must join distinct splits of "
                f"{', '.join(SPLITS)} with '+', e.g. 'train+validation+test'"
            )


@dataclasses.dataclass
class WindowConfig:
    """How songs are resampled and cut into windows."""

    sample_rate: int = SAMPLE_RATE  # target rate; != 22,050 resamples every song
    window_seconds: float = 3.0
    step_seconds: float = 3.0  # < window_seconds gives overlapping windows
    pad_end: bool = False  # True: zero-pad a last partial window; False: drop it

    @property
    def window_length(self) -> int:
        """Samples per window at the target rate."""
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def step_length(self) -> int:
        return int(round(self.step_seconds * self.sample_rate))

    def validate(self) -> None:
        if self.sample_rate <= 0:
            raise ConfigError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.window_seconds <= 0:
            raise ConfigError(f"window_seconds must be positive, got {self.window_seconds}")
        if self.step_seconds <= 0:
            raise ConfigError(f"step_seconds must be positive, got {self.step_seconds}")
        if self.window_length < 1 or self.step_length < 1:
            raise ConfigError("window and step must each hold at least one sample")


@dataclasses.dataclass
class TransformConfig:
    """Which transform turns a window into features, with librosa's parameter names.

    The ``"musicnn"`` transform ignores every other field: its STFT, mel bands and log are
    fixed by the pretrained networks (``core.musicnn_input``); it needs 16 kHz windows of at
    least ``musicnn_input.MIN_WINDOW_LENGTH`` samples, which ``validate`` checks.
    """

    name: str = "mel"  # one of TRANSFORMS
    n_fft: int = 2048
    hop_length: int = 512
    win_length: Optional[int] = None  # None = n_fft, as in librosa
    n_mels: int = 128
    n_mfcc: int = 20
    fmin: float = 0.0
    fmax: Optional[float] = None  # None = sample_rate / 2
    center: bool = True  # pad n_fft // 2 on each side (frames = 1 + N // hop), as librosa does
    pad_mode: str = "constant"  # centre padding: "constant" (zeros, librosa 0.10+) or "reflect"
    amin: float = 1e-10  # floor of power before the log (librosa.power_to_db)
    top_db: Optional[float] = 80.0  # dynamic range kept below each window's peak; None = all

    def validate(self, sample_rate: int = SAMPLE_RATE, window_length: Optional[int] = None) -> None:
        if self.name not in TRANSFORMS:
            raise ConfigError(
                f"unknown transform {self.name!r}; valid: {', '.join(TRANSFORMS)}"
            )
        if self.name == "musicnn":
            musicnn_input.check_window(sample_rate, window_length)
            return
        for field in ("n_fft", "hop_length", "n_mels", "n_mfcc"):
            if getattr(self, field) <= 0:
                raise ConfigError(f"{field} must be positive, got {getattr(self, field)}")
        win = self.win_length or self.n_fft
        if win > self.n_fft:
            raise ConfigError(f"win_length ({win}) must not exceed n_fft ({self.n_fft})")
        n_bins = self.n_fft // 2 + 1
        if self.name in ("mel", "mfcc") and self.n_mels > n_bins:
            raise ConfigError(
                f"n_mels ({self.n_mels}) must not exceed n_fft/2+1 ({n_bins}) frequency bins"
            )
        if self.name == "mfcc" and self.n_mfcc > self.n_mels:
            raise ConfigError(f"n_mfcc ({self.n_mfcc}) must not exceed n_mels ({self.n_mels})")
        nyquist = sample_rate / 2
        fmax = self.fmax if self.fmax is not None else nyquist
        if not 0 <= self.fmin < fmax <= nyquist:
            raise ConfigError(
                f"need 0 <= fmin < fmax <= sample_rate/2 ({nyquist:g} Hz); "
                f"got fmin={self.fmin:g}, fmax={fmax:g}"
            )
        if self.pad_mode not in PAD_MODES:
            raise ConfigError(
                f"unknown pad_mode {self.pad_mode!r}; valid: {', '.join(PAD_MODES)}"
            )
        if (
            window_length is not None
            and self.name in ("stft", "mel", "mfcc")
            and self.center
            and self.pad_mode == "reflect"
            and window_length <= self.n_fft // 2
        ):
            raise ConfigError(
                f"pad_mode 'reflect' needs windows longer than n_fft/2 ({self.n_fft // 2} "
                f"samples), got {window_length}; use pad_mode 'constant'"
            )
        if (
            window_length is not None
            and self.name in ("stft", "mel", "mfcc")
            and not self.center
            and window_length < self.n_fft
        ):
            raise ConfigError(
                f"window of {window_length} samples is shorter than n_fft ({self.n_fft})"
            )


@dataclasses.dataclass
class AugmentConfig:
    """Augmentation of the training stream (``pipeline.stream.augment``); never applied to
    evaluation, prediction or the scikit-learn approaches (which fit on the fixed grid).

    Every random draw is stateless and seeded from ``PipelineConfig.seed``, different in each
    epoch.  Masks act on the time-frequency transforms (stft, mel; mfcc: on its log-mel before
    the DCT) and are ignored for raw, fft and musicnn.  Defaults: measured on the real 50-clip
    sample, docs/augmentation.md.
    """

    random_offsets: bool = False  # windows start anywhere in the song, drawn again each epoch
    gain_db: float = 0.0  # random gain, uniform in [-gain_db, +gain_db] dB per window; 0 = off
    mixup_alpha: float = 0.0  # mixup of window pairs (waveforms, soft labels), Beta(a, a); 0 = off
    time_masks: int = 0  # SpecAugment time masks per window
    time_mask_frames: int = 13  # widest time mask, in frames (~0.3 s at hop 512)
    freq_masks: int = 0  # SpecAugment frequency masks per window
    freq_mask_bins: int = 16  # widest frequency mask, in mel bands (stft: frequency bins)

    def validate(self) -> None:
        for name in ("gain_db", "mixup_alpha", "time_masks", "freq_masks"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("time_mask_frames", "freq_mask_bins"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def masks(self) -> bool:
        return self.time_masks > 0 or self.freq_masks > 0

    @property
    def per_batch(self) -> bool:
        """Whether batches are augmented (gain, mixup, masks); random offsets act per song."""
        return self.gain_db > 0 or self.mixup_alpha > 0 or self.masks


@dataclasses.dataclass
class PipelineConfig:
    """Everything the tf.data graph needs, from TFRecords to batches."""

    dataset: DatasetConfig = dataclasses.field(default_factory=DatasetConfig)
    window: WindowConfig = dataclasses.field(default_factory=WindowConfig)
    transform: TransformConfig = dataclasses.field(default_factory=TransformConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    batch_size: int = 32
    # Training windows shuffled together: the stream of (shuffled) songs is cut into blocks of
    # this many windows and each block is permuted.  Bounded in windows, hence in bytes
    # (~130 KB per int16 3 s window), so memory does not grow with the data.
    shuffle_buffer: int = 256
    seed: int = 42
    transform_placement: str = "data"  # one of TRANSFORM_PLACEMENTS

    def validate(self) -> "PipelineConfig":
        self.dataset.validate()
        self.window.validate()
        self.transform.validate(self.window.sample_rate, self.window.window_length)
        self.augment.validate()
        if self.augment.masks and self.transform_placement == "model" and self.transform.name in (
            "stft", "mel", "mfcc"
        ):
            raise ConfigError(
                "time/frequency masks (--time-masks, --freq-masks) act on the features in "
                "tf.data: use --transform-placement data, or set both to 0"
            )
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")
        if self.shuffle_buffer <= 0:
            raise ConfigError(f"shuffle_buffer must be positive, got {self.shuffle_buffer}")
        if self.transform_placement not in TRANSFORM_PLACEMENTS:
            raise ConfigError(
                f"unknown transform placement {self.transform_placement!r}; "
                f"valid: {', '.join(TRANSFORM_PLACEMENTS)}"
            )
        return self

    # --- (de)serialisation, for config.json in run directories -----------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PipelineConfig":
        d = dict(d)
        return cls(
            dataset=_from_dict(DatasetConfig, d.pop("dataset", {})),
            window=_from_dict(WindowConfig, d.pop("window", {})),
            transform=_from_dict(TransformConfig, d.pop("transform", {})),
            augment=_from_dict(AugmentConfig, d.pop("augment", {})),
            **_known_fields(cls, d),
        )


def _known_fields(cls, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    return {k: v for k, v in d.items() if k in names}


def _from_dict(cls, d: dict[str, Any]):
    return cls(**_known_fields(cls, d))


# --- studies: seed repeats of a k-fold evaluation, parameter sweeps -------------------------
SWEEP_GRIDS = ("product", "one-at-a-time")


@dataclasses.dataclass
class RepeatConfig:
    """Seed repeats of a k-fold evaluation (``pipeline.experiments.repeats``).

    Every fold is trained ``repeats`` times, with seeds ``seed``, ``seed + 1``, ...; the folds
    themselves stay the same (``DatasetConfig.fold_seed``).  Approaches that barely depend on
    the seed (scikit-learn, the frozen musicnn probe) run once whatever ``repeats`` says.
    """

    repeats: int = 1

    def validate(self, all_folds: bool = True) -> "RepeatConfig":
        """``all_folds``: whether every fold of a k-fold evaluation runs (repeats need one)."""
        if self.repeats < 1:
            raise ConfigError(f"repeats must be at least 1, got {self.repeats}")
        if self.repeats > 1 and not all_folds:
            raise ConfigError("--repeats repeats a k-fold evaluation: give it with --folds K "
                              "(and without --fold)")
        return self


@dataclasses.dataclass
class SweepConfig:
    """How the ``--sweep`` axes of ``pipeline.sweep`` combine into settings
    (``pipeline.experiments.sweep``): ``product`` (every combination) or ``one-at-a-time``
    (each axis varied alone, the others at the base configuration)."""

    sweep_grid: str = "product"

    def validate(self) -> "SweepConfig":
        if self.sweep_grid not in SWEEP_GRIDS:
            raise ConfigError(
                f"unknown sweep grid {self.sweep_grid!r}; valid: {', '.join(SWEEP_GRIDS)}"
            )
        return self


STRATEGIES = ("default", "mirrored", "multi-worker")


@dataclasses.dataclass
class TrainConfig:
    """What is trained and how: the approach, its hyperparameters and the fit schedule."""

    model: str = "cnn2d"  # a models.registry approach name
    hparams: dict = dataclasses.field(default_factory=dict)  # overrides of the approach defaults
    epochs: int = 20
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    patience: int = 5  # early stopping on validation accuracy
    pretrain_epochs: int = 10  # 1st stage: encoder_classifier autoencoder, musicnn_finetune head
    # scikit-learn approaches: after scoring on validation, refit on train + validation (they
    # have no epochs to choose there; Keras approaches stop early on validation instead)
    refit: bool = True
    strategy: str = "default"  # tf.distribute strategy, one of STRATEGIES
    deterministic: bool = True  # tf.config.experimental.enable_op_determinism()
    # --- distributed training without model.fit (pipeline/experiments/distributed_training.py)
    # Train with the tf.distribute custom loop instead of model.fit; always on with
    # --strategy multi-worker across several workers (Keras 3.15's fit cannot run there).
    custom_loop: bool = False
    # Multi-worker: also checkpoint every this many steps inside an epoch (0: at epoch ends only)
    checkpoint_steps: int = 0

    def validate(self) -> "TrainConfig":
        if self.epochs <= 0:
            raise ConfigError(f"epochs must be positive, got {self.epochs}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.patience < 0 or self.pretrain_epochs < 0:
            raise ConfigError("patience and pretrain_epochs must not be negative")
        if self.checkpoint_steps < 0:
            raise ConfigError(f"checkpoint_steps must not be negative, got {self.checkpoint_steps}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {self.strategy!r}; valid: {', '.join(STRATEGIES)}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, d)


# --- Decoded-length limits and the page's server (issue 20) -----------------------------------
# How much decoded audio each entry point accepts.  A file's length is read from its header
# before decoding (gtzan_tfds.audio_io), so a small file holding hours of audio (a 1.9 MB FLAC of
# 3 hours) is refused at once; formats with no reliable length are stopped at the limit.
BUILD_MAX_SONG_SECONDS = 900.0  # the builder, per song (GtzanConfig.max_song_seconds)
EXPORT_MAX_INPUT_SECONDS = 600.0  # the SavedModel holds its whole input: stated in its metadata


@dataclasses.dataclass
class PredictConfig:
    """``python -m pipeline.predict``: streamed, so any length by default."""

    max_audio_seconds: Optional[float] = dataclasses.field(default=None, metadata={
        "help": "refuse files with more audio than this, in seconds (default None: any length; "
                "files are decoded and predicted in blocks)"})

    def validate(self) -> "PredictConfig":
        if self.max_audio_seconds is not None and self.max_audio_seconds <= 0:
            raise ConfigError(f"max_audio_seconds must be positive, got {self.max_audio_seconds}")
        return self


@dataclasses.dataclass
class ServeConfig:
    """``python -m pipeline.serve``: the page on waitress, bounded per request."""

    host: str = dataclasses.field(default="127.0.0.1", metadata={
        "help": "address to listen on (127.0.0.1: this machine only)"})
    port: int = dataclasses.field(default=8000, metadata={"help": "port"})
    max_upload_mb: float = dataclasses.field(default=50.0, metadata={
        "help": "largest upload accepted, in MB (larger: 413)"})
    max_audio_seconds: float = dataclasses.field(default=600.0, metadata={
        "help": "longest audio accepted, in seconds of decoded audio (longer: 400, decided "
                "from the header before decoding)"})
    request_timeout_seconds: float = dataclasses.field(default=60.0, metadata={
        "help": "time limit of one prediction, waiting for its turn included (past it: 503)"})
    threads: int = dataclasses.field(default=16, metadata={
        "help": "waitress worker threads: requests answered at once (predictions still run one "
                "at a time; a request waiting for its turn holds a thread)"})
    top: int = dataclasses.field(default=3, metadata={"help": "genres listed"})

    def validate(self) -> "ServeConfig":
        for name in ("max_upload_mb", "max_audio_seconds", "request_timeout_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be in 1..65535, got {self.port}")
        if self.threads < 1 or self.top < 1:
            raise ConfigError("threads and top must be at least 1")
        return self
