"""Which parameters moved a score: marginal means over a set of finished runs or trials.

Used by the parameter sweep (``pipeline.experiments.sweep_report``, over the settings of one
approach) and by the tuner's summary (``tuning.trial_effects``, over its finished trials).  Input:
rows of ``(params, score)``; for each parameter that takes at least two values:

- per value: the mean score of the rows with that value, and how many rows;
- ``effect``: the largest minus the smallest of those means (in score units);
- ``spearman``: rank correlation of value and score over all rows, for numeric parameters
  with at least three values (does the score rise or fall with it?), else None.

These are descriptive: in a random search, parameters vary together, so a marginal effect can
belong to another parameter; in a full (product) grid every value is seen with every other,
and the marginal means are the usual main effects.  Whether an effect is more than noise is
for the paired tests of the report to say.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Optional

import numpy as np


def _key(value: Any):
    """Sort key: numbers by value, then anything else by its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _spearman(xs: list, ys: list) -> Optional[float]:
    from scipy.stats import spearmanr

    if len(set(xs)) < 3 or len(set(ys)) < 2:
        return None
    rho = spearmanr(xs, ys).statistic
    return None if rho is None or math.isnan(rho) else float(rho)


def parameter_effects(rows: Iterable[tuple[dict, float]]) -> list[dict]:
    """Per parameter (largest effect first): ``{"parameter", "values": [{"value", "mean",
    "count"}], "effect", "best_value", "spearman"}``; rows whose score is None are left out."""
    rows = [(p, float(s)) for p, s in rows if s is not None and not math.isnan(float(s))]
    names = sorted({k for params, _ in rows for k in params})
    effects = []
    for name in names:
        groups: dict[Any, list[float]] = defaultdict(list)
        pairs = [(params[name], score) for params, score in rows if name in params]
        for value, score in pairs:
            groups[value if not isinstance(value, list) else tuple(value)].append(score)
        if len(groups) < 2:
            continue
        values = [{"value": v, "mean": float(np.mean(g)), "count": len(g)}
                  for v, g in sorted(groups.items(), key=lambda item: _key(item[0]))]
        means = [v["mean"] for v in values]
        xs = [v for v, _ in pairs]
        effects.append({
            "parameter": name, "values": values, "effect": max(means) - min(means),
            "best_value": values[int(np.argmax(means))]["value"],
            "spearman": _spearman(xs, [s for _, s in pairs]) if _numeric(xs) else None,
        })
    return sorted(effects, key=lambda e: -e["effect"])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def effects_table(effects: list[dict], scale: float = 100.0, unit: str = "points") -> str:
    """Markdown table of ``parameter_effects`` (scores times ``scale``, e.g. % points)."""
    if not effects:
        return "(no parameter took two values among the finished runs)"
    lines = [f"| parameter | effect ({unit}: best - worst mean) | mean score per value "
             "(runs) | best value | Spearman rho |", "|---|---|---|---|---|"]
    for e in effects:
        per_value = ", ".join(f"{_fmt(v['value'])}: {v['mean'] * scale:.1f} ({v['count']})"
                              for v in e["values"])
        rho = "-" if e["spearman"] is None else f"{e['spearman']:+.2f}"
        lines.append(f"| {e['parameter']} | {e['effect'] * scale:.1f} | {per_value} | "
                     f"{_fmt(e['best_value'])} | {rho} |")
    return "\n".join(lines)
