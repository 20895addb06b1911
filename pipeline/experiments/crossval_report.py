"""The report of a cross-validated comparison (``pipeline.compare --folds K``).

    results.csv, results.md     per approach: out-of-fold song accuracy with its 95 % Wilson
                                interval, per-fold mean +- std, songs and windows it rests on,
                                window accuracy, song macro F1, training time (all folds), size
    accuracy.png                out-of-fold song accuracy with interval and fold spread
    confusion_<approach>.png    pooled out-of-fold song decisions of the best approaches
    per_class.csv, per_class.md, per_class.png   per-genre out-of-fold song recall

Built from ``pipeline.experiments.crossval.cv_summary`` summaries; the per-genre and confusion
files are written as for a plain comparison (``report``).
"""

from __future__ import annotations

import csv
from pathlib import Path

from core.files import write_text_atomic
from pipeline.experiments import plots
from pipeline.experiments.repeats import paired_comparison, seeds_cell
from pipeline.experiments.comparison_report import (approach_label, dataset_note,
                                                    markdown_table, pct, write_confusions,
                                                    write_per_class)

CV_COLUMNS = (
    "approach", "transform", "model", "folds", "songs", "windows", "song_accuracy",
    "song_accuracy_ci_low", "song_accuracy_ci_high", "fold_mean", "fold_std",
    "window_accuracy", "song_macro_f1", "only_best", "only_this", "mcnemar_p",
    "training_seconds", "parameters", "run_dir", "repeats", "seed_std",
)


REPEATS_NOTE = (
    "Seeds: each fold trained with that many seeds; accuracy and interval are then the mean "
    "over seeds (interval with n = songs, as repeats test no new song), +- the spread across "
    "seeds; per fold: the fold accuracies averaged over seeds. With repeats, 'only best / only "
    "this' counts the songs one side decides right in more of its repeats (exact sign test; "
    "McNemar's with one repeat each).\n\n")


def cv_row(summary: dict, run_dir: Path) -> dict:
    lo, hi = summary["song_accuracy_interval"]
    return {
        "approach": approach_label(summary), "transform": summary["transform"],
        "model": summary["model"], "folds": summary["folds"], "songs": summary["num_songs"],
        "windows": summary["num_windows"],
        "song_accuracy": round(summary["song_accuracy_mean_vote"], 4),
        "song_accuracy_ci_low": round(lo, 4), "song_accuracy_ci_high": round(hi, 4),
        "fold_mean": round(summary["fold_song_accuracy_mean"], 4),
        "fold_std": round(summary["fold_song_accuracy_std"], 4),
        "window_accuracy": round(summary["window_accuracy"], 4),
        "song_macro_f1": round(summary["song_macro_f1"], 4),
        "training_seconds": round(summary["training_seconds"], 1),
        "parameters": summary["parameters"], "run_dir": str(run_dir),
        # seed repeats (pipeline.experiments.repeats): seeds, spread of the pooled accuracy
        "repeats": summary.get("repeats", 1),
        "seed_std": round(summary.get("seed_song_accuracy_std", 0.0), 4),
        "seeds_cell": seeds_cell(summary),
    }


def cv_table(rows: list[dict]) -> str:
    """The markdown results table of a cross-validated comparison."""
    return markdown_table(
        ("approach", "song acc. (out of fold)", "95 % interval", "per fold mean +- std",
         "seeds: mean +- std", "songs", "window acc.", "song macro F1",
         "vs best: songs only best / only this right (McNemar p)", "train time, all folds (s)"),
        [(r["approach"], pct(r["song_accuracy"]),
          f"{pct(r['song_accuracy_ci_low'])}-{pct(r['song_accuracy_ci_high'])}",
          f"{pct(r['fold_mean'])} +- {pct(r['fold_std'])}", r.get("seeds_cell", "1"),
          r["songs"],
          pct(r["window_accuracy"]), f"{r['song_macro_f1']:.3f}",
          "-" if i == 0 else f"{r['only_best']} / {r['only_this']} (p = {r['mcnemar_p']:.2g})",
          r["training_seconds"])
         for i, r in enumerate(rows)],
    )


def add_paired(rows: list[dict], summaries: dict[str, dict]) -> None:
    """Each row against the best (first) row, on the same songs: ``paired_comparison``."""
    best = summaries[rows[0]["approach"]]
    for r in rows[1:]:
        paired = paired_comparison(best, summaries[r["approach"]])
        r.update(only_best=paired["only_a"], only_this=paired["only_b"],
                 mcnemar_p=paired["p_value"])  # not rounded: p can be 1e-5


def write_cv_report(results: list[tuple[dict, Path]], report_dir: Path, dataset: str) -> str:
    """All report files from cross-validated approaches; returns the summary (markdown)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = sorted((cv_row(s, d) for s, d in results),
                  key=lambda r: (-r["song_accuracy"], -r["window_accuracy"]))
    summaries = {approach_label(s): s for s, _ in results}
    add_paired(rows, summaries)
    with open(report_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    folds, songs = rows[0]["folds"], rows[0]["songs"]
    title = f"{folds}-fold cross-validation by song on {dataset} ({songs} songs)"
    plots.plot_cv_accuracy(rows, report_dir / "accuracy.png", title)
    write_per_class(summaries, [r["approach"] for r in rows], report_dir, "out of fold")
    confusion = write_confusions(rows, summaries, report_dir)
    note = dataset_note(dataset)
    summary = (f"# {title}\n\n" + (f"> {note}\n\n" if note else "")
               + "Every song is tested once, by the fold that held it out (mean-probability "
               "vote over its windows). Interval: 95 % Wilson score interval of the pooled "
               "out-of-fold song decisions. Per fold: mean and sample standard deviation of "
               "the per-fold song accuracies. Against the best: the songs only the best "
               "decides right and those only this approach does, with the exact McNemar "
               "p-value of that split (the same songs, so the comparison is paired).\n\n"
               + REPEATS_NOTE * any(r["repeats"] > 1 for r in rows)
               + cv_table(rows))
    write_text_atomic(report_dir / "results.md",
                      summary + "\n\n![accuracy](accuracy.png)\n\n"
                      + "".join(f"![{c}]({c})\n" for c in confusion)
                      + "\nPer-genre song recall: [per_class.md](per_class.md), "
                      "![per class](per_class.png)\n")
    return summary
