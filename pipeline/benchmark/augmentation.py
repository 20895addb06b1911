"""Does augmenting the training stream help?  Repeated seeds, with and without, on one split.

    python -m pipeline.benchmark.augmentation --dataset-config gtzan \\
        --manual-dir /work/shared/data/gtzan_sample --data-dir DIR --out runs/augment --seeds 3

trains every (approach, condition, seed) of ``STUDY`` into ``OUT/<model>_<transform>/<condition>
/seed<k>`` with ``pipeline.experiments.training.train_run`` (a re-run skips finished runs), then
prints mean +- standard deviation over the seeds of the test window and song accuracy, and
writes them to ``OUT/augmentation.json``.  The split is the dataset's own (fixed); only the
seed of initialisation, shuffling and augmentation changes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

from core.config import AugmentConfig, DatasetConfig, PipelineConfig, TrainConfig, TransformConfig
from pipeline.cli.entry import run_cli

ALL = AugmentConfig(random_offsets=True, gain_db=6.0, mixup_alpha=0.2, time_masks=2, freq_masks=2)
CONDITIONS = {
    "none": AugmentConfig(),
    "offsets": AugmentConfig(random_offsets=True),
    "masks": AugmentConfig(time_masks=2, freq_masks=2),
    "mixup": AugmentConfig(mixup_alpha=0.2),
    "gain": AugmentConfig(gain_db=6.0),
    "all": ALL,
}
# (model, transform) -> conditions compared
STUDY = {
    ("cnn2d", "mel"): ("none", "offsets", "masks", "mixup", "all"),
    ("lstm", "mfcc"): ("none", "offsets", "all"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.benchmark.augmentation",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-config", default="gtzan")
    parser.add_argument("--manual-dir", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", required=True, help="folder of the run directories")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--only", default=None, help="MODEL:TRANSFORM to run just that approach")
    parser.add_argument("--conditions", default=None,
                        help=f"comma-separated subset of {', '.join(CONDITIONS)}")
    return parser


def run_study(args) -> list[dict[str, Any]]:
    from pipeline.experiments.training import train_run

    rows = []
    for (model, transform), conditions in STUDY.items():
        if args.only and args.only != f"{model}:{transform}":
            continue
        for condition in conditions:
            if args.conditions and condition not in args.conditions.split(","):
                continue
            for seed in range(1, args.seeds + 1):
                cfg = PipelineConfig(
                    dataset=DatasetConfig(args.dataset_config, args.data_dir, args.manual_dir),
                    transform=TransformConfig(name=transform),
                    augment=dataclasses.replace(CONDITIONS[condition]), seed=seed)
                train = TrainConfig(model=model, epochs=args.epochs, patience=args.patience)
                run_dir = Path(args.out) / f"{model}_{transform}" / condition / f"seed{seed}"
                s = train_run(cfg, train, run_dir, verbose=0)
                rows.append({"model": model, "transform": transform, "condition": condition,
                             "seed": seed, "test_window_accuracy": s["window_accuracy"],
                             "test_song_accuracy": s["song_accuracy_mean_vote"],
                             "validation_window_accuracy": s["validation_window_accuracy"],
                             "epochs_trained": s["epochs_trained"],
                             "training_seconds": s["training_seconds"]})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation (ddof=1) over the seeds of each (approach, condition)."""
    import numpy as np

    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["model"], r["transform"], r["condition"]), []).append(r)
    out = []
    for (model, transform, condition), rs in groups.items():
        entry = {"model": model, "transform": transform, "condition": condition, "seeds": len(rs)}
        for key in ("test_window_accuracy", "test_song_accuracy", "epochs_trained",
                    "training_seconds"):
            values = np.array([r[key] for r in rs], dtype=float)
            entry[key] = float(values.mean())
            entry[key + "_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out.append(entry)
    return out


def summary_table(summary: list[dict[str, Any]]) -> str:
    from pipeline.benchmark.throughput import table

    rows = [("approach", "augmentation", "seeds", "test windows", "test songs", "epochs")]
    for s in summary:
        rows.append((f"{s['model']} on {s['transform']}", s["condition"], str(s["seeds"]),
                     f"{s['test_window_accuracy']:.3f} ± {s['test_window_accuracy_std']:.3f}",
                     f"{s['test_song_accuracy']:.2f} ± {s['test_song_accuracy_std']:.2f}",
                     f"{s['epochs_trained']:.0f}"))
    return table(rows)


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    rows = run_study(args)
    summary = summarise(rows)
    print(summary_table(summary))
    out = Path(args.out) / "augmentation.json"
    out.write_text(json.dumps({"runs": rows, "summary": summary,
                               "conditions": {k: dataclasses.asdict(v) for k, v in CONDITIONS.items()}},
                              indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
