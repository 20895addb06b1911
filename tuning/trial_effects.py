"""Which searched parameters moved the objective: the tuner's finished trials summarised like a
parameter sweep (``pipeline.experiments.parameter_effects``), so a search also says something
about the transform's resolution (n_fft, hop_length, n_mels, ...), not only which trial won.

Trials of a random or Bayesian search vary several parameters at once, so these marginal means
are descriptive (see that module); a sweep (``python -m pipeline.sweep``) isolates one.
"""

from __future__ import annotations

from pipeline.experiments.parameter_effects import effects_table, parameter_effects


def trial_effects(records: list[dict], searched: list[str]) -> list[dict]:
    """``parameter_effects`` over finished trial records (``tuning.search.trial_record``):
    their searched values and score."""
    rows = [({k: v for k, v in r["values"].items() if k in searched}, r["score"])
            for r in records if r.get("score") is not None]
    return parameter_effects(rows)


def effects_markdown(records: list[dict], searched: list[str], objective: str) -> list[str]:
    """summary.md lines: the section on which parameters moved the objective."""
    effects = trial_effects(records, searched)
    if not effects:
        return []
    return [f"Which searched parameters moved {objective} (mean over the completed trials with "
            "each value; trials vary several parameters at once, so this is descriptive):", "",
            effects_table(effects, *((100.0, "% points") if "accuracy" in objective
                                     else (1.0, objective))), ""]
