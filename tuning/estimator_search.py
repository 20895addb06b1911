"""Keras Tuner over a scikit-learn approach (svc, rf, the musicnn probe), scored by song.

Keras Tuner's tuner for scikit-learn models is ``keras_tuner.SklearnTuner``: an oracle proposes
values, a HyperModel builds the estimator from them, and a cross-validation splitter (``cv``)
scores it.  `SongCVTuner` is that tuner with two things its ``run_trial`` cannot do on its own,
and which a trial here needs:

1. **A trial's vectors depend on its values.**  ``SklearnTuner.search(X, y)`` fits every trial
   on one fixed ``X``; here the pipeline is searched too (window length and step, n_fft, hop,
   mels, MFCCs for svc/rf; the musicnn weights and layer for the probe), so the trial asks
   `EstimatorHyperModel.trial_data` for the vectors of its own pipeline: streamed through
   the training transform (svc, rf), or read from the embedding store (musicnn: every layer of
   one network pass per weights and window config, computed once and kept on disk, so a trial
   costs probe fits, not a network pass).  Vectors of the last few pipelines are kept in memory.
2. **The score is song accuracy with folds of whole songs.**  ``cv`` is
   `pipeline.experiments.song_cv.SongKFold` (songs dealt into folds by genre, never windows),
   and the objective ``cv_song_accuracy`` decides each held-out song by its windows' mean
   probabilities, as every evaluation of the project does; ``cv_window_accuracy`` is recorded
   beside it.

The songs scored are those the retrained model learns from: the train split, plus validation
when the approach refits on it (the default).  With ``--folds K --fold I`` those are the outer
fold's training songs, so a search inside an outer fold never sees its test songs
(``python -m tuning.nested``).  The oracles, the resume after a kill and the trial log are the
Keras path's (`tuning.tuners`); Hyperband has no epochs to allocate here and is refused.
"""

from __future__ import annotations

import collections
import json
import time

import keras_tuner
import numpy as np

from core.config import PipelineConfig, TrainConfig
from core.errors import ConfigError
from pipeline.experiments.song_cv import SongKFold, song_cv_scores
from tuning import tuners as tuners_lib
from tuning.search_space import SearchSpace, SpaceHyperModel

SKLEARN_OBJECTIVES = ("cv_song_accuracy", "cv_window_accuracy")
CACHED_PIPELINES = 4  # trial vectors kept in memory (a few MB each on the 50 clips)


class EstimatorHyperModel(SpaceHyperModel):
    """The estimator of a trial (``build``) and the vectors it is scored on (``trial_data``)."""

    def __init__(self, space: SearchSpace, base: PipelineConfig, base_train: TrainConfig,
                 verbose: bool = True):
        super().__init__(space, base, base_train)  # configs(values), is_valid(values)
        self.verbose = verbose
        self._vectors: collections.OrderedDict = collections.OrderedDict()

    @property
    def num_classes(self) -> int:
        from pipeline.stream.dataset import class_names

        return len(class_names(self.base.dataset))

    def build(self, hp):
        from models.registry import build_model

        cfg, train = self.declared_configs(hp)
        return build_model(train.model, None, 0, seed=cfg.seed, **train.hparams)

    def fitted_splits(self, train: TrainConfig) -> tuple[str, ...]:
        """The splits the retrained run is fitted on, hence the songs a trial is scored on."""
        return ("train", "validation") if train.refit else ("train",)

    def trial_data(self, hp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vectors, labels, song ids) of every window of the fitted splits, for this trial's
        pipeline and feature settings; the last `CACHED_PIPELINES` are kept."""
        from models.registry import featurizer, get_approach
        from pipeline.experiments.sklearn_training import split_vectors

        cfg, train = self.configs(hp.values)
        approach = get_approach(train.model)
        feature_values = approach.featurize_step.bind({**approach.defaults, **train.hparams})
        key = json.dumps([cfg.to_dict(), feature_values], sort_keys=True, default=str)
        if key not in self._vectors:
            featurize = featurizer(train.model, train.hparams)
            parts = [split_vectors(cfg, train, split, featurize, verbose=self.verbose)
                     for split in self.fitted_splits(train)]
            self._vectors[key] = (np.concatenate([p[0] for p in parts]),
                                  np.concatenate([p[1] for p in parts]),
                                  np.asarray([str(s) for p in parts for s in p[2]]))
            while len(self._vectors) > CACHED_PIPELINES:
                self._vectors.popitem(last=False)
        self._vectors.move_to_end(key)
        return self._vectors[key]


class SongCVTuner(tuners_lib.ResumableTunerMixin, keras_tuner.SklearnTuner):
    """``SklearnTuner`` whose trials read their own vectors and are scored by song (see the
    module docstring); resumable like the Keras path's tuners."""

    def search(self, verbose: int = 1):
        self.oracle.verbose = verbose  # what BaseTuner.search does with a Keras fit's verbose
        # SklearnTuner.search takes one fixed (X, y); a trial's vectors come from its values
        return super().search(None, None)

    def run_trial(self, trial, *unused_args, **unused_kwargs) -> dict:
        hp = trial.hyperparameters
        x, y, song_ids = self.hypermodel.trial_data(hp)
        start = time.perf_counter()
        try:
            scores = song_cv_scores(lambda: self.hypermodel.build(hp), x, y, song_ids, self.cv,
                                    self.hypermodel.num_classes)
        except (ValueError, ConfigError) as e:  # e.g. an SVC calibration short of windows
            raise keras_tuner.errors.FailedTrialError(str(e)) from e
        return {"cv_song_accuracy": scores["cv_song_accuracy"],
                "cv_window_accuracy": scores["cv_window_accuracy"],
                "cv_songs": float(scores["cv_songs"]),
                "fit_seconds": time.perf_counter() - start}


def make_estimator_tuner(kind: str, hypermodel: EstimatorHyperModel, *, objective: str,
                         max_trials: int, seed: int, cv_folds: int, directory: str,
                         project_name: str, overwrite: bool = False,
                         num_initial_points=None) -> SongCVTuner:
    """A resumable `SongCVTuner` of `kind` ("random", "bayesian" or "grid") maximising
    `objective` (one of `SKLEARN_OBJECTIVES`; `tuning.search.check_objective_and_tuner`
    refuses the others before anything is written)."""
    oracle = tuners_lib.make_oracle(kind, keras_tuner.Objective(objective, direction="max"),
                                    max_trials=max_trials, seed=seed,
                                    num_initial_points=num_initial_points)
    oracle.values_filter = hypermodel.is_valid
    tuner = SongCVTuner(oracle=oracle, hypermodel=hypermodel, cv=SongKFold(cv_folds, seed),
                        directory=directory, project_name=project_name, overwrite=overwrite)
    tuner.resume(overwrite)
    return tuner
