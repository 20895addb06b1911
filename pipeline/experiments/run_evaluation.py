"""Evaluating a run: its metrics on a split, written into the run directory, and shown.

``evaluate_split`` streams a split through the run's own pipeline config and model; the
metrics (window and song level) go to ``metrics[_<split>].json`` with two confusion matrices.
Evaluation writes nothing else: what training knows stays in ``training.json``.
"""

from __future__ import annotations

import tensorflow as tf

from core.config import PipelineConfig
from core.errors import ConfigError
from core.files import write_json_atomic
from pipeline.experiments import metrics as metrics_lib
from pipeline.experiments import plots
from pipeline.experiments.predictor import Predictor
from pipeline.experiments.run_dir import RunDir
from pipeline.stream.dataset import load_songs, make_dataset, song_to_windows


def evaluate_split(predictor: Predictor, split: str = "test", verbose: bool = True) -> dict:
    """Metrics of a predictor on one split of the dataset its run was trained on (an approach
    on a frozen network: from the embedding store, see ``_split_batches``)."""
    ds, predictor = _split_batches(predictor, split, verbose)
    probs, labels, ids = predictor.predict_dataset(ds, desc=f"evaluating {split}", verbose=verbose)
    if not len(probs):
        raise no_windows_error(predictor.pipeline, split)
    return metrics_lib.evaluate_windows(probs, labels, ids, predictor.class_names)


def _split_batches(predictor: Predictor, split: str, verbose: bool):
    """The batches ``predictor`` reads for ``split``: the approach's vectors from the embedding
    store where it has one (and the predictor then on vectors), else the pipeline's features."""
    from pipeline.stream.embedding_store import store_for

    if predictor.kind == "sklearn":
        store = store_for(predictor.pipeline, predictor.train, verbose=verbose)
        if store is not None:
            return store.batches(split), predictor.on_vectors()
    return make_dataset(predictor.pipeline, split, training=False, with_song_id=True), predictor


def no_windows_error(cfg: PipelineConfig, split: str) -> ConfigError:
    """The error for a split none of whose songs is as long as one window."""
    w = cfg.window
    return ConfigError(
        f"split {split!r} of gtzan_tfds/{cfg.dataset.name} gives no windows: every song is "
        f"shorter than one {w.window_seconds:g} s window (--window-seconds); use shorter "
        "windows, or --pad-end true to zero-pad a song's last partial window"
    )


def require_windows(cfg: PipelineConfig, split: str) -> None:
    """ConfigError unless ``split`` gives at least one window with ``cfg``.

    Reads songs until the first window (one song when any is long enough; the whole split
    only when none is), so a split with no windows fails before training, not after.
    """
    songs = load_songs(cfg.dataset, split)
    counts = songs.map(lambda song: tf.shape(song_to_windows(song, cfg)["window"])[0])
    if not any(int(n) > 0 for n in counts):
        raise no_windows_error(cfg, split)


def write_evaluation(run: RunDir, split: str, result: dict, title: str = "") -> None:
    """metrics json and confusion-matrix PNGs (song and window level) for one split."""
    names = result["class_names"]
    plots.plot_confusion_matrix(
        result["confusion_matrix_song"], names, run.confusion_png(split, "song"),
        f"{title}\n{split}: song accuracy {result['song_accuracy_mean_vote']:.1%} "
        f"({result['num_songs']} songs, mean-probability vote)",
    )
    plots.plot_confusion_matrix(
        result["confusion_matrix_window"], names, run.confusion_png(split, "window"),
        f"{title}\n{split}: window accuracy {result['window_accuracy']:.1%} "
        f"({result['num_windows']} windows)",
    )
    # Last: a run counts as evaluated once its metrics exist (RunDir.is_evaluated), so a kill
    # before this line leaves it unevaluated rather than evaluated without its figures.
    write_json_atomic(run.metrics_json(split), result)


def evaluate_run(run: RunDir, split: str = "test", *, predictor: Predictor | None = None,
                 verbose: bool = True) -> dict:
    """Evaluate a trained run on ``split`` and write the result into it; returns the metrics."""
    predictor = predictor or Predictor.from_run(run.path)
    result = evaluate_split(predictor, split, verbose=verbose)
    title = f"{predictor.train.model} on {predictor.pipeline.transform.name} ({predictor.pipeline.dataset.name})"
    write_evaluation(run, split, result, title)
    return result


def format_summary(result: dict, title: str = "") -> str:
    """A small table of the headline numbers, for the terminal."""
    rows = [
        ("windows", f"{result['num_windows']}"),
        ("songs", f"{result['num_songs']}"),
        ("window accuracy", f"{result['window_accuracy']:.1%}"),
        ("song accuracy (mean-probability vote)", f"{result['song_accuracy_mean_vote']:.1%}"),
        ("song accuracy (majority vote)", f"{result['song_accuracy_majority_vote']:.1%}"),
        ("window macro F1", f"{result['window_macro_f1']:.3f}"),
        ("song macro F1", f"{result['song_macro_f1']:.3f}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [title, "-" * (width + 12)] if title else []
    lines += [f"{k:<{width}}  {v:>8}" for k, v in rows]
    return "\n".join(lines)
