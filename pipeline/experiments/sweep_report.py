"""The report of a parameter sweep (``pipeline.experiments.sweep``).

    sweep.csv                one row per (approach, setting): the swept values, the resolution
                             they give, out-of-fold song accuracy with its 95 % Wilson interval,
                             fold and seed spread, the paired test against the approach's best
                             setting, training time; skipped settings with their reason
    sweep.md                 the same as tables per approach, the skipped settings, and which
                             parameters moved the accuracy (``parameter_effects``)
    sweep_<parameter>.png    accuracy against each swept parameter, one line per approach,
                             95 % intervals as error bars

In a plot the other swept parameters are held at the approach's base value where that setting
ran (for a one-at-a-time grid: always), else at its best setting's values.
"""

from __future__ import annotations

import csv
from pathlib import Path

from core.files import write_text_atomic
from pipeline.experiments import plots
from pipeline.experiments.parameter_effects import effects_table, parameter_effects
from pipeline.experiments.repeats import paired_comparison, seeds_cell
from pipeline.experiments.comparison_report import dataset_note, markdown_table, pct
from pipeline.experiments.sweep import Cell, resolution

RESOLUTION_COLUMNS = ("sample_rate", "window_s", "step_s", "ms_per_frame", "window_ms",
                      "hz_per_bin", "mel_bands", "mfcc", "frames")
RESOLUTION_HEADER = ("sr (Hz)", "window (s)", "step (s)", "ms per frame", "FFT window (ms)",
                     "Hz per bin", "mel bands", "MFCC", "frames")
RESULT_COLUMNS = ("song_accuracy", "ci_low", "ci_high", "fold_mean", "fold_std", "repeats",
                  "seed_std", "only_best", "only_this", "p_vs_best", "training_seconds")


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


def cell_row(cell: Cell, axes: list[str]) -> dict:
    """A cell as a flat dict: approach, swept values ("" where it does not use one),
    resolution, then the cross-validated figures (empty when skipped)."""
    row = {"approach": cell.approach, "transform": cell.job.transform, "model": cell.job.model,
           **{a: cell.setting.get(a, "") for a in axes},
           **{k: _round(v) for k, v in resolution(cell.job.cfg).items()},
           "status": "skipped" if cell.skipped else "ok", "reason": cell.skipped or "",
           "run_dir": str(cell.run_dir or "")}
    s = cell.summary
    if s is not None:
        lo, hi = s["song_accuracy_interval"]
        row.update(song_accuracy=_round(s["song_accuracy_mean_vote"]), ci_low=_round(lo),
                   ci_high=_round(hi), fold_mean=_round(s["fold_song_accuracy_mean"]),
                   fold_std=_round(s["fold_song_accuracy_std"]), repeats=s.get("repeats", 1),
                   seed_std=_round(s.get("seed_song_accuracy_std", 0.0)),
                   seeds=seeds_cell(s), training_seconds=round(s["training_seconds"], 1))
    return row


def add_paired_to_best(rows: list[dict], cells: list[Cell]) -> None:
    """Each finished setting against the best setting of the same approach, on the same songs."""
    by_approach: dict[str, list[int]] = {}
    for i, cell in enumerate(cells):
        if cell.summary is not None:
            by_approach.setdefault(cell.approach, []).append(i)
    for indices in by_approach.values():
        best = max(indices, key=lambda i: (rows[i]["song_accuracy"], -i))
        rows[best]["best"] = True
        for i in indices:
            if i != best:
                paired = paired_comparison(cells[best].summary, cells[i].summary)
                rows[i].update(only_best=paired["only_a"], only_this=paired["only_b"],
                               p_vs_best=paired["p_value"])


def _cell_text(value) -> str:
    if value == "" or value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def approach_table(rows: list[dict], axes: list[str]) -> str:
    """Markdown table of one approach's settings, in sweep order."""
    used = [a for a in axes if any(r[a] != "" for r in rows)]
    shown = [(c, h) for c, h in zip(RESOLUTION_COLUMNS, RESOLUTION_HEADER)
             if any(r[c] not in ("", None) for r in rows)]
    header = (*used, *(h for _, h in shown), "song acc. (out of fold)", "95 % interval",
              "per fold mean +- std", "seeds: mean +- std",
              "vs best setting: only best / only this (p)", "train time (s)")
    body = []
    for r in rows:
        values = [_cell_text(r[a]) for a in used] + [_cell_text(r[c]) for c, _ in shown]
        if r["status"] != "ok":
            body.append((*values, "skipped: " + r["reason"], "", "", "", "", ""))
            continue
        versus = "best" if r.get("best") else (
            f"{r['only_best']} / {r['only_this']} (p = {r['p_vs_best']:.2g})")
        body.append((*values, ("**" + pct(r["song_accuracy"]) + "**") if r.get("best")
                     else pct(r["song_accuracy"]), f"{pct(r['ci_low'])}-{pct(r['ci_high'])}",
                     f"{pct(r['fold_mean'])} +- {pct(r['fold_std'])}", r["seeds"], versus,
                     r["training_seconds"]))
    return markdown_table(header, body)


def write_csv(rows: list[dict], axes: list[str], path: Path) -> None:
    columns = ("approach", "transform", "model", *axes, *RESOLUTION_COLUMNS, *RESULT_COLUMNS,
               "status", "reason", "run_dir")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _held(cells: list[Cell], rows: list[dict], approach: str, axes: list[str]) -> dict:
    """The values the other axes are held at in the plots: base, or the best setting's."""
    mine = [(c, r) for c, r in zip(cells, rows) if c.approach == approach and r["status"] == "ok"]
    base = mine[0][0].base
    if any(c.setting == base for c, _ in mine):
        return base
    return dict(next(c.setting for c, r in mine if r.get("best")))


def plot_axis(cells: list[Cell], rows: list[dict], axis: str, base: dict, path: Path,
              title: str) -> bool:
    """Accuracy against ``axis``, one line per approach (others held: ``base``); False when no
    approach has two finished points on it."""
    import matplotlib.pyplot as plt  # after pipeline.experiments.plots chose the Agg backend

    lines = {}
    for approach, held in base.items():
        points = [(c.setting[axis], r) for c, r in zip(cells, rows)
                  if c.approach == approach and r["status"] == "ok" and axis in c.setting
                  and all(c.setting.get(a) == v for a, v in held.items() if a != axis)]
        if len(points) >= 2:
            lines[approach] = sorted(points, key=lambda p: p[0])
    if not lines:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    values = sorted({v for pts in lines.values() for v, _ in pts})
    log = all(v > 0 for v in values) and max(values) / min(values) >= 4
    for k, (approach, pts) in enumerate(lines.items()):
        shift = 1 + 0.015 * (k - (len(lines) - 1) / 2)  # a small offset so bars do not overlap
        xs = [v * shift if log else v + 0.01 * k * (values[-1] - values[0]) for v, _ in pts]
        ys = [r["song_accuracy"] for _, r in pts]
        err = [[y - r["ci_low"] for y, (_, r) in zip(ys, pts)],
               [r["ci_high"] - y for y, (_, r) in zip(ys, pts)]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=approach)
    if log:
        ax.set_xscale("log", base=2)
    ax.set_xticks(values, [_tick(axis, v, cells) for v in values])
    ax.minorticks_off()
    ax.set_xlabel(axis)
    ax.set_ylabel("out-of-fold song accuracy (95 % interval)")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=plots.DPI, bbox_inches="tight")
    plt.close(fig)
    return True


TICK_RESOLUTION = {  # what a swept parameter's value means, under its tick
    "hop_length": lambda r: f"{r['ms_per_frame']:.1f} ms/frame",
    "n_fft": lambda r: f"{r['window_ms']:.0f} ms, {r['hz_per_bin']:.1f} Hz/bin",
    "win_length": lambda r: f"{r['window_ms']:.0f} ms",
}


def _tick(axis: str, value, cells: list[Cell]) -> str:
    """The tick label of ``value``: the value, and the resolution it gives where it has one."""
    label = f"{value:g}" if isinstance(value, (int, float)) else str(value)
    cell = next((c for c in cells if c.setting.get(axis) == value), None)
    describe = TICK_RESOLUTION.get(axis)
    if cell is None or describe is None:
        return label
    try:
        return f"{label}\n{describe(resolution(cell.job.cfg))}"
    except (TypeError, KeyError):  # a transform without that resolution
        return label


def write_plots(cells: list[Cell], rows: list[dict], axes: list[str], report_dir: Path,
                dataset: str) -> list[str]:
    approaches = list(dict.fromkeys(c.approach for c, r in zip(cells, rows) if r["status"] == "ok"))
    held = {a: _held(cells, rows, a, axes) for a in approaches}
    names = []
    for axis in axes:
        path = report_dir / f"sweep_{axis}.png"
        title = (f"{dataset}: song accuracy against {axis}\n(other swept parameters at the "
                 "approach's base setting, else its best)")
        if plot_axis(cells, rows, axis, held, path, title):
            names.append(path.name)
    return names


def _effect_rows(cells: list[Cell], rows: list[dict], approach: str, grid: str) -> list:
    """(setting, accuracy) rows of one approach for ``parameter_effects``; in a one-at-a-time
    grid each parameter only from the settings where the others are at their base value."""
    done = [(c, r["song_accuracy"]) for c, r in zip(cells, rows)
            if c.approach == approach and r["status"] == "ok"]
    if grid == "product":
        return [(c.setting, score) for c, score in done]
    return [({name: c.setting[name]}, score) for c, score in done for name in c.setting
            if all(c.setting[o] == c.base[o] for o in c.setting if o != name)]


def effects_section(cells: list[Cell], rows: list[dict], grid: str = "product") -> str:
    parts = []
    for approach in dict.fromkeys(c.approach for c in cells):
        effects = parameter_effects(_effect_rows(cells, rows, approach, grid))
        if effects:
            parts.append(f"**{approach}**\n\n" + effects_table(effects, unit="% points"))
    return "\n\n".join(parts)


def write_sweep_report(cells: list[Cell], axes: list[str], report_dir: Path, dataset: str,
                       grid: str) -> str:
    """All report files; returns sweep.md's text."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = [cell_row(c, axes) for c in cells]
    add_paired_to_best(rows, cells)
    write_csv(rows, axes, report_dir / "sweep.csv")
    images = write_plots(cells, rows, axes, report_dir, dataset)
    note = dataset_note(dataset)
    done = [c for c in cells if c.summary is not None]
    songs = done[0].summary["num_songs"] if done else 0
    md = [f"# Parameter sweep on {dataset}: {cells[0].job.cfg.dataset.folds}-fold "
          f"cross-validation by song ({songs} songs)", ""] + ([f"> {note}", ""] if note else [])
    md += [f"Grid: {grid} of {_axes_text(cells, axes)}. {len(done)} settings ran, "
           f"{len(rows) - len(done)} skipped.", "",
           "Resolution: ms per frame = hop / sr, FFT window = win_length (n_fft) / sr, Hz per "
           "bin = sr / n_fft. Accuracy: out-of-fold, every song tested once (mean over seeds "
           "where repeated); interval: 95 % Wilson. Against the best setting of the same "
           "approach: songs only the best decides right / only this one (more often, with "
           "repeats), exact McNemar (sign) test.", ""]
    for approach in dict.fromkeys(c.approach for c in cells):
        mine = [r for r in rows if r["approach"] == approach]
        md += [f"## {approach}", "", approach_table(mine, axes), ""]
    effects = effects_section(cells, rows, grid)
    if effects:
        md += ["## Which parameters moved the accuracy (marginal means over the settings)", "",
               effects, ""]
    md += [f"![accuracy against {n[6:-4]}]({n})" for n in images]
    text = "\n".join(md) + "\n"
    write_text_atomic(report_dir / "sweep.md", text)
    return text


def _axes_text(cells: list[Cell], axes: list[str]) -> str:
    """"n_mels = 32, 64; hop_length = 256, 512": the values each axis took."""
    values = {a: sorted({c.setting[a] for c in cells if a in c.setting},
                        key=lambda v: (v is None, v if v is not None else 0)) for a in axes}
    return "; ".join(f"{a} = {', '.join(_cell_text(v) for v in vs)}" for a, vs in values.items())
