"""Every approach on the same data, seed and budget: the grid of a comparison and its runs.

``grid`` lists the valid (transform, model) pairs; ``run_grid`` trains each into
``<report>/runs/<transform>_<model>`` with ``train_run`` (finished runs are reused, so a re-run
after an interruption only trains what is missing).  The report files are written by
``pipeline.experiments.report``.
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


def run_grid(cfg: PipelineConfig, train: TrainConfig, pairs, report_dir: Path, verbose: int = 1):
    """Train every pair (reusing finished runs); returns [(summary, run_dir)].

    ``train.hparams`` apply to every approach that has them.
    """
    from tqdm.auto import tqdm

    check_hparams_apply(pairs, train.hparams)
    results = []
    bar = tqdm(pairs, desc="approaches", unit="run", file=sys.stdout)
    for transform, model in bar:
        bar.set_postfix_str(approach_name(transform, model))
        run_cfg = dataclasses.replace(cfg, transform=dataclasses.replace(cfg.transform, name=transform))
        run_train = dataclasses.replace(train, model=model, hparams=hparams_for(model, train.hparams))
        run_dir = report_dir / "runs" / f"{transform}_{model}"
        results.append((train_run(run_cfg, run_train, run_dir, verbose=verbose), run_dir))
    return results
