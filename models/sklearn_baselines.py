"""scikit-learn baselines on compact pooled features: an RBF SVM and a random forest.

Why they exist: the reference point of the study.  If a small classifier on per-window summary
statistics (mean and standard deviation of each coefficient over time, the classic GTZAN
feature set) matches a neural network, the network has not earned its cost.

The features come from ``pool_features``, computed with TensorFlow on the pipeline's batches, so
the same tf.data stream feeds both worlds; the training CLI collects the small pooled arrays and
calls ``fit``.  Scaling lives inside the pipeline (``make_pipeline(StandardScaler(), ...)``), so
what is fitted on train is what is applied to test.
"""

from __future__ import annotations

from typing import Optional, Union

import tensorflow as tf
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

N_BANDS = 64  # contiguous bands a 1-D spectrum (fft) is pooled into
SVC_CALIBRATION_FOLDS = 5  # cross-validation folds of the SVC's probability calibration


def pool_features(features: tf.Tensor, n_bands: int = N_BANDS) -> tf.Tensor:
    """Per-window summary statistics: ``[B, T, F] -> [B, 2F]``, ``[B, F] -> [B, 2 * n_bands]``.

    2-D transforms (stft, mel, mfcc): the mean over time of each coefficient, then the standard
    deviation over time of each (population std, like ``numpy.std``).

    1-D spectra (fft, N//2+1 bins): the bins are cut into ``min(n_bands, F)`` contiguous bands,
    bin ``i`` going to band ``floor(i * bands / F)``; the result is the mean of each band, then
    the standard deviation of each band.  (Raw audio is refused by the registry: its mean is ~0
    and band statistics of samples are a loudness envelope, not a description of the music.)
    """
    x = tf.convert_to_tensor(features, dtype=tf.float32)
    if x.shape.rank == 3:
        return tf.concat([tf.reduce_mean(x, axis=1), tf.math.reduce_std(x, axis=1)], axis=-1)
    if x.shape.rank != 2:
        raise ValueError(f"pool_features needs [B, T, F] or [B, F] features, got shape {x.shape}")

    n_bins = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]  # static when known
    bands = min(n_bands, n_bins) if isinstance(n_bins, int) else tf.minimum(n_bands, n_bins)
    band_of_bin = (tf.range(n_bins) * bands) // n_bins  # [F], non-decreasing, 0 .. bands-1
    by_bin = tf.transpose(x)  # [F, B]: segment ops reduce the leading axis
    mean = tf.math.unsorted_segment_mean(by_bin, band_of_bin, bands)  # [bands, B]
    centred = by_bin - tf.gather(mean, band_of_bin)  # centred first: dB offsets cost no precision
    std = tf.sqrt(tf.math.unsorted_segment_mean(tf.square(centred), band_of_bin, bands))
    return tf.transpose(tf.concat([mean, std], axis=0))  # [B, 2 * bands]


def build_svc(
    *,
    seed: int = 42,
    C: float = 10.0,
    gamma: Union[str, float] = "scale",
    kernel: str = "rbf",
) -> Pipeline:
    """StandardScaler -> SVC with Platt-scaled probabilities.

    ``SVC(probability=True)`` is deprecated since scikit-learn 1.9 (removed in 1.11); its
    documented replacement, ``CalibratedClassifierCV(SVC(), ensemble=False)``, does the same thing
    (sigmoid fitted on 5-fold cross-validated decision values, then one SVC on all the data), and
    its ``predict`` agrees with ``predict_proba``.  The SVC is ``pipeline[-1].estimator``.
    """
    svc = SVC(C=C, gamma=gamma, kernel=kernel, random_state=seed)
    return make_pipeline(
        StandardScaler(),
        CalibratedClassifierCV(svc, method="sigmoid", cv=SVC_CALIBRATION_FOLDS, ensemble=False),
    )

def build_rf(
    *,
    seed: int = 42,
    n_estimators: int = 300,
    max_depth: Optional[int] = None,
    min_samples_leaf: int = 1,
    max_features: Union[str, float, None] = "sqrt",
    n_jobs: Optional[int] = None,
) -> Pipeline:
    """StandardScaler -> RandomForestClassifier (seeded).

    The scaler changes nothing for trees; it is there so that every baseline has the same
    pipeline shape (and the same saved-artifact layout).
    """
    return make_pipeline(
        StandardScaler(),
        RandomForestClassifier(
            n_estimators=n_estimators,
            max_depth=max_depth,
            min_samples_leaf=min_samples_leaf,
            max_features=max_features,
            n_jobs=n_jobs,
            random_state=seed,
        ),
    )
