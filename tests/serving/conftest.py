"""Small trained runs for the serving tests (SavedModel, TFLite, the web page), trained once.

Each trains in ~20 s on ``synthetic_small`` with 1.5 s windows (as tests/test_cli.py does): one
per transform placement, so the exported graph is checked with the transform in the data path
(mfcc, cnn1d) and inside the model (mel, cnn2d), one scikit-learn run that export refuses, and
a ``musicnn`` probe run (16 kHz, 2.976 s windows; needs the musicnn wheel), which exports as its
Keras equivalent.
"""

from __future__ import annotations

import pytest

FAST = ["--window-seconds", "1.5", "--step-seconds", "1.5", "--epochs", "2", "--verbose", "0",
        "--dataset-config", "synthetic_small"]


def _train(tmp_path_factory, data_dir, name, *extra):
    """What ``python -m pipeline.train`` does with these flags, less its process-wide
    ``configure_determinism`` (irreversible: it would change the tests that run after these)."""
    from pipeline.cli import flags
    from pipeline.experiments.training import train_run
    from pipeline.train import build_parser

    run = tmp_path_factory.mktemp("serving_runs") / name
    args = build_parser().parse_args([*FAST, "--data-dir", data_dir, "--run-dir", str(run), *extra])
    cfg = flags.pipeline_config_from_args(args).validate()
    train_run(cfg, flags.train_config_from_args(args).validate(), run, verbose=0)
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


@pytest.fixture(scope="session")
def musicnn_run(tmp_path_factory, small_data_dir):
    """The frozen musicnn probe (scikit-learn), its pipeline implied by the approach."""
    from models import musicnn_checkpoint

    if not musicnn_checkpoint.is_installed():
        pytest.skip(f"musicnn wheel not installed ({musicnn_checkpoint.INSTALL_HINT})")
    return _train(tmp_path_factory, small_data_dir, "musicnn_probe", "--model", "musicnn",
                  "--transform", "musicnn", "--sample-rate", "16000",
                  "--window-seconds", "2.976", "--step-seconds", "2.976")
