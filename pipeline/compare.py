"""`python -m pipeline.compare`: every approach on the same data, seed and budget, in one report.

Trains the grid of transforms x models (invalid pairs skipped), reusing finished runs so a
re-run after an interruption only trains what is missing, and writes into one report directory:

    results.csv, results.md     approach, window/song accuracy, macro F1, training time, size
    accuracy.png                window and song accuracy of every approach, best first
    confusion_<approach>.png    song-level confusion matrices of the best approaches
    per_class.csv, per_class.md, per_class.png   per-genre song recall: easy and hard genres
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import shutil
import sys
from pathlib import Path

from pipeline.cli import flags as cli_args
from pipeline.cli import entry as cli_common
from core.config import TRANSFORMS, PipelineConfig, TrainConfig

# The study's grid, in its order: baselines, CNNs on transforms, CNN on raw audio, encoder, LSTM.
DEFAULT_MODELS = ("svc", "rf", "cnn1d", "cnn2d", "encoder_classifier", "lstm")
QUICK_GRID = (("mfcc", "svc"), ("mfcc", "rf"), ("mfcc", "cnn1d"), ("mel", "cnn2d"), ("mfcc", "lstm"))
BEST_CONFUSION_MATRICES = 3
RESULT_COLUMNS = (
    "approach", "transform", "model", "window_accuracy", "song_accuracy", "song_accuracy_majority",
    "window_macro_f1", "song_macro_f1", "training_seconds", "parameters", "run_dir",
)
RANDOM_SPLIT_NOTE = (
    "Note: these results use a random song-level split. On GTZAN such splits are optimistic: "
    "the same artists appear in train and test and some clips are duplicated (Sturm 2013). "
    "The fault_filtered config (Kereliuk, Sturm & Larsen 2015) is the honest split."
)
SYNTHETIC_NOTE = "Note: synthetic data made by gtzan_tfds, not music: a smoke test of the grid, not a result."


def grid(models, transforms, exclude=()) -> list[tuple[str, str]]:
    """Valid (transform, model) pairs of the requested models and transforms.

    `exclude` holds "transform:model" strings of pairs to leave out.
    """
    from models.registry import get_approach

    excluded = {tuple(item.split(":", 1)) for item in exclude}
    pairs = []
    for model in models:
        accepted = get_approach(model).transforms
        pairs += [(t, model) for t in transforms if t in accepted and (t, model) not in excluded]
    return pairs


def approach_name(transform: str, model: str) -> str:
    return f"{model} on {transform}"


def _row(result: dict, run_dir: Path) -> dict:
    return {
        "approach": approach_name(result["transform"], result["model"]),
        "transform": result["transform"],
        "model": result["model"],
        "window_accuracy": round(result["window_accuracy"], 4),
        "song_accuracy": round(result["song_accuracy_mean_vote"], 4),
        "song_accuracy_majority": round(result["song_accuracy_majority_vote"], 4),
        "window_macro_f1": round(result["window_macro_f1"], 4),
        "song_macro_f1": round(result["song_macro_f1"], 4),
        "training_seconds": round(result.get("training_seconds", float("nan")), 1),
        "parameters": result.get("parameters", 0),
        "run_dir": str(run_dir),
    }


def _markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(results: list[tuple[dict, Path]], report_dir: Path, dataset: str) -> str:
    """All report files from finished runs; returns the results table (markdown) for the terminal."""
    from pipeline.experiments import plots

    rows = sorted((_row(r, d) for r, d in results),
                  key=lambda r: (-r["song_accuracy"], -r["window_accuracy"]))
    by_approach = {approach_name(r["transform"], r["model"]): r for r, _ in results}
    report_dir.mkdir(parents=True, exist_ok=True)
    with open(report_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    note = SYNTHETIC_NOTE if dataset.startswith("synthetic") else RANDOM_SPLIT_NOTE if dataset == "gtzan" else ""
    pct = lambda x: f"{x:.1%}"  # noqa: E731
    table = _markdown_table(
        ("approach", "window acc.", "song acc. (mean vote)", "song acc. (majority)", "song macro F1",
         "train time (s)", "parameters"),
        [(r["approach"], pct(r["window_accuracy"]), pct(r["song_accuracy"]),
          pct(r["song_accuracy_majority"]), f"{r['song_macro_f1']:.3f}", r["training_seconds"],
          f"{r['parameters']:,}") for r in rows],
    )
    title = f"Approaches on {dataset} (test split)"
    plots.plot_accuracy_comparison(
        [r["approach"] for r in rows], [r["window_accuracy"] for r in rows],
        [r["song_accuracy"] for r in rows], report_dir / "accuracy.png",
        title + ("\n(random split: optimistic)" if dataset == "gtzan" else ""),
    )

    class_names = next(iter(by_approach.values()))["class_names"]
    per_class = {r["approach"]: [by_approach[r["approach"]]["per_class_song"][c]["recall"]
                                 if by_approach[r["approach"]]["per_class_song"][c]["support"] else float("nan")
                                 for c in class_names] for r in rows}
    with open(report_dir / "per_class.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["approach", *class_names])
        for name, recalls in per_class.items():
            writer.writerow([name, *(round(x, 4) for x in recalls)])
    means = {c: sum(v[i] for v in per_class.values()) / len(per_class) for i, c in enumerate(class_names)}
    easy_to_hard = sorted(means, key=lambda c: -means[c])
    per_class_md = _markdown_table(
        ("approach", *class_names),
        [(n, *("-" if x != x else pct(x) for x in v)) for n, v in per_class.items()],
    )
    plots.plot_per_class_accuracy(per_class, class_names, report_dir / "per_class.png",
                                  "Song-level recall per genre (test split)")
    (report_dir / "per_class.md").write_text(
        f"# Per-genre song recall\n\n{per_class_md}\n\nEasiest to hardest (mean recall over approaches): "
        + ", ".join(f"{c} {pct(means[c])}" for c in easy_to_hard) + "\n")

    confusion = []
    for r in rows[:BEST_CONFUSION_MATRICES]:
        out = report_dir / f"confusion_{r['model']}_{r['transform']}.png"
        plots.plot_confusion_matrix(
            by_approach[r["approach"]]["confusion_matrix_song"], class_names, out,
            f"{r['approach']}: song accuracy {pct(r['song_accuracy'])}",
        )
        confusion.append(out.name)

    summary = f"# {title}\n\n" + (f"> {note}\n\n" if note else "") + table
    (report_dir / "results.md").write_text(
        summary
        + "\n\n![accuracy](accuracy.png)\n\n"
        + "".join(f"![{c}]({c})\n" for c in confusion)
        + "\nPer-genre song recall: [per_class.md](per_class.md), ![per class](per_class.png)\n"
    )
    return summary


def run_grid(cfg: PipelineConfig, train: TrainConfig, pairs, report_dir: Path, verbose: int = 1):
    """Train every pair (reusing finished runs); returns [(metrics, run_dir)]."""
    from tqdm.auto import tqdm

    from pipeline.experiments.training import train_run

    results = []
    bar = tqdm(pairs, desc="approaches", unit="run", file=sys.stdout)
    for transform, model in bar:
        bar.set_postfix_str(approach_name(transform, model))
        run_cfg = dataclasses.replace(cfg, transform=dataclasses.replace(cfg.transform, name=transform))
        run_train = dataclasses.replace(train, model=model, hparams={})
        run_dir = report_dir / "runs" / f"{transform}_{model}"
        results.append((train_run(run_cfg, run_train, run_dir, verbose=verbose), run_dir))
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="approaches (default: all)")
    parser.add_argument("--transforms", nargs="+", default=list(TRANSFORMS), choices=TRANSFORMS,
                        help="transforms (default: all; invalid pairs are skipped)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="TRANSFORM:MODEL",
                        help="pairs to leave out of the grid, e.g. stft:lstm")
    parser.add_argument("--report-dir", default="reports/compare", help="where the report and runs go")
    parser.add_argument("--quick", action="store_true",
                        help="reduced grid, 2 epochs, 1 s windows on synthetic data (the tests use it)")
    parser.add_argument("--fresh", action="store_true", help="retrain runs even when finished")
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2), help="per-run Keras output")
    cli_args.add_pipeline_args(parser)
    cli_args.add_train_args(parser)
    return parser


QUICK_PIPELINE = {"WindowConfig.window_seconds": 1.0, "WindowConfig.step_seconds": 1.0}
QUICK_TRAIN = {"TrainConfig.epochs": 2, "TrainConfig.pretrain_epochs": 1}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:  # quick defaults apply only where the user gave no flag
        for key, value in {**QUICK_PIPELINE, **QUICK_TRAIN}.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    cfg = cli_args.pipeline_config_from_args(args).validate()
    train = cli_args.train_config_from_args(args).validate()
    pairs = list(QUICK_GRID) if args.quick else grid(args.models, args.transforms, args.exclude)
    if not pairs:
        raise cli_args.ConfigError("no valid (transform, model) pair in the requested grid")
    report_dir = Path(args.report_dir)
    if args.fresh and (report_dir / "runs").exists():
        shutil.rmtree(report_dir / "runs")
    print(f"{len(pairs)} approaches on {cfg.dataset.name}: "
          + ", ".join(approach_name(t, m) for t, m in pairs))
    results = run_grid(cfg, train, pairs, report_dir, verbose=args.verbose)
    print(write_report(results, report_dir, cfg.dataset.name))
    print(f"report: {report_dir}/results.md (+ results.csv, accuracy.png, per_class.png, confusion_*.png)")
    return 0


if __name__ == "__main__":
    cli_common.run_cli(main)
