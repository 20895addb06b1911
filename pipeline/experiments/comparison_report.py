"""The report of a comparison: tables, accuracy chart, per-genre recall, confusion matrices.

    results.csv, results.md     approach, window/song accuracy, macro F1, training time, size
    accuracy.png                window and song accuracy of every approach, best first
    confusion_<approach>.png    song-level confusion matrices of the best approaches
    per_class.csv, per_class.md, per_class.png   per-genre song recall: easy and hard genres

Built from run summaries (``RunDir.summary``: test metrics + training record).
"""

from __future__ import annotations

import csv
from pathlib import Path

from core.files import write_text_atomic
from pipeline.experiments import plots

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


def approach_label(summary: dict) -> str:
    return summary.get("label") or f"{summary['model']} on {summary['transform']}"


def result_row(summary: dict, run_dir: Path) -> dict:
    return {
        "approach": approach_label(summary),
        "transform": summary["transform"],
        "model": summary["model"],
        "window_accuracy": round(summary["window_accuracy"], 4),
        "song_accuracy": round(summary["song_accuracy_mean_vote"], 4),
        "song_accuracy_majority": round(summary["song_accuracy_majority_vote"], 4),
        "window_macro_f1": round(summary["window_macro_f1"], 4),
        "song_macro_f1": round(summary["song_macro_f1"], 4),
        "training_seconds": round(summary.get("training_seconds", float("nan")), 1),
        "parameters": summary.get("parameters", 0),
        "run_dir": str(run_dir),
    }


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"


def dataset_note(dataset: str) -> str:
    if dataset.startswith("synthetic"):
        return SYNTHETIC_NOTE
    return RANDOM_SPLIT_NOTE if dataset == "gtzan" else ""


def write_results(rows: list[dict], report_dir: Path, dataset: str) -> str:
    """results.csv and accuracy.png; returns the results table (markdown)."""
    with open(report_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    plots.plot_accuracy_comparison(
        [r["approach"] for r in rows], [r["window_accuracy"] for r in rows],
        [r["song_accuracy"] for r in rows], report_dir / "accuracy.png",
        f"Approaches on {dataset} (test split)" + ("\n(random split: optimistic)" if dataset == "gtzan" else ""),
    )
    return markdown_table(
        ("approach", "window acc.", "song acc. (mean vote)", "song acc. (majority)", "song macro F1",
         "train time (s)", "parameters"),
        [(r["approach"], pct(r["window_accuracy"]), pct(r["song_accuracy"]),
          pct(r["song_accuracy_majority"]), f"{r['song_macro_f1']:.3f}", r["training_seconds"],
          f"{r['parameters']:,}") for r in rows],
    )


def write_per_class(summaries: dict[str, dict], order: list[str], report_dir: Path,
                    scope: str = "test split") -> None:
    """per_class.csv/.md/.png: song-level recall of each genre for each approach."""
    class_names = summaries[order[0]]["class_names"]
    per_class = {name: [summaries[name]["per_class_song"][c]["recall"]
                        if summaries[name]["per_class_song"][c]["support"] else float("nan")
                        for c in class_names] for name in order}
    with open(report_dir / "per_class.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["approach", *class_names])
        for name, recalls in per_class.items():
            writer.writerow([name, *(round(x, 4) for x in recalls)])
    means = {c: sum(v[i] for v in per_class.values()) / len(per_class) for i, c in enumerate(class_names)}
    easy_to_hard = sorted(means, key=lambda c: -means[c])
    table = markdown_table(("approach", *class_names), [(n, *map(pct, v)) for n, v in per_class.items()])
    plots.plot_per_class_accuracy(per_class, class_names, report_dir / "per_class.png",
                                  f"Song-level recall per genre ({scope})")
    write_text_atomic(report_dir / "per_class.md",
                      f"# Per-genre song recall\n\n{table}\n\nEasiest to hardest (mean recall over "
                      "approaches): " + ", ".join(f"{c} {pct(means[c])}" for c in easy_to_hard) + "\n")


def write_confusions(rows: list[dict], summaries: dict[str, dict], report_dir: Path) -> list[str]:
    """Song-level confusion matrices of the best approaches; returns their file names."""
    names = []
    for r in rows[:BEST_CONFUSION_MATRICES]:
        out = report_dir / f"confusion_{r['model']}_{r['transform']}.png"
        summary = summaries[r["approach"]]
        plots.plot_confusion_matrix(summary["confusion_matrix_song"], summary["class_names"], out,
                                    f"{r['approach']}: song accuracy {pct(r['song_accuracy'])}")
        names.append(out.name)
    return names


def write_report(results: list[tuple[dict, Path]], report_dir: Path, dataset: str) -> str:
    """All report files from finished runs; returns the results table (markdown) for the terminal."""
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = sorted((result_row(s, d) for s, d in results),
                  key=lambda r: (-r["song_accuracy"], -r["window_accuracy"]))
    summaries = {approach_label(s): s for s, _ in results}
    table = write_results(rows, report_dir, dataset)
    write_per_class(summaries, [r["approach"] for r in rows], report_dir)
    confusion = write_confusions(rows, summaries, report_dir)
    note = dataset_note(dataset)
    summary = f"# Approaches on {dataset} (test split)\n\n" + (f"> {note}\n\n" if note else "") + table
    write_text_atomic(report_dir / "results.md",
                      summary + "\n\n![accuracy](accuracy.png)\n\n"
                      + "".join(f"![{c}]({c})\n" for c in confusion)
                      + "\nPer-genre song recall: [per_class.md](per_class.md), ![per class](per_class.png)\n")
    return summary
