"""Keras Tuner searches over the best approach: model and pipeline hyperparameters together.

    search_space.py   the hyperparameters (pipeline, training, model) and their mapping onto configs
    hypermodel.py     keras_tuner.HyperModel: build = model, fit = the trial's own tf.data pipeline
    tuners.py         keras_tuner's tuners with a resume that loses and repeats nothing
    distributed.py    chief/worker mode: the chief's oracle server, a local launcher
    search.py         the CLI: python -m tuning.search

Constants here are free of TensorFlow, so `--help` starts fast.
"""

TUNERS = ("random", "bayesian", "hyperband")
TUNE_PARTS = ("all", "model", "pipeline")
OBJECTIVES = {
    "val_accuracy": "validation window accuracy",
    "val_song_accuracy": "validation song accuracy (mean-probability vote over a song's windows)",
}
