"""Small trained runs for the serving tests (SavedModel, TFLite, the web page), trained once.

Each trains in ~20 s on ``synthetic_small`` with 1.5 s windows (as tests/test_cli.py does): one
per transform placement, so the exported graph is checked with the transform in the data path
(mfcc, cnn1d) and inside the model (mel, cnn2d), and one scikit-learn run that export refuses.
"""

from __future__ import annotations

import pytest

FAST = ["--window-seconds", "1.5", "--step-seconds", "1.5", "--epochs", "2", "--verbose", "0",
        "--dataset-config", "synthetic_small"]


def _train(tmp_path_factory, data_dir, name, *flags):
    from pipeline import train

    run = tmp_path_factory.mktemp("serving_runs") / name
    assert train.main([*FAST, "--data-dir", data_dir, "--run-dir", str(run), *flags]) == 0
    return run


@pytest.fixture(scope="session")
def data_run(tmp_path_factory, small_data_dir):
    """Keras, transform in tf.data: mfcc features into a cnn1d."""
    return _train(tmp_path_factory, small_data_dir, "mfcc_cnn1d", "--transform", "mfcc",
                  "--model", "cnn1d")


@pytest.fixture(scope="session")
def model_run(tmp_path_factory, small_data_dir):
    """Keras, transform as the model's first layer: mel in a cnn2d."""
    return _train(tmp_path_factory, small_data_dir, "mel_cnn2d_in_model", "--transform", "mel",
                  "--model", "cnn2d", "--transform-placement", "model")


@pytest.fixture(scope="session")
def sklearn_run(tmp_path_factory, small_data_dir):
    return _train(tmp_path_factory, small_data_dir, "mfcc_rf", "--transform", "mfcc",
                  "--model", "rf")
