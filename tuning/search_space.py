"""The search space of `tuning.search`, in one place: pipeline, training and model hyperparameters.

The space is a ``keras_tuner.HyperParameters`` (hp.Choice, hp.Boolean, hp.Float, hp.Fixed).
Every hyperparameter has the name of the config field or builder argument it sets, so a trial's
values read like a config and map onto it directly:

    pipeline  window_seconds, sample_rate (WindowConfig); n_fft, hop_length, n_mels, n_mfcc
              (TransformConfig, librosa's names) - only those the transform uses;
              augmentation of the training stream (AugmentConfig): random_offsets, gain_db,
              mixup_alpha, time_masks, freq_masks (the masks on stft/mel/mfcc only)
    training  learning_rate, optimizer, batch_size
    model     the approach's own hyperparameters, with the values its steps declare as searched
              (``models.registry``: ``Approach.hparams``)

A scikit-learn approach (svc, rf, the musicnn probe) is fitted once on vectors of every window:
it has no training stream (no augmentation) and no optimizer, so its space is the pipeline
entries its transform reads (on musicnn's fixed input: ``step_seconds``, the windows' overlap)
and the estimator's own (C, trees, the probe, the musicnn weights and layer).

`SearchSpace.for_approach` picks the entries that apply to one (model, transform); anything
not in the space keeps the value of the base config (the CLI flags).  Combinations that cannot
work (``n_mels > n_fft/2+1``, a hop longer than the FFT frame, a front-end stride longer than
its kernel, ...) are rejected by `SearchSpace.is_valid`, which the oracles use to sample only
valid trials (see `tuning.tuners`), so the search never spends a trial on a ConfigError.
Conditional scopes are not needed: the transform, the only switch, is fixed per search.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any, Iterable, Mapping, Optional

import keras_tuner
from keras_tuner.engine import hyperparameters as kt_hp

from core import musicnn_input
from core.config import ConfigError, PipelineConfig, TrainConfig
from tuning import TUNE_PARTS

# --------------------------------------------------------------------------------------------
# the default space

# Every choice below is valid with every other one (n_mels <= 257 = 512/2+1, n_mfcc <= min
# n_mels) except hop_length > n_fft, which is_valid rejects.
PIPELINE_SPACE: dict[str, tuple] = {
    "window_seconds": (1.5, 3.0, 5.0),
    "sample_rate": (22050, 16000, 11025),
    "n_fft": (512, 1024, 2048),
    "hop_length": (256, 512, 1024),
    "n_mels": (64, 96, 128),
    "n_mfcc": (13, 20, 30, 40),
}
PIPELINE_FIELDS_BY_TRANSFORM = {
    "raw": ("window_seconds", "sample_rate"),
    "fft": ("window_seconds", "sample_rate"),
    "stft": ("window_seconds", "sample_rate", "n_fft", "hop_length"),
    "mel": ("window_seconds", "sample_rate", "n_fft", "hop_length", "n_mels"),
    "mfcc": ("window_seconds", "sample_rate", "n_fft", "hop_length", "n_mels", "n_mfcc"),
    "musicnn": (),  # fixed by the pretrained networks (16 kHz, 187 x 96 patches)
}
# The window step a scikit-learn approach's search tries where the window itself is fixed
# (musicnn's 2.976 s patches: side by side, or half-overlapping for twice the windows).
MUSICNN_PATCH_SECONDS = musicnn_input.MIN_WINDOW_LENGTH / musicnn_input.SAMPLE_RATE
STEP_CHOICES_BY_TRANSFORM = {"musicnn": (MUSICNN_PATCH_SECONDS, MUSICNN_PATCH_SECONDS / 2)}
PIPELINE_NAMES = tuple(PIPELINE_SPACE) + ("step_seconds",)
# 0 / False (off) is always one of the choices; masks need time-frequency features.
AUGMENT_SPACE: dict[str, tuple] = {
    "random_offsets": (False, True),
    "gain_db": (0.0, 3.0, 6.0),
    "mixup_alpha": (0.0, 0.2, 0.4),
    "time_masks": (0, 1, 2),
    "freq_masks": (0, 1, 2),
}
AUGMENT_ONLY_FOR = {"time_masks": ("stft", "mel", "mfcc"), "freq_masks": ("stft", "mel", "mfcc")}
AUGMENT_FIELDS = tuple(AUGMENT_SPACE)
TRANSFORM_FIELDS = ("n_fft", "hop_length", "n_mels", "n_mfcc")
# Choices, or ("log", min, max); an approach's train_ranges replace them.
TRAINING_SPACE: dict[str, Any] = {
    "learning_rate": ("log", 1e-4, 1e-2),
    "optimizer": ("adam", "adamw", "rmsprop"),
    "batch_size": (16, 32, 64),
}
TRAINING_FIELDS = tuple(TRAINING_SPACE)  # TrainConfig fields, and PipelineConfig.batch_size


def choice(name: str, values: Iterable) -> kt_hp.HyperParameter:
    """hp.Choice (numbers of one type), or hp.Boolean for {False, True} (hp.Choice would store
    them as 1/0); hp.Fixed for one value."""
    values = tuple(values)
    if not values:
        raise ConfigError(f"{name}: give at least one value")
    if len(values) == 1:
        return pin(name, values[0])
    if set(values) == {False, True} and all(isinstance(v, bool) for v in values):
        return kt_hp.Boolean(name)
    if any(isinstance(v, float) for v in values) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        values = tuple(float(v) for v in values)  # "--choices dropout=0,0.2": one type
    try:
        return kt_hp.Choice(name, list(values))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}: {e}") from None


def pin(name: str, value) -> kt_hp.HyperParameter:
    """hp.Fixed: not searched, but recorded with each trial (the table and the retrained run
    show it)."""
    try:
        return kt_hp.Fixed(name, value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: a pinned value must be a number, a string or "
                          "true/false") from None


def log_float(name: str, min_value: float, max_value: float) -> kt_hp.HyperParameter:
    return kt_hp.Float(name, min_value, max_value, sampling="log")


def _from_range(name: str, spec) -> kt_hp.HyperParameter:
    """A TRAINING_SPACE-style entry (choices or ("log", min, max)) as a hyperparameter."""
    if spec and spec[0] == "log":
        return log_float(name, spec[1], spec[2])
    return choice(name, spec)


def _from_hparam(name: str, h) -> kt_hp.HyperParameter:
    """A ``models.registry.HParam`` as a hyperparameter."""
    return log_float(name, *h.log_range) if h.log_range else choice(name, h.choices)


def spec(entry: kt_hp.HyperParameter) -> dict:
    """JSON-able identity of one entry (the format search.json has always stored)."""
    if isinstance(entry, kt_hp.Fixed):
        return {"type": "Fixed", "value": entry.value}
    if isinstance(entry, kt_hp.Boolean):
        return {"type": "Choice", "values": [False, True]}
    if isinstance(entry, kt_hp.Float):
        return {"type": "FloatRange", "min_value": entry.min_value,
                "max_value": entry.max_value, "sampling": entry.sampling}
    return {"type": "Choice", "values": list(entry.values)}


def describe_entry(entry: kt_hp.HyperParameter) -> str:
    s = spec(entry)
    if s["type"] == "Fixed":
        return f"= {_fmt(s['value'])} (fixed)"
    if s["type"] == "FloatRange":
        return f"[{_fmt(s['min_value'])}, {_fmt(s['max_value'])}] ({s['sampling']})"
    return "{" + ", ".join(_fmt(v) for v in s["values"]) + "}"


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def python_value(value):
    """numpy scalars (from keras_tuner) to Python, so configs and summaries stay JSON-able."""
    return value.item() if hasattr(value, "item") else value


# --------------------------------------------------------------------------------------------
# the space of one search


@dataclasses.dataclass
class SearchSpace:
    """The hyperparameters of one search over one approach, and their mapping onto configs."""

    model: str
    transform: str
    hp: keras_tuner.HyperParameters  # declared in order: pipeline, training, model

    @property
    def entries(self) -> dict[str, kt_hp.HyperParameter]:
        return {entry.name: entry for entry in self.hp.space}

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
        from models.registry import get_approach

        approach = get_approach(model)
        keras_kind = approach.kind == "keras"
        entries: dict[str, kt_hp.HyperParameter] = {}
        if tune in ("all", "pipeline"):
            entries.update({name: choice(name, values)
                            for name, values in _pipeline_choices(model, transform).items()})
            if keras_kind:  # a scikit-learn approach never sees the training stream
                entries.update({name: choice(name, values)
                                for name, values in _augment_choices(transform).items()})
        if tune in ("all", "model"):
            for name, spec_ in (TRAINING_SPACE.items() if keras_kind else ()):
                h = approach.train_ranges.get(name)
                entries[name] = _from_hparam(name, h) if h else _from_range(name, spec_)
            entries.update({name: _from_hparam(name, h) for name, h in approach.hparams.items()
                            if h.searched_on(transform)})
        known = cls.known_names_of(model, transform)
        for name, values in (choices or {}).items():
            _check_name(model, transform, name, known)
            values = tuple(values)
            if not values:
                raise ConfigError(f"--choices {name}: give at least one value")
            entries[name] = choice(name, values)
        for name, value in (fixed or {}).items():
            _check_name(model, transform, name, known)
            entries[name] = pin(name, value)
        hp = keras_tuner.HyperParameters()
        hp.merge(list(entries.values()))
        return cls(model, transform, hp)

    @staticmethod
    def known_names_of(model: str, transform: str) -> tuple[str, ...]:
        """Every name a trial may set for the approach: pipeline, training and model ones."""
        from models.registry import get_approach

        approach = get_approach(model)
        pipeline = tuple(_pipeline_choices(model, transform))
        if approach.kind != "keras":  # fitted once on vectors: no training stream or optimizer
            return pipeline + tuple(approach.defaults)
        return (pipeline + tuple(_augment_choices(transform)) + TRAINING_FIELDS
                + tuple(approach.defaults))

    @property
    def model_kind(self) -> str:
        """"keras" or "sklearn": the approach's kind."""
        from models.registry import get_approach

        return get_approach(self.model).kind

    def known_names(self) -> tuple[str, ...]:
        return self.known_names_of(self.model, self.transform)

    def spec(self, name: str) -> dict:
        """The JSON-able identity of entry `name` (see `spec`)."""
        return spec(self.entries[name])

    # --- keras_tuner ------------------------------------------------------------------------
    def declare(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        """Declare every entry on `hp` (in HyperModel.build), keeping the values it has;
        returns this trial's values."""
        hp.merge(self.hp, overwrite=False)
        return {name: hp.get(name) for name in self.entries}

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
        if "step_seconds" in v:
            window = dataclasses.replace(window, step_seconds=float(v["step_seconds"]))
        transform = dataclasses.replace(
            base.transform, name=self.transform,
            **{k: int(v[k]) for k in TRANSFORM_FIELDS if k in v},
        )
        augment = dataclasses.replace(
            base.augment, **{k: type(getattr(base.augment, k))(python_value(v[k]))
                             for k in AUGMENT_FIELDS if k in v},
        )
        cfg = dataclasses.replace(
            base, window=window, transform=transform, augment=augment,
            batch_size=int(v.get("batch_size", base.batch_size)),
        )
        from models.registry import get_approach

        model_names = get_approach(self.model).defaults
        hparams = dict(base_train.hparams)
        hparams.update({k: python_value(val) for k, val in v.items() if k in model_names})
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
        w = cfg.window
        if "step_seconds" in values and w.step_seconds > w.window_seconds:
            return (f"step_seconds ({w.step_seconds:g}) longer than the window "
                    f"({w.window_seconds:g} s) skips audio")
        t = cfg.transform
        if t.name in ("stft", "mel", "mfcc") and t.hop_length > (t.win_length or t.n_fft):
            return f"hop_length ({t.hop_length}) longer than the frame ({t.win_length or t.n_fft}) skips samples"
        hp = train.hparams
        if "front_stride" in hp and "front_kernel" in hp and hp["front_stride"] > hp["front_kernel"]:
            return f"front_stride ({hp['front_stride']}) longer than front_kernel ({hp['front_kernel']})"
        return None

    def count_valid(self, base: PipelineConfig, base_train: TrainConfig, limit: int = 20000):
        """(valid, total) discrete combinations of the pipeline entries; a sanity check."""
        grids = {n: discrete_values(e) for n, e in self.entries.items() if n in PIPELINE_NAMES}
        grids = {n: g for n, g in grids.items() if g is not None}
        total = valid = 0
        for combo in itertools.islice(itertools.product(*grids.values()), limit):
            total += 1
            valid += self.is_valid(dict(zip(grids, combo)), base, base_train)
        return valid, total

    # --- reporting ----------------------------------------------------------------------------
    def untuned(self) -> list[str]:
        """The approach's hyperparameters this search leaves at their base value."""
        from models.registry import get_approach

        return [n for n in get_approach(self.model).defaults if n not in self.entries]

    def fixed(self) -> dict[str, Any]:
        """The entries pinned to one value: name -> value."""
        return {n: e.value for n, e in self.entries.items() if isinstance(e, kt_hp.Fixed)}

    def describe(self) -> str:
        """The space as ``--show-space`` prints it, one entry a line."""
        width = max((len(n) for n in self.entries), default=0)
        lines = [f"  {n:<{width}}  {describe_entry(e)}" for n, e in self.entries.items()]
        untuned = self.untuned()
        if untuned:
            lines.append(f"  (approach defaults / --hparam: {', '.join(untuned)})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able identity of the space (stored with the search, compared on resume)."""
        return {
            "model": self.model,
            "transform": self.transform,
            "entries": {n: json.loads(json.dumps(spec(e))) for n, e in self.entries.items()},
        }


def discrete_values(entry: kt_hp.HyperParameter) -> Optional[tuple]:
    """The discrete values of an entry; None for a continuous one."""
    s = spec(entry)
    return {"Fixed": (s.get("value"),), "Choice": tuple(s.get("values", ()))}.get(s["type"])


def _check_name(model: str, transform: str, name: str, known) -> None:
    if name not in known:
        raise ConfigError(
            f"{name!r} is not a hyperparameter of {model} on {transform}; "
            f"valid: {', '.join(known)}"
        )


def _pipeline_choices(model: str, transform: str) -> dict[str, tuple]:
    """The pipeline entries searched for (model, transform): those the transform reads, and
    for a scikit-learn approach on the fixed musicnn input the window step (overlap)."""
    from models.registry import get_approach

    out = {name: PIPELINE_SPACE[name] for name in PIPELINE_FIELDS_BY_TRANSFORM[transform]}
    if get_approach(model).kind != "keras" and transform in STEP_CHOICES_BY_TRANSFORM:
        out["step_seconds"] = STEP_CHOICES_BY_TRANSFORM[transform]
    return out


def _augment_choices(transform: str) -> dict[str, tuple]:
    return {name: values for name, values in AUGMENT_SPACE.items()
            if transform in AUGMENT_ONLY_FOR.get(name, (transform,))}


class SpaceHyperModel(keras_tuner.HyperModel):
    """A HyperModel whose trials are points of one `SearchSpace` over base configs: the mapping
    of a trial's values onto configs and the validity check, shared by the Keras path
    (`tuning.hypermodel.TrialHyperModel`) and the scikit-learn one
    (`tuning.estimator_search.EstimatorHyperModel`)."""

    def __init__(self, space: SearchSpace, base: PipelineConfig, base_train: TrainConfig):
        super().__init__(name=f"{space.model}_on_{space.transform}")
        self.space = space
        self.base = base
        self.base_train = base_train

    def configs(self, values: Mapping[str, Any]) -> tuple[PipelineConfig, TrainConfig]:
        return self.space.configs(values, self.base, self.base_train)

    def is_valid(self, values) -> bool:
        """Used by the oracles (`tuning.tuners`) to sample valid trials only."""
        return self.space.is_valid(values, self.base, self.base_train)

    def declared_configs(self, hp) -> tuple[PipelineConfig, TrainConfig]:
        """Declare the space on ``hp`` (in ``build``) and return the trial's configs; a
        FailedTrialError for an invalid combination (only reachable with a hand-made space:
        the oracles skip such values)."""
        self.space.declare(hp)
        reason = self.space.why_invalid(hp.values, self.base, self.base_train)
        if reason:
            raise keras_tuner.errors.FailedTrialError(f"invalid combination: {reason}")
        return self.configs(hp.values)
