"""Every approach on the same data, seed and budget: the grid of a comparison and its runs.

``grid`` lists the valid (transform, model) pairs; ``run_grid`` trains each into
``<report>/runs/<transform>_<model>`` with ``train_run`` (finished runs are reused, so a re-run
after an interruption only trains what is missing), or, with ``cfg.dataset.folds``, each of its
folds into ``<report>/runs/<transform>_<model>/fold_<i>`` (``pipeline.experiments.crossval``).
The report files are written by ``pipeline.experiments.comparison_report`` (``crossval_report`` for folds).

Each pair gets its own configs (``Job``): an approach built on a pretrained network brings
the pipeline it needs (``pipeline.cli.flags.apply_approach_settings``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from core.config import PipelineConfig, TrainConfig
from core.errors import ConfigError
from pipeline.experiments.training import train_run

# The study's grid, in its order: baselines, CNNs on transforms, CNN on raw audio, encoder, LSTM.
DEFAULT_MODELS = ("svc", "rf", "cnn1d", "cnn2d", "encoder_classifier", "lstm")
# ... and the approaches on the pretrained musicnn networks, when their wheel is installed.
PRETRAINED_MODELS = ("musicnn", "musicnn_finetune")


@dataclasses.dataclass(frozen=True)
class Job:
    """One cell of the grid: the configs its run (or folds) is trained with."""

    transform: str
    model: str
    cfg: PipelineConfig
    train: TrainConfig
    all_folds: bool = False  # cross-validate every fold of cfg.dataset.folds, not one run


def default_models() -> tuple[str, ...]:
    """The default grid's models: the study's, and the pretrained ones where installed."""
    from models.registry import is_available

    return DEFAULT_MODELS + tuple(m for m in PRETRAINED_MODELS if is_available(m))
QUICK_GRID = (("mfcc", "svc"), ("mfcc", "rf"), ("mfcc", "cnn1d"), ("mel", "cnn2d"), ("mfcc", "lstm"))


def grid(models, transforms, exclude=()) -> list[tuple[str, str]]:
    """Valid (transform, model) pairs of the requested models and transforms.

    `exclude` holds "transform:model" strings of pairs to leave out.
    """
    from models.registry import get_approach

    excluded = {tuple(item.split(":", 1)) for item in exclude}
    pairs = []
    for model in models:
        accepted = get_approach(model).transforms
        pairs += [(t, model) for t in transforms if t in accepted and (t, model) not in excluded]
    return pairs


def approach_name(transform: str, model: str) -> str:
    return f"{model} on {transform}"


def hparams_for(model: str, hparams: dict) -> dict:
    """The ``--hparam`` overrides that are hyperparameters of ``model`` (others do not apply)."""
    from models.registry import get_approach

    accepted = get_approach(model).defaults
    return {k: v for k, v in hparams.items() if k in accepted}


def check_hparams_apply(pairs, hparams: dict) -> None:
    """ConfigError for an ``--hparam`` that is a hyperparameter of no approach in the grid."""
    used = {k for _, model in pairs for k in hparams_for(model, hparams)}
    unused = sorted(set(hparams) - used)
    if unused:
        models = sorted({m for _, m in pairs})
        raise ConfigError(f"--hparam {', '.join(unused)}: not a hyperparameter of any approach "
                          f"in the grid ({', '.join(models)})")


def make_job(transform: str, model: str, cfg: PipelineConfig, train: TrainConfig, *,
             all_folds: bool = False) -> Job:
    """The job of one pair from its model's configs: the pair's transform, the ``--hparam``
    overrides that apply to the model (ConfigError when the result cannot train)."""
    run_cfg = dataclasses.replace(cfg, transform=dataclasses.replace(cfg.transform, name=transform))
    run_train = dataclasses.replace(train, model=model, hparams=hparams_for(model, train.hparams))
    return Job(transform, model, run_cfg.validate(), run_train.validate(),
               all_folds=all_folds and bool(cfg.dataset.folds))


def run_grid(jobs: list[Job], report_dir: Path, verbose: int = 1, repeats: int = 1):
    """Train every job (reusing finished runs and folds); returns [(summary, run_dir)]: the
    test summary of a run, or the cross-validated summary of its folds (each fold trained with
    ``repeats`` seeds where the approach depends on the seed: ``repeats.cross_validate_repeats``)."""
    from tqdm.auto import tqdm

    from pipeline.experiments.repeats import cross_validate_repeats

    results = []
    bar = tqdm(jobs, desc="approaches", unit="run", file=sys.stdout)
    for job in bar:
        bar.set_postfix_str(approach_name(job.transform, job.model))
        run_dir = report_dir / "runs" / f"{job.transform}_{job.model}"
        if job.all_folds:
            summary = cross_validate_repeats(job.cfg, job.train, run_dir, repeats=repeats,
                                             verbose=verbose)
        else:
            summary = train_run(job.cfg, job.train, run_dir, verbose=verbose)
        results.append((summary, run_dir))
    return results
