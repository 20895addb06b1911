"""Keras Tuner searches over the best approach: model and pipeline hyperparameters together."""
