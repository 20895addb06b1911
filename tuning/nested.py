"""`python -m tuning.nested`: does tuning help?  The search inside each outer fold, against the defaults.

A search's own best score is optimistic: it is the best of many tries on the songs that chose
it.  The honest figure is a nested cross-validation (Cawley & Talbot 2010): the songs are dealt
into K outer folds (``--folds K``, the project's song folds); for each outer fold the whole
search (`tuning.search`, with every flag given here) runs on that fold's training songs only
(``--fold I``: its train and validation splits), its best configuration is retrained there,
and it is tested on the fold's test songs, which chose nothing.  The approach with its default
configuration is trained on the same songs and tested on the same songs.  Every song is tested
once by each arm, so the two are compared song by song (exact McNemar test).

    <directory>/<project>/fold_<i>/            the search of outer fold i (resumable), with
        best_run/                              its best configuration retrained and tested
        default_run/                           the approach's defaults, same songs
    <directory>/<project>/nested.json, nested.md   both arms pooled, the paired test, and the
                                               configuration each fold's search chose

``<project>`` is ``--project-name``, by default ``nested_<dataset>_<transform>_<model>_<tuner>``.
Re-running the same command resumes: finished searches and runs are reused.

    python -m tuning.nested --model musicnn --dataset-config gtzan --manual-dir DIR \\
        --folds 5 --max-trials 20
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

from core.config import DatasetConfig
from core.errors import ConfigError
from core.files import write_json_atomic
from pipeline.cli import flags
from pipeline.cli.entry import run_cli
from tuning import search
from tuning.compare_report import resolve_approach

NESTED_JSON = "nested.json"


def build_parser():
    parser = search.build_parser()
    parser.prog = "python -m tuning.nested"
    parser.description = __doc__
    return parser


def fold_search(argv: list[str], root: Path, fold: int) -> dict:
    """Run (or resume) outer fold ``fold``'s search; its summary.json and wall time."""
    project = root / f"fold_{fold}"
    start = time.perf_counter()
    code = search.main([*argv, "--fold", str(fold), "--project-name",
                        str(project.relative_to(root.parent))])
    if code != 0:
        raise RuntimeError(f"the search of outer fold {fold} ended with status {code}")
    summary = json.loads((project / "summary.json").read_text())
    return {"summary": summary, "seconds": time.perf_counter() - start, "project": project}


def default_run(argv: list[str], project: Path, fold: int, verbose: int) -> dict:
    """The approach's defaults on outer fold ``fold``: trained (or reused) and tested."""
    from pipeline.experiments.training import train_run

    args = search.build_parser().parse_args([*argv, "--fold", str(fold)])
    model, transform, _ = resolve_approach(args)
    cfg, train = search.base_configs(args, model, transform)
    return train_run(cfg, train, project / "default_run", verbose=verbose)


def fold_record(fold: int, searched: dict) -> dict:
    """What outer fold ``fold``'s search chose, and what it cost."""
    summary = searched["summary"]
    best = summary["best_trials"][0]
    trials = summary["best_trials"] + summary["other_trials"]
    fit = [t["metrics"].get("fit_seconds") for t in summary["best_trials"]]
    fit = [f for f in fit if f is not None]
    return {"fold": fold, "chosen": {k: v for k, v in best["values"].items()
                                     if k not in summary["fixed"]},
            "inner_score": best["score"], "trials": len(trials),
            "search_seconds": searched["seconds"],
            "mean_trial_fit_seconds": sum(fit) / len(fit) if fit else None}


def nested_markdown(result: dict) -> str:
    """nested.md: both arms, the paired test, and each fold's choice."""
    from pipeline.experiments.crossval import format_cv

    t, d, p = result["tuned"], result["default"], result["paired"]
    lines = [f"# Nested {result['folds']}-fold evaluation: {result['model']} on "
             f"{result['transform']} ({result['dataset']}), tuned vs default", "",
             "| arm | song accuracy (out of fold) | 95 % interval | per fold | window accuracy |",
             "|---|---|---|---|---|"]
    for name, s in (("tuned (search inside each outer training fold)", t), ("default", d)):
        lo, hi = s["song_accuracy_interval"]
        lines.append(f"| {name} | {s['song_accuracy_mean_vote']:.1%} | {lo:.1%}-{hi:.1%} | "
                     f"{s['fold_song_accuracy_mean']:.0%} +- {s['fold_song_accuracy_std']:.0%} | "
                     f"{s['window_accuracy']:.1%} |")
    lines += ["", f"Same {t['num_songs']} songs: only tuned right {p['only_a']}, only default "
              f"right {p['only_b']} (exact McNemar p = {p['p_value']:.2g}).", "",
              "| outer fold | chosen (inner score) | trials | search wall s | fit s per trial |",
              "|---|---|---|---|---|"]
    for r in result["fold_records"]:
        chosen = ", ".join(f"{k}={v}" for k, v in r["chosen"].items())
        per_trial = "-" if r["mean_trial_fit_seconds"] is None else f"{r['mean_trial_fit_seconds']:.2f}"
        lines.append(f"| {r['fold']} | {chosen} ({r['inner_score']:.3f}) | {r['trials']} | "
                     f"{r['search_seconds']:.0f} | {per_trial} |")
    lines += ["", format_cv(t, "tuned:"), "", format_cv(d, "default:"), ""]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    args = build_parser().parse_args(argv)
    from pipeline.experiments.crossval import cv_summary, paired_comparison, write_cv
    from pipeline.experiments.run_dir import RunDir

    k = flags.flag_value(args, DatasetConfig, "folds")
    if not k or k < 2:
        raise ConfigError("--folds K (at least 2) sets the outer folds of the nested evaluation")
    if flags.flag_value(args, DatasetConfig, "fold") is not None:
        raise ConfigError("--fold is chosen by the nested evaluation itself; leave it out")
    if args.no_retrain or args.show_space:
        raise ConfigError("the nested evaluation tests each fold's retrained best run: "
                          "leave out --no-retrain and --show-space")
    model, transform, _ = resolve_approach(args)
    root = search.project_dir_from_args(args)
    if not args.project_name:  # never inside a plain search's project of the same default name
        root = root.with_name(f"nested_{root.name}")
    records, tuned, default = [], [], []
    for fold in range(k):
        print(f"\n=== outer fold {fold + 1}/{k}: search on its training songs ===", flush=True)
        searched = fold_search(argv, root, fold)
        records.append(fold_record(fold, searched))
        tuned.append(RunDir(searched["project"] / "best_run").summary())
        default.append(default_run(argv, searched["project"], fold, args.verbose))
    result = {"model": model, "transform": transform, "folds": k,
              "dataset": flags.flag_value(args, DatasetConfig, "name"),
              "tuned": cv_summary(tuned), "default": cv_summary(default),
              "fold_records": records}
    result["paired"] = paired_comparison(result["tuned"], result["default"])
    for arm in ("tuned", "default"):
        write_cv(root / arm, result[arm], f"{model} on {transform}, {arm} (nested)")
    write_json_atomic(root / NESTED_JSON, result)
    (root / "nested.md").write_text(nested_markdown(result))
    print("\n" + nested_markdown(result))
    return 0


if __name__ == "__main__":
    run_cli(main)
