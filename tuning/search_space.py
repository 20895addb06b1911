"""The search space of `tuning.search`, in one place: pipeline, training and model hyperparameters.

Every hyperparameter has the name of the config field or builder argument it sets, so a trial's
values read like a config and map onto it directly:

    pipeline  window_seconds, sample_rate (WindowConfig); n_fft, hop_length, n_mels, n_mfcc
              (TransformConfig, librosa's names) - only those the transform uses;
              augmentation of the training stream (AugmentConfig): random_offsets, gain_db,
              mixup_alpha, time_masks, freq_masks (the masks on stft/mel/mfcc only)
    training  learning_rate, optimizer, batch_size
    model     the approach's own hyperparameters (``models.registry`` ``Approach.defaults``):
              blocks, filters, kernel_size, units, layers, dense_units, dropout, ...

`SearchSpace.for_approach` picks the entries that apply to one (model, transform); anything
not in the space keeps the value of the base config (the CLI flags).  Combinations that cannot
work (``n_mels > n_fft/2+1``, a hop longer than the FFT frame, a front-end stride longer than
its kernel, ...) are rejected by `SearchSpace.is_valid`, which the oracles use to sample only
valid trials (see `tuning.tuners`), so the search never spends a trial on a ConfigError.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any, Iterable, Mapping, Optional, Union

from core.config import ConfigError, PipelineConfig, TrainConfig

# --------------------------------------------------------------------------------------------
# entries


@dataclasses.dataclass(frozen=True)
class Choice:
    """A discrete choice (ordered when numeric, as keras_tuner's hp.Choice)."""

    values: tuple

    def declare(self, hp, name: str):
        if set(self.values) == {False, True} and all(isinstance(v, bool) for v in self.values):
            return hp.Boolean(name)  # hp.Choice would store True/False as 1/0
        return hp.Choice(name, list(self.values))

    def describe(self) -> str:
        return "{" + ", ".join(_fmt(v) for v in self.values) + "}"


@dataclasses.dataclass(frozen=True)
class FloatRange:
    """A continuous range; ``sampling="log"`` for scale parameters such as the learning rate."""

    min_value: float
    max_value: float
    sampling: str = "linear"

    def declare(self, hp, name: str):
        return hp.Float(name, self.min_value, self.max_value, sampling=self.sampling)

    def describe(self) -> str:
        return f"[{_fmt(self.min_value)}, {_fmt(self.max_value)}] ({self.sampling})"


@dataclasses.dataclass(frozen=True)
class Fixed:
    """Not searched: recorded with the trial so the table and the retrained run show it."""

    value: Any

    def declare(self, hp, name: str):
        return hp.Fixed(name, self.value)

    def describe(self) -> str:
        return f"= {_fmt(self.value)} (fixed)"


Entry = Union[Choice, FloatRange, Fixed]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


# --------------------------------------------------------------------------------------------
# the default space

# Pipeline: which entries apply to which transform.  Windows shorter than the study's 3 s give
# more (noisier) examples, longer ones more context; every choice below is valid with every
# other one (n_mels <= 257 = 512/2+1, n_mfcc <= min n_mels) except hop_length > n_fft, which
# is_valid rejects.
PIPELINE_SPACE: dict[str, Entry] = {
    "window_seconds": Choice((1.5, 3.0, 5.0)),
    "sample_rate": Choice((22050, 16000, 11025)),
    "n_fft": Choice((512, 1024, 2048)),
    "hop_length": Choice((256, 512, 1024)),
    "n_mels": Choice((64, 96, 128)),
    "n_mfcc": Choice((13, 20, 30, 40)),
}
PIPELINE_FIELDS_BY_TRANSFORM = {
    "raw": ("window_seconds", "sample_rate"),
    "fft": ("window_seconds", "sample_rate"),
    "stft": ("window_seconds", "sample_rate", "n_fft", "hop_length"),
    "mel": ("window_seconds", "sample_rate", "n_fft", "hop_length", "n_mels"),
    "mfcc": ("window_seconds", "sample_rate", "n_fft", "hop_length", "n_mels", "n_mfcc"),
    "musicnn": (),  # fixed by the pretrained networks (16 kHz, 187 x 96 patches)
}
# Augmentation (AugmentConfig), searched with the pipeline entries; masks need time-frequency
# features.  0 / False (off) is always one of the choices.
AUGMENT_SPACE: dict[str, Entry] = {
    "random_offsets": Choice((False, True)),
    "gain_db": Choice((0.0, 3.0, 6.0)),
    "mixup_alpha": Choice((0.0, 0.2, 0.4)),
    "time_masks": Choice((0, 1, 2)),
    "freq_masks": Choice((0, 1, 2)),
}
AUGMENT_ONLY_FOR = {"time_masks": ("stft", "mel", "mfcc"), "freq_masks": ("stft", "mel", "mfcc")}
AUGMENT_FIELDS = tuple(AUGMENT_SPACE)
WINDOW_FIELDS = ("window_seconds", "sample_rate")
TRANSFORM_FIELDS = ("n_fft", "hop_length", "n_mels", "n_mfcc")

TRAINING_SPACE: dict[str, Entry] = {
    "learning_rate": FloatRange(1e-4, 1e-2, sampling="log"),
    "optimizer": Choice(("adam", "adamw", "rmsprop")),
    "batch_size": Choice((16, 32, 64)),
}
TRAINING_FIELDS = tuple(TRAINING_SPACE)  # TrainConfig fields, and PipelineConfig.batch_size

# Model: by builder-argument name, so a new approach whose builder uses these names is searched
# without touching this file.  An approach argument with no entry here keeps its default (or
# the --hparam value); `SearchSpace.untuned` lists them.
MODEL_SPACE: dict[str, Entry] = {
    "blocks": Choice((1, 2, 3, 4)),
    "filters": Choice((8, 16, 32, 64)),
    "kernel_size": Choice((3, 5, 7)),
    "units": Choice((32, 64, 128)),
    "layers": Choice((1, 2)),
    "bidirectional": Choice((False, True)),
    "dense_units": Choice((0, 32, 64, 128)),
    "dropout": Choice((0.0, 0.1, 0.2, 0.3, 0.4, 0.5)),
    "latent_channels": Choice((4, 8, 16)),
    "front_kernel": Choice((64, 128, 256, 512)),
    "front_stride": Choice((16, 32, 64)),
}
# Entries of one approach only, over the shared ones above: musicnn_finetune's second stage
# fine-tunes pretrained blocks (learning rates 10x lower than from scratch); its own
# hyperparameters (models/musicnn_finetune.py).
APPROACH_SPACE: dict[str, dict[str, Entry]] = {
    "musicnn_finetune": {
        "learning_rate": FloatRange(1e-5, 1e-3, sampling="log"),
        "head_learning_rate": FloatRange(1e-4, 1e-2, sampling="log"),
        "unfreeze": Choice((0, 1, 2)),
        "dense_units": Choice((0, 64, 128)),
        "weights": Choice(("msd", "mtt")),
        "layer": Choice(("max_pool", "mean_pool", "penultimate")),
    },
}
# Builder arguments that only act on some inputs (cnn1d's strided front end: 1-D features).
MODEL_FIELDS_ONLY_FOR = {
    "front_kernel": ("raw", "fft"),
    "front_stride": ("raw", "fft"),
}

TUNE_PARTS = ("all", "model", "pipeline")


# --------------------------------------------------------------------------------------------
# the space of one search


@dataclasses.dataclass
class SearchSpace:
    """The hyperparameters of one search over one approach, and their mapping onto configs."""

    model: str
    transform: str
    entries: dict[str, Entry]  # in declaration order: pipeline, training, model

    # --- construction -------------------------------------------------------------------
    @classmethod
    def for_approach(
        cls,
        model: str,
        transform: str,
        *,
        tune: str = "all",
        fixed: Optional[Mapping[str, Any]] = None,
        choices: Optional[Mapping[str, Iterable]] = None,
    ) -> "SearchSpace":
        """The default space of (model, transform), then `choices` and `fixed` on top.

        Args:
            tune: "all", "model" (model + training entries only) or "pipeline" (pipeline only).
            fixed: name -> value pinned (e.g. from explicitly given CLI flags or --fix).
            choices: name -> values replacing an entry's choices (or adding the entry).
        """
        if tune not in TUNE_PARTS:
            raise ConfigError(f"unknown --tune {tune!r}; valid: {', '.join(TUNE_PARTS)}")
        from models.registry import APPROACHES, get_approach

        approach = get_approach(model)
        if approach.kind != "keras":
            keras_models = ", ".join(n for n, a in APPROACHES.items() if a.kind == "keras")
            raise ConfigError(
                f"{model} is a scikit-learn approach; tuning searches Keras approaches "
                f"(use --model {keras_models})"
            )
        entries: dict[str, Entry] = {}
        if tune in ("all", "pipeline"):
            for name in PIPELINE_FIELDS_BY_TRANSFORM[transform]:
                entries[name] = PIPELINE_SPACE[name]
            entries.update(_augment_entries(transform))
        if tune in ("all", "model"):
            entries.update(TRAINING_SPACE)
            for name in approach.defaults:
                if name in MODEL_SPACE and transform in MODEL_FIELDS_ONLY_FOR.get(name, (transform,)):
                    entries[name] = MODEL_SPACE[name]
            entries.update(APPROACH_SPACE.get(model, {}))
        space = cls(model, transform, entries)
        known = space.known_names()
        for name, values in (choices or {}).items():
            space._check_name(name, known)
            values = tuple(values)
            if not values:
                raise ConfigError(f"--choices {name}: give at least one value")
            space.entries[name] = Choice(values) if len(values) > 1 else Fixed(values[0])
        for name, value in (fixed or {}).items():
            space._check_name(name, known)
            space.entries[name] = Fixed(value)
        return space

    def known_names(self) -> tuple[str, ...]:
        """Every name a trial may set for this approach: pipeline, training and model ones."""
        from models.registry import get_approach

        return (
            PIPELINE_FIELDS_BY_TRANSFORM[self.transform]
            + tuple(_augment_entries(self.transform))
            + TRAINING_FIELDS
            + tuple(get_approach(self.model).defaults)
        )

    def _check_name(self, name: str, known) -> None:
        if name not in known:
            raise ConfigError(
                f"{name!r} is not a hyperparameter of {self.model} on {self.transform}; "
                f"valid: {', '.join(known)}"
            )

    # --- keras_tuner ------------------------------------------------------------------------
    def declare(self, hp) -> dict[str, Any]:
        """Declare every entry on `hp` (in HyperModel.build); returns this trial's values."""
        return {name: entry.declare(hp, name) for name, entry in self.entries.items()}

    # --- mapping onto configs -----------------------------------------------------------------
    def configs(
        self, values: Mapping[str, Any], base: PipelineConfig, base_train: TrainConfig
    ) -> tuple[PipelineConfig, TrainConfig]:
        """The pipeline and training config of a trial: `base` with the trial's values set.

        Names the trial does not set keep the base value.  The window step keeps the base
        config's step/window ratio (the default 3 s / 3 s stays non-overlapping at any length).
        """
        v = {k: values[k] for k in values if not str(k).startswith("tuner/")}
        window = base.window
        if "window_seconds" in v or "sample_rate" in v:
            seconds = float(v.get("window_seconds", window.window_seconds))
            ratio = window.step_seconds / window.window_seconds
            window = dataclasses.replace(
                window,
                window_seconds=seconds,
                step_seconds=seconds * ratio,
                sample_rate=int(v.get("sample_rate", window.sample_rate)),
            )
        transform = dataclasses.replace(
            base.transform, name=self.transform,
            **{k: int(v[k]) for k in TRANSFORM_FIELDS if k in v},
        )
        augment = dataclasses.replace(
            base.augment, **{k: type(getattr(base.augment, k))(_plain(v[k]))
                             for k in AUGMENT_FIELDS if k in v},
        )
        cfg = dataclasses.replace(
            base, window=window, transform=transform, augment=augment,
            batch_size=int(v.get("batch_size", base.batch_size)),
        )
        from models.registry import get_approach

        model_names = get_approach(self.model).defaults
        hparams = dict(base_train.hparams)
        hparams.update({k: _plain(val) for k, val in v.items() if k in model_names})
        train = dataclasses.replace(
            base_train, model=self.model, hparams=hparams,
            learning_rate=float(v.get("learning_rate", base_train.learning_rate)),
            optimizer=str(v.get("optimizer", base_train.optimizer)),
        )
        return cfg, train

    def is_valid(
        self, values: Mapping[str, Any], base: PipelineConfig, base_train: TrainConfig
    ) -> bool:
        return self.why_invalid(values, base, base_train) is None

    def why_invalid(
        self, values: Mapping[str, Any], base: PipelineConfig, base_train: TrainConfig
    ) -> Optional[str]:
        """None when the trial's configuration can run, else the reason."""
        from models.registry import check_compatible

        try:
            cfg, train = self.configs(values, base, base_train)
            cfg.validate()
            train.validate()
            check_compatible(train.model, cfg.transform.name)
        except (ConfigError, ValueError) as e:
            return str(e)
        t = cfg.transform
        if t.name in ("stft", "mel", "mfcc") and t.hop_length > (t.win_length or t.n_fft):
            return f"hop_length ({t.hop_length}) longer than the frame ({t.win_length or t.n_fft}) skips samples"
        hp = train.hparams
        if "front_stride" in hp and "front_kernel" in hp and hp["front_stride"] > hp["front_kernel"]:
            return f"front_stride ({hp['front_stride']}) longer than front_kernel ({hp['front_kernel']})"
        return None

    def count_valid(self, base: PipelineConfig, base_train: TrainConfig, limit: int = 20000):
        """(valid, total) discrete combinations of the pipeline entries; a sanity check."""
        names = [n for n, e in self.entries.items() if n in PIPELINE_SPACE and not isinstance(e, FloatRange)]
        grids = [e.values if isinstance(e, Choice) else (e.value,) for e in (self.entries[n] for n in names)]
        total = valid = 0
        for combo in itertools.islice(itertools.product(*grids), limit):
            total += 1
            valid += self.is_valid(dict(zip(names, combo)), base, base_train)
        return valid, total

    # --- reporting ----------------------------------------------------------------------------
    def untuned(self) -> list[str]:
        """The approach's hyperparameters this search leaves at their base value."""
        from models.registry import get_approach

        return [n for n in get_approach(self.model).defaults if n not in self.entries]

    def describe(self) -> str:
        width = max((len(n) for n in self.entries), default=0)
        lines = [f"  {n:<{width}}  {e.describe()}" for n, e in self.entries.items()]
        untuned = self.untuned()
        if untuned:
            lines.append(f"  (approach defaults / --hparam: {', '.join(untuned)})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able identity of the space (stored with the search, compared on resume)."""
        return {
            "model": self.model,
            "transform": self.transform,
            "entries": {n: {"type": type(e).__name__, **json.loads(json.dumps(dataclasses.asdict(e)))}
                        for n, e in self.entries.items()},
        }


def _augment_entries(transform: str) -> dict[str, Entry]:
    return {name: entry for name, entry in AUGMENT_SPACE.items()
            if transform in AUGMENT_ONLY_FOR.get(name, (transform,))}


def _plain(value):
    """numpy scalars (from keras_tuner) to Python, so configs stay JSON-able."""
    return value.item() if hasattr(value, "item") else value


def parse_assignments(items: Optional[list[str]], flag: str, many: bool = False) -> dict[str, Any]:
    """NAME=VALUE (``many``: NAME=V1,V2,...) strings to a dict; values parsed as JSON when they parse."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{flag} expects NAME=VALUE, got {item!r}")
        name, text = (s.strip() for s in item.split("=", 1))
        parts = [p.strip() for p in text.split(",")] if many else [text]
        parsed = [_json_or_text(p) for p in parts]
        out[name] = parsed if many else parsed[0]
    return out


def _json_or_text(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
