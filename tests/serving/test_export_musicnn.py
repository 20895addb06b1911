"""The ``musicnn`` approach exports: its logistic probe, rewritten as a Dense layer after the
frozen network (``models.musicnn_probe.probe_as_keras``), computes what the scikit-learn probe
computes on the network's features; the SVC probe, which has no such form, is refused.

The end-to-end check (a trained musicnn run, exported, loaded in a process that cannot import
this project, against ``pipeline.predict`` on real clips) is in test_export.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.config import PipelineConfig, TransformConfig
from core.errors import ConfigError
from models import musicnn_checkpoint

pytestmark = pytest.mark.skipif(
    not musicnn_checkpoint.is_installed(),
    reason=f"musicnn wheel not installed ({musicnn_checkpoint.INSTALL_HINT})")

TOL = 1e-5  # measured: 2.4e-7 (5 classes), 1.2e-7 (2 classes) on real windows


@pytest.fixture(scope="module")
def real_patches(gtzan_sample_dir):
    """musicnn patches of 3 s windows of five real clips (five genres), with their genre."""
    from gtzan_tfds.audio_io import read_audio
    from models.registry import MUSICNN_WINDOW_SECONDS
    from pipeline.stream.dataset import features_from_audio

    cfg = PipelineConfig(transform=TransformConfig(name="musicnn"))
    cfg.window.sample_rate = 16000
    cfg.window.window_seconds = cfg.window.step_seconds = MUSICNN_WINDOW_SECONDS
    cfg = cfg.validate()
    patches, labels = [], []
    for label, genre in enumerate(("blues", "classical", "metal", "jazz", "reggae")):
        audio = read_audio(gtzan_sample_dir / "genres" / genre / f"{genre}.00001.wav")
        for batch in features_from_audio(audio, cfg).as_numpy_iterator():
            patches.append(batch)
            labels += [label] * len(batch)
    return np.concatenate(patches), np.array(labels)


@pytest.mark.parametrize("classes", [5, 2])
def test_the_logistic_probe_as_keras_equals_the_fitted_probe(real_patches, classes):
    from models.musicnn_probe import build_musicnn_probe, musicnn_features, probe_as_keras

    patches, labels = real_patches
    keep = labels < classes
    patches, labels = patches[keep], labels[keep]
    features = musicnn_features(patches, weights="msd", layer="mean_pool").numpy()
    probe = build_musicnn_probe(C=0.5).fit(features, labels)
    expected = probe.predict_proba(features)
    got = probe_as_keras(probe, weights="msd", layer="mean_pool").predict(patches, verbose=0)
    assert got.shape == expected.shape == (len(labels), classes)
    assert np.abs(got - expected).max() < TOL
    # The comparison means something only where the probabilities are not saturated (0/1,
    # where any monotone map agrees) nor uniform (where any constant would): most rows' top
    # probability is strictly inside, and the rows differ.
    top = expected.max(axis=1)
    print(f"top probabilities: min {top.min():.3f}, median {np.median(top):.3f}, "
          f"saturated (>0.999) {np.mean(top > 0.999):.0%}")
    assert np.mean(top < 0.999) > 0.5 and top.min() > 1 / classes + 0.01
    assert np.ptp(expected[:, 0]) > 0.1


def test_the_svc_probe_cannot_be_rewritten():
    from models.musicnn_probe import build_musicnn_probe, probe_as_keras
    from models.registry import keras_equivalent

    features = np.random.default_rng(0).normal(size=(40, 8))
    svc = build_musicnn_probe(probe="svc").fit(features, np.arange(40) % 2)
    with pytest.raises(ConfigError, match="only the logistic-regression probe"):
        probe_as_keras(svc)
    assert keras_equivalent("rf", object()) is None  # no Keras form: export refuses the run
