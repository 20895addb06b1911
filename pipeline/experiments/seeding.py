"""Seeds and determinism, set explicitly where a run or a trial starts.

Nothing else in the project touches global random state: model builders draw their initial
weights from it, tf.data shuffles take ``cfg.seed`` directly, and scikit-learn estimators get
``random_state``.  ``seed_everything`` is called at the start of every training run and tuning
trial (so each run's initial weights depend only on its seed, not on what ran before it in the
process); ``configure_determinism`` once by a command-line entry point.
"""

from __future__ import annotations


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's, TensorFlow's and Keras's global random generators."""
    import keras

    keras.utils.set_random_seed(seed)


def configure_determinism(enabled: bool) -> None:
    """Turn on TensorFlow's deterministic ops for this process (CPU: always possible).

    Process-wide and irreversible in TF 2.17, so only entry points call it, once.
    """
    if enabled:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
