"""Command-line flags generated from the config dataclasses.

Every CLI (train, compare, bench, tuning) gets the same flags with the same defaults, because
they come from `core.config`, the one source of truth. Flags use librosa's names in
kebab-case (`--n-fft`, `--hop-length`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from typing import Any, Optional

from core.errors import ConfigError
from core.config import (
    PAD_MODES,
    SWEEP_GRIDS,
    STRATEGIES,
    TRANSFORM_PLACEMENTS,
    TRANSFORMS,
    AugmentConfig,
    DatasetConfig,
    PipelineConfig,
    RepeatConfig,
    SweepConfig,
    TrainConfig,
    TransformConfig,
    WindowConfig,
)

_HELP = {
    "name@DatasetConfig": "gtzan_tfds config to read: synthetic, synthetic_small, gtzan, "
    "fault_filtered, folder, or a custom one as JSON ('{\"name\": \"synthetic_x10\", "
    "\"songs_per_genre\": 160}')",
    "data_dir": "TFDS data dir holding the built dataset (default: TFDS's ~/tensorflow_datasets)",
    "manual_dir": "folder (or archive inside it) of a real GTZAN download, to build it on first use",
    "folds": "k-fold cross-validation by song: pool the songs of --fold-splits into this many "
    "genre-stratified folds (0: the dataset's own splits); train/compare run every fold",
    "fold": "with --folds: the fold whose songs are the test split (the next fold validates); "
    "train/compare given --fold run that fold only",
    "fold_seed": "seed of the fold assignment",
    "fold_splits": "splits pooled into the folds, joined with '+'",
    "embeddings": "approaches on a frozen network (musicnn): read its outputs from the embedding "
    "store, computed once per network, window config and built dataset (false: pass every song "
    "through the network on every run and fold)",
    "embedding_dir": "where embedding stores live (default: beside the dataset, "
    "<data-dir>/gtzan_tfds_embeddings/<config>/<version>)",
    "sample_rate": "resample every song to this rate (Hz) before windowing",
    "window_seconds": "window length in seconds",
    "step_seconds": "hop between window starts in seconds (< window: overlapping windows)",
    "pad_end": "zero-pad a last partial window instead of dropping it",
    "name@TransformConfig": f"features computed from each window: {', '.join(TRANSFORMS)}",
    "n_fft": "FFT size of the stft/mel/mfcc frames",
    "hop_length": "samples between frames",
    "win_length": "analysis window length (default: n_fft)",
    "n_mels": "mel bands",
    "n_mfcc": "MFCC coefficients",
    "fmin": "lowest mel frequency (Hz)",
    "fmax": "highest mel frequency (Hz, default: sample_rate/2)",
    "center": "pad n_fft/2 on both sides of each window (frames = 1 + N // hop), as librosa does",
    "pad_mode": "centre padding: zeros ('constant', librosa 0.10+) or 'reflect'",
    "amin": "power floor before the log",
    "top_db": "dynamic range (dB) kept below each window's peak",
    "batch_size": "windows per batch (under a tf.distribute strategy: the global batch, shared by "
    "the replicas)",
    "shuffle_buffer": "training windows shuffled together (blocks of this many windows of "
    "consecutive shuffled songs, each block permuted; bounds memory)",
    "random_offsets": "training: windows start anywhere in the song, drawn again every epoch",
    "gain_db": "training: random gain, uniform in [-GAIN_DB, +GAIN_DB] dB per window (0 = off)",
    "mixup_alpha": "training: mixup of window pairs with Beta(a, a) weights and soft labels "
    "(0 = off)",
    "time_masks": "training: SpecAugment time masks per window (stft/mel/mfcc)",
    "time_mask_frames": "widest time mask, in frames",
    "freq_masks": "training: SpecAugment frequency masks per window (stft/mel/mfcc)",
    "freq_mask_bins": "widest frequency mask, in mel bands (stft: bins)",
    "seed": "seed of shuffling, initialisation and splits of sklearn models",
    "transform_placement": "run the transform in tf.data ('data') or as the model's first layer "
    "('model', GPU-side when there is one)",
    "model": "approach to train (see models.registry)",
    "hparams": "model hyperparameter override KEY=VALUE (repeatable; VALUE parsed as JSON)",
    "epochs": "maximum epochs (early stopping may end sooner)",
    "learning_rate": "optimizer learning rate",
    "optimizer": "keras optimizer name (adam, sgd, rmsprop, ...)",
    "patience": "epochs without validation improvement before stopping",
    "pretrain_epochs": "first-stage epochs: encoder_classifier's autoencoder, musicnn_finetune's "
    "head with the network frozen",
    "strategy": f"tf.distribute strategy: {', '.join(STRATEGIES)}",
    "refit": "scikit-learn approaches: after scoring on validation, refit on train + validation",
    "deterministic": "deterministic TF ops (same seed, same result on CPU)",
    "custom_loop": "train with the tf.distribute custom loop instead of model.fit (always used "
    "by --strategy multi-worker across several workers: docs/distributed.md)",
    "checkpoint_steps": "custom loop: also checkpoint every this many steps inside an epoch, "
    "so a killed worker loses less (0: at the end of each epoch only)",
}

_CHOICES = {
    "name@TransformConfig": TRANSFORMS,
    "transform_placement": TRANSFORM_PLACEMENTS,
    "pad_mode": PAD_MODES,
    "strategy": STRATEGIES,
}

_METAVAR = {"data_dir": "DIR", "manual_dir": "DIR", "model": "NAME", "name@DatasetConfig": "CONFIG",
            "fold_splits": "SPLITS", "folds": "K", "fold": "I"}
# Flag names that differ from the field name.
_FLAG = {"name@DatasetConfig": "dataset-config", "name@TransformConfig": "transform"}
# Fields not exposed as plain flags (nested configs are expanded instead).
_SKIP = {"dataset", "window", "transform", "augment", "hparams@TrainConfig"}


def _field_type(cls, field: dataclasses.Field):
    hint = typing.get_type_hints(cls)[field.name]
    if typing.get_origin(hint) is typing.Union:  # Optional[X]
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _optional(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "null") else kind(text)

    parse.__name__ = kind.__name__
    return parse


def add_dataclass_args(parser: argparse.ArgumentParser, cls, title: str) -> None:
    group = parser.add_argument_group(title)
    defaults = cls()
    for field in dataclasses.fields(cls):
        key = f"{field.name}@{cls.__name__}"
        if field.name in _SKIP or key in _SKIP:
            continue
        help_key = key if key in _HELP else field.name
        field_help = _HELP.get(help_key) or field.metadata.get("help", "")
        flag = "--" + _FLAG.get(key, field.name.replace("_", "-"))
        kind = _field_type(cls, field)
        default = getattr(defaults, field.name)
        conv = _bool if kind is bool else kind
        if typing.get_origin(typing.get_type_hints(cls)[field.name]) is typing.Union:
            conv = _optional(conv)
        names = [flag]
        if "-" in flag[2:] and field.name in ("manual_dir", "data_dir"):
            names.append("--" + field.name)  # tfds's own spelling: --manual_dir, --data_dir
        group.add_argument(
            *names,
            dest=f"{cls.__name__}.{field.name}",
            type=conv,
            default=None,  # None = not given: the dataclass default applies
            choices=_CHOICES.get(key, _CHOICES.get(field.name)),
            metavar=None if (key in _CHOICES or field.name in _CHOICES) else _METAVAR.get(
                key, _METAVAR.get(field.name, kind.__name__.upper())),
            help=f"{field_help} (default: {default})",
        )


def add_pipeline_args(parser: argparse.ArgumentParser) -> None:
    add_dataclass_args(parser, DatasetConfig, "dataset")
    add_dataclass_args(parser, WindowConfig, "windowing and resampling")
    add_dataclass_args(parser, TransformConfig, "transform")
    add_dataclass_args(parser, AugmentConfig, "augmentation (training only)")
    add_dataclass_args(parser, PipelineConfig, "batching")


def add_train_args(parser: argparse.ArgumentParser) -> None:
    add_dataclass_args(parser, TrainConfig, "training")
    parser.add_argument(
        "--hparam", dest="TrainConfig.hparams", action="append", default=None,
        metavar="KEY=VALUE", help=_HELP["hparams"],
    )


def _given(args: argparse.Namespace, cls) -> dict[str, Any]:
    prefix = cls.__name__ + "."
    return {
        k[len(prefix):]: v
        for k, v in vars(args).items()
        if k.startswith(prefix) and v is not None
    }


def parse_hparams(items: Optional[list[str]]) -> dict[str, Any]:
    """KEY=VALUE strings to a dict; VALUE is JSON when it parses, else a string."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--hparam expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def pipeline_config_from_args(args: argparse.Namespace, base: Optional[PipelineConfig] = None) -> PipelineConfig:
    """The PipelineConfig the flags describe (on top of `base` when given)."""
    base = base or PipelineConfig()
    return PipelineConfig(
        dataset=dataclasses.replace(base.dataset, **_given(args, DatasetConfig)),
        window=dataclasses.replace(base.window, **_given(args, WindowConfig)),
        transform=dataclasses.replace(base.transform, **_given(args, TransformConfig)),
        augment=dataclasses.replace(base.augment, **_given(args, AugmentConfig)),
        **{**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)
              if f.name not in ("dataset", "window", "transform", "augment")},
           **_given(args, PipelineConfig)},
    )


def train_config_from_args(args: argparse.Namespace, base: Optional[TrainConfig] = None) -> TrainConfig:
    given = _given(args, TrainConfig)
    if "hparams" in given:
        given["hparams"] = parse_hparams(given["hparams"])
    return dataclasses.replace(base or TrainConfig(), **given)


# --------------------------------------------------------------------------------------------
# what an approach implies (models.registry Approach.requires / presets)
_SECTIONS = {"dataset": DatasetConfig, "window": WindowConfig, "transform": TransformConfig,
             "pipeline": PipelineConfig, "train": TrainConfig}


def _dest_and_flag(path: str) -> tuple[str, str]:
    """The argparse dest and the flag of a dotted config path such as "window.sample_rate"."""
    section, field = path.split(".")
    cls = _SECTIONS[section]
    key = f"{field}@{cls.__name__}"
    return f"{cls.__name__}.{field}", "--" + _FLAG.get(key, field.replace("_", "-"))


def apply_approach_settings(args: argparse.Namespace, model: Optional[str] = None) -> argparse.Namespace:
    """A copy of ``args`` with what approach ``model`` implies filled in where no flag was given.

    ``model`` defaults to the ``--model`` flag (or TrainConfig's default).  The approach's
    ``requires`` (e.g. musicnn: the musicnn transform at 16 kHz) are set, and a flag that
    contradicts one is a ConfigError; its ``presets`` (window length, step, learning rate)
    apply only where the flag was not given.
    """
    from models.registry import get_approach

    model = model or flag_value(args, TrainConfig, "model") or TrainConfig().model
    approach = get_approach(model)
    out = argparse.Namespace(**vars(args))
    for path, value in approach.requires.items():
        dest, flag = _dest_and_flag(path)
        given = getattr(out, dest, None)
        if given is not None and given != value:
            raise ConfigError(
                f"{flag} {given} does not fit --model {model}, which needs {flag} {value} "
                "(its pretrained network's input); leave the flag out"
            )
        setattr(out, dest, value)
    for path, value in approach.presets.items():
        dest, _ = _dest_and_flag(path)
        if getattr(out, dest, None) is None:
            setattr(out, dest, value)
    return out


def flag_value(args: argparse.Namespace, cls, field: str):
    """The value given for ``cls``'s field ``field`` on the command line, or None where the flag
    was left out (its dataclass default then applies)."""
    return getattr(args, f"{cls.__name__}.{field}", None)


def config_from_args(args: argparse.Namespace, cls):
    """An instance of the dataclass ``cls`` from the flags ``add_dataclass_args`` added for it
    (its defaults where a flag was not given)."""
    return cls(**_given(args, cls))


# --------------------------------------------------------------------------------------------
# studies: seed repeats of a k-fold evaluation (--repeats) and parameter sweeps (--sweep-grid)
_HELP.update({
    "repeats": "with --folds: train every fold with this many seeds (--seed, --seed + 1, ...); "
    "the scikit-learn approaches and the frozen musicnn probe, which barely depend on the "
    "seed, run once",
    "sweep_grid": "how --sweep axes combine: 'product' (every combination) or 'one-at-a-time' "
    "(each axis alone, the others at the base flags)",
})
_CHOICES["sweep_grid"] = SWEEP_GRIDS


def add_repeat_args(parser: argparse.ArgumentParser) -> None:
    add_dataclass_args(parser, RepeatConfig, "seed repeats (with --folds)")


def repeat_config_from_args(args: argparse.Namespace) -> RepeatConfig:
    """The --repeats config, checked against --folds / --fold (repeats need every fold)."""
    all_folds = bool(flag_value(args, DatasetConfig, "folds")) and flag_value(
        args, DatasetConfig, "fold") is None
    return RepeatConfig(**_given(args, RepeatConfig)).validate(all_folds)


def add_sweep_args(parser: argparse.ArgumentParser) -> None:
    add_dataclass_args(parser, SweepConfig, "parameter sweep")


def sweep_config_from_args(args: argparse.Namespace) -> SweepConfig:
    return SweepConfig(**_given(args, SweepConfig)).validate()
