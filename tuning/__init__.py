"""Keras Tuner searches over the best approach: model and pipeline hyperparameters together.

    search.py             the CLI: python -m tuning.search (flags -> space and configs -> search)
    compare_report.py     which approach: the flags, else the best Keras row of a compare report
    project.py            the project folder: its name, search.json, resuming with the same settings
    search_space.py       the space as keras_tuner.HyperParameters, and its mapping onto configs
    hypermodel.py         keras_tuner.HyperModel: build = model, fit = the trial's own tf.data pipeline
    estimator_search.py   scikit-learn approaches (svc, rf, musicnn probe): keras_tuner.SklearnTuner,
                          each trial's own vectors, cross-validated by song
    nested.py             the search inside each outer fold, tuned against default: python -m tuning.nested
    tuners.py             keras_tuner's tuners with a resume that loses and repeats nothing
    keras_tuner_compat.py the Keras Tuner internals with no public form, version-checked
    roles.py              chief, worker or standalone (keras_tuner's environment variables)
    summary.py            summary.json and summary.md of a search
    retrain.py            the best trial retrained into a run directory
    distributed.py        chief/worker mode on one machine: python -m tuning.distributed

Constants here are free of TensorFlow, so `--help` starts fast.
"""

TUNERS = ("random", "bayesian", "grid", "hyperband")
TUNE_PARTS = ("all", "model", "pipeline")
OBJECTIVES = {
    "val_accuracy": "validation window accuracy",
    "val_song_accuracy": "validation song accuracy (mean-probability vote over a song's windows)",
    "cv_song_accuracy": "scikit-learn approaches: song accuracy of a cross-validation by song "
                        "over the training songs",
    "cv_window_accuracy": "scikit-learn approaches: window accuracy of that cross-validation",
}
DEFAULT_OBJECTIVE = {"keras": "val_accuracy", "sklearn": "cv_song_accuracy"}
