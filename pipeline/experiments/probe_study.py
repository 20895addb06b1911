"""Which musicnn features and probe: one feature pass, every choice on the same folds.

Why it exists: the ``musicnn`` approach has choices (weights, layer, probe, its C, and whether
a song is decided from its windows or from its windows' features pooled first) that would
each cost a full cross-validation through ``pipeline.compare`` (one feature pass per fold).
Here the frozen networks' outputs come from the embedding store (all three feature layers of
one forward pass over every window, computed once and shared with ``pipeline.train`` and
``pipeline.compare``), and every choice is scored by out-of-fold song accuracy on
exactly the folds ``--folds K`` uses (``pipeline.stream.folds``: same songs, same seed), each
probe fitted on the fold's train + validation songs as ``pipeline.train`` refits it
(``--no-refit``: train songs only).

    python -m pipeline.experiments.probe_study --dataset-config gtzan --data-dir DIR [--json F]

Pooling ``window``: the probe is fitted on windows and a song is the mean of its windows'
probabilities (what the pipeline does).  ``song``: each song is one vector, the mean and
standard deviation of its windows' features, and the probe is fitted on songs.
"""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Optional

import numpy as np

from core.config import DatasetConfig, PipelineConfig, TransformConfig, WindowConfig
from pipeline.cli.entry import run_cli

PROBES = {"logistic C=1": ("logistic", 1.0), "logistic C=0.1": ("logistic", 0.1),
          "svc C=10": ("svc", 10.0), "svc C=1": ("svc", 1.0)}
POOLINGS = ("window", "song")


def window_features(cfg: PipelineConfig, weights: str, verbose: bool = True) -> dict:
    """Features of every window of the pooled splits, all layers: dict of arrays + ids.

    Read from the embedding store (``pipeline.stream.embedding_store``), built on first use:
    the network passes over the songs once per weights, dataset and window config, and this
    study, ``pipeline.train --model musicnn`` and ``pipeline.compare`` share that pass."""
    from models.musicnn_probe import LAYERS, musicnn_frozen_features
    from pipeline.stream.embedding_store import EmbeddingStore

    store = EmbeddingStore.ensure(cfg, musicnn_frozen_features(weights=weights), verbose=verbose)
    splits = cfg.dataset.fold_splits.split("+")
    out = {}
    for layer in LAYERS:
        parts = [store.arrays(split, layer) for split in splits]
        out[layer] = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    ids = [s.decode() for p in parts for s in p[2]]
    return {**out, "labels": labels, "song_ids": np.asarray(ids)}


def song_folds(song_ids: np.ndarray, labels: np.ndarray, k: int, seed: int) -> dict[str, int]:
    """song id -> fold, as ``pipeline.stream.folds`` assigns them."""
    from pipeline.stream.folds import assign_folds

    songs, first = np.unique(song_ids, return_index=True)
    return dict(zip(songs, assign_folds(songs, labels[first], k, seed)))


def pool_songs(x: np.ndarray, labels: np.ndarray, song_ids: np.ndarray):
    """One vector per song: mean and std of its windows' features; (vectors, labels, ids)."""
    songs = np.unique(song_ids)
    rows = [x[song_ids == s] for s in songs]
    vectors = np.stack([np.concatenate([r.mean(axis=0), r.std(axis=0)]) for r in rows])
    song_labels = np.asarray([labels[song_ids == s][0] for s in songs])
    return vectors, song_labels, songs


def oof_song_accuracy(x, labels, song_ids, folds: dict, k: int, probe, pooling: str,
                      refit: bool = True) -> float:
    """Out-of-fold song accuracy of one choice: fit on each fold's train split (and its
    validation split with ``refit``, as ``pipeline.train`` does), test its fold."""
    from models.musicnn_probe import build_musicnn_probe
    from pipeline.experiments.metrics import song_predictions
    from pipeline.stream.folds import folds_of_split

    if pooling == "song":
        x, labels, song_ids = pool_songs(x, labels, song_ids)
    fold_of = np.asarray([folds[s] for s in song_ids])
    correct = 0
    for fold in range(k):
        fitted = folds_of_split("train", fold, k)
        if refit:
            fitted |= folds_of_split("validation", fold, k)
        train = np.isin(fold_of, sorted(fitted))
        test = fold_of == fold
        model = build_musicnn_probe(probe=probe[0], C=probe[1]).fit(x[train], labels[train])
        probs = np.zeros((int(test.sum()), int(labels.max()) + 1))
        probs[:, model.classes_] = model.predict_proba(x[test])
        songs = song_predictions(probs, labels[test], song_ids[test])
        correct += int(np.sum(songs["mean_vote"] == songs["labels"]))
    return correct / len(folds)


def study(cfg: PipelineConfig, k: int, weights_list=("msd", "mtt"),
          refit: bool = True) -> list[dict]:
    """Every (weights, layer, probe, pooling) with its out-of-fold song accuracy, best first.

    An SVC is not fitted on pooled songs: its probability calibration needs 5 examples per
    class, more than a fold's train split has songs of a genre on small data."""
    from models.musicnn_probe import LAYERS

    rows = []
    for weights in weights_list:
        data = window_features(cfg, weights)
        folds = song_folds(data["song_ids"], data["labels"], k, cfg.dataset.fold_seed)
        for layer, (name, probe), pooling in itertools.product(LAYERS, PROBES.items(), POOLINGS):
            if pooling == "song" and probe[0] == "svc":
                continue
            accuracy = oof_song_accuracy(data[layer], data["labels"], data["song_ids"], folds,
                                         k, probe, pooling, refit)
            rows.append({"weights": weights, "layer": layer, "probe": name,
                         "pooling": pooling, "song_accuracy": accuracy, "songs": len(folds)})
            print(f"{weights} {layer:<12} {name:<15} {pooling:<7} {accuracy:.1%}", flush=True)
    return sorted(rows, key=lambda r: -r["song_accuracy"])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.experiments.probe_study",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-config", default="gtzan")
    parser.add_argument("--data-dir")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold-seed", type=int, default=42)
    parser.add_argument("--step-seconds", type=float, default=None,
                        help="hop between windows (default: the window, 2.976 s)")
    parser.add_argument("--no-refit", action="store_true",
                        help="fit each probe on the fold's train split only, not train + validation")
    parser.add_argument("--json", metavar="FILE", help="write every row as JSON")
    parser.add_argument("--embedding-dir", metavar="DIR",
                        help="where the embedding stores live (default: beside the dataset)")
    args = parser.parse_args(argv)
    from models.registry import MUSICNN_WINDOW_SECONDS

    cfg = PipelineConfig(
        dataset=DatasetConfig(name=args.dataset_config, data_dir=args.data_dir,
                              fold_seed=args.fold_seed, embedding_dir=args.embedding_dir),
        window=WindowConfig(sample_rate=16_000, window_seconds=MUSICNN_WINDOW_SECONDS,
                            step_seconds=args.step_seconds or MUSICNN_WINDOW_SECONDS),
        transform=TransformConfig(name="musicnn")).validate()
    rows = study(cfg, args.folds, refit=not args.no_refit)
    print("\nbest first:")
    for r in rows[:10]:
        print(f"  {r['song_accuracy']:.1%}  {r['weights']} {r['layer']} {r['probe']} {r['pooling']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    run_cli(main)
