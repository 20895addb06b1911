"""What a search found: summary.json (every trial, best first) and summary.md (a table)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from core.files import write_json_atomic
from tuning.search_space import python_value
from tuning.trial_effects import effects_markdown


def trial_record(trial, space) -> dict:
    """One trial as a JSON-able dict: id, status, score, metrics at its best epoch, values."""
    metrics = {}
    for name in ("val_accuracy", "val_song_accuracy", "val_loss", "accuracy", "loss",
                 "cv_song_accuracy", "cv_window_accuracy", "fit_seconds"):
        if trial.metrics.exists(name):
            metrics[name] = python_value(trial.metrics.get_last_value(name))
    values = {k: python_value(v) for k, v in trial.hyperparameters.values.items()}
    return {
        "trial_id": trial.trial_id,
        "status": trial.status,
        "score": None if trial.score is None else float(trial.score),
        "best_epoch": trial.best_step,
        "metrics": metrics,
        "values": values,
    }


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.2e}" if 0 < abs(v) < 1e-2 else f"{v:.4g}"
    return str(v)


def summary_table(records: list[dict], space, objective: str) -> str:
    """Markdown table of trials (best first): scores, then the searched hyperparameters."""
    fixed = space.fixed()
    names = [n for n in space.entries if n not in fixed]
    by_song = objective.startswith("cv_")  # a scikit-learn approach: cross-validated, no epochs
    scores = ["cv_window_accuracy", "cv_song_accuracy"] if by_song else ["val_accuracy",
                                                                         "val_song_accuracy"]
    header = ["rank", "trial", *(f"{m} (objective)" if m == objective else m for m in scores),
              "fit s" if by_song else "epoch", *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, r in enumerate(records, 1):
        epoch = r["best_epoch"] + 1 if isinstance(r["best_epoch"], int) else None
        cells = [rank, r["trial_id"], *(r["metrics"].get(m) for m in scores),
                 r["metrics"].get("fit_seconds") if by_song else epoch,
                 *(r["values"].get(n) for n in names)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def write_summary(project: Path, tuner, space, args, model: str, transform: str,
                  best_run: Optional[dict] = None) -> dict:
    """summary.json (every trial, best first) and summary.md; returns the summary dict."""
    oracle = tuner.oracle
    trials = list(oracle.trials.values())
    completed = [t for t in trials if t.status == "COMPLETED"]
    best = oracle.get_best_trials(len(completed)) if completed else []
    best = [t for t in best if t.status == "COMPLETED"]
    records = [trial_record(t, space) for t in best]
    others = [trial_record(t, space) for t in trials if t.status != "COMPLETED"]
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    summary = {
        "model": model, "transform": transform, "tuner": args.tuner, "objective": args.objective,
        "max_trials": args.max_trials, "trial_counts": counts,
        "fixed": space.fixed(),
        "best_trials": records, "other_trials": others,
    }
    if best_run:
        summary["best_run"] = best_run
    write_json_atomic(project / "summary.json", summary)

    table = summary_table(records[: args.top], space, args.objective)
    md = [f"# Search: {model} on {transform} ({args.tuner}, objective {args.objective})", "",
          f"Trials: {', '.join(f'{v} {k.lower()}' for k, v in sorted(counts.items()))}.", "",
          f"Best {min(args.top, len(records))} of {len(records)} completed trials:", "", table, ""]
    if summary["fixed"]:
        md += ["Fixed: " + ", ".join(f"{k}={_cell(v)}" for k, v in summary["fixed"].items()), ""]
    md += effects_markdown(records, [n for n in space.entries if n not in summary["fixed"]],
                           args.objective)  # which searched parameters moved the objective
    if best_run:
        test = best_run["test"]
        md += [f"Best configuration (trial {best_run['trial_id']}) retrained into "
               f"`{best_run['run_dir']}`: test window accuracy {test['window_accuracy']:.1%}, "
               f"song accuracy {test['song_accuracy_mean_vote']:.1%} "
               f"({test['num_songs']} songs).", ""]
    (project / "summary.md").write_text("\n".join(md))
    summary["table"] = table
    return summary
