"""Train one approach into a run directory: fit on train, select on validation, test once.

Shared by ``pipeline.train`` (one approach), ``pipeline.compare`` (a grid, or k folds) and
``tuning`` (the best trial's retraining).  ``train_run`` is the whole lifecycle of a run:

1. refuse what cannot work before writing anything (approach/transform pair, hyperparameters,
   optimizer, a split without windows, a run directory of another configuration, a run
   directory another process is writing);
2. fit (Keras: resuming from the last finished epoch after a kill; ``model.fit``, or the
   tf.distribute custom loop of ``distributed_training`` across several workers or with
   ``custom_loop``; scikit-learn: on vectors streamed from the pipeline), seeded by ``cfg.seed``;
3. evaluate on validation, write ``training.json``, commit the model file (atomic rename)
   (scikit-learn: scored on validation, then refitted on train + validation, see
   ``sklearn_training``);
4. evaluate on test into ``metrics.json``.

A re-run continues where a kill stopped it: a trained run is only evaluated, a finished one is
returned as it is (unless ``overwrite``).
"""

from __future__ import annotations

from typing import Optional

from core.config import PipelineConfig, TrainConfig
from pipeline.experiments.distributed_training import (
    check_distributed,
    fit_distributed,
    uses_custom_loop,
)
from pipeline.experiments.run_evaluation import evaluate_run, evaluate_split
from pipeline.experiments.keras_training import check_strategy, commit_keras_model, fit_keras
from pipeline.experiments.predictor import Predictor
from pipeline.experiments.run_dir import RunDir
from pipeline.experiments.seeding import seed_everything
from pipeline.experiments.sklearn_training import (
    commit_sklearn_model,
    fit_sklearn,
    require_split_windows,
)
from pipeline.stream.dataset import class_names
from pipeline.stream.transforms import model_input_shape


def check_trainable(cfg: PipelineConfig, train: TrainConfig) -> None:
    """ConfigError for a configuration that cannot train (before any data is read)."""
    from models.common import check_optimizer
    from models.registry import check_available, check_compatible, check_hparams, get_approach

    cfg.validate()
    train.validate()
    check_compatible(train.model, cfg.transform.name)
    check_hparams(train.model, train.hparams)
    check_available(train.model)  # pretrained weights: WeightsNotFoundError with the install line
    if get_approach(train.model).kind == "keras":
        check_optimizer(train.optimizer)


def train_run(cfg: PipelineConfig, train: TrainConfig, run_dir, *, verbose: int = 1,
              overwrite: bool = False, strategy=None) -> dict:
    """Train, select and test one approach into ``run_dir``; returns its summary
    (the test metrics and the training record, as ``RunDir.summary``).

    ``strategy``: the tf.distribute strategy (default: made from ``train.strategy``).
    """
    check_trainable(cfg, train)
    if strategy is not None and uses_custom_loop(train, strategy):
        check_distributed(cfg, train, strategy)  # several workers: the custom loop, not fit
    elif strategy is not None:
        check_strategy(strategy)
    run = RunDir(run_dir)
    with run.lock():
        try:
            return _train_locked(run, cfg, train, verbose, overwrite, strategy)
        finally:
            run.remove_if_empty()  # refused before any work: leave no empty folder behind


def _train_locked(run: RunDir, cfg: PipelineConfig, train: TrainConfig, verbose: int,
                  overwrite: bool, strategy) -> dict:
    if overwrite:
        run.clear()
    if run.has_progress():  # a run dir with nothing trained yet just takes the new config
        run.check_same_config(cfg, train)
    if run.is_evaluated("test"):
        return run.summary("test")
    predictor: Optional[Predictor] = None
    if not run.is_trained():
        predictor = _train(run, cfg, train, verbose, strategy)
    evaluate_run(run, "test", predictor=predictor, verbose=bool(verbose))
    return run.summary("test")


def _train(run: RunDir, cfg: PipelineConfig, train: TrainConfig, verbose: int, strategy) -> Predictor:
    """Fit, record and commit; returns the trained model as a Predictor."""
    from models.registry import featurizer, get_approach

    # Refused before config.json is written: the data is there (built on first use) and
    # every split gives windows.
    require_split_windows(cfg, train)
    names = class_names(cfg.dataset)
    approach = get_approach(train.model)
    run.save_config(cfg, train, class_names=names, approach_kind=approach.kind,
                    model_input_shape=list(model_input_shape(cfg)))
    seed_everything(cfg.seed)
    if approach.kind == "keras":
        custom = train.custom_loop or (strategy is not None and uses_custom_loop(train, strategy))
        fit = fit_distributed if custom else fit_keras
        model, info = fit(cfg, train, run, len(names), verbose, strategy)
        predictor = Predictor(model, "keras", cfg, names, train)
        validation = evaluate_split(predictor, "validation", verbose=bool(verbose))
    else:  # scored on validation before its refit on train + validation
        model, info, validation = fit_sklearn(cfg, train, names, verbose)
        predictor = Predictor(model, "sklearn", cfg, names, train,
                              featurizer(train.model, train.hparams))
    run.save_training({
        "approach": f"{cfg.transform.name}+{train.model}", "model": train.model,
        "transform": cfg.transform.name, "dataset": cfg.dataset.name, **info,
        "validation_window_accuracy": validation["window_accuracy"],
        "validation_song_accuracy": validation["song_accuracy_mean_vote"],
    })
    if approach.kind == "keras":
        commit_keras_model(model, run)
    else:
        commit_sklearn_model(model, run)
    return predictor
