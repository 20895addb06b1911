"""Which approach a search is over: the flags, else the best Keras row of a compare report.

``python -m pipeline.compare`` writes reports/compare/results.csv; without --model and
--transform, `tuning.search` searches the best Keras approach found there.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Optional

from core.config import TrainConfig, TransformConfig
from pipeline.cli import flags

DEFAULT_APPROACH = ("cnn2d", "mel")
DEFAULT_COMPARE_RESULTS = "reports/compare/results.csv"


def best_of_compare_report(path: Path, model: Optional[str] = None, transform: Optional[str] = None,
                           objective: str = "val_accuracy") -> Optional[tuple[str, str]]:
    """(model, transform) of the best Keras approach in a compare results.csv, or None.

    Ranked by song accuracy when the objective is song-level, else window accuracy (the other
    one breaks ties); rows not matching a given `model`/`transform` are skipped.
    """
    from models.registry import APPROACHES

    path = Path(path)
    if not path.exists():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    first, second = ("song_accuracy", "window_accuracy") if objective == "val_song_accuracy" \
        else ("window_accuracy", "song_accuracy")

    def number(row, key):
        try:
            return float(row.get(key, "nan"))
        except ValueError:
            return float("nan")

    candidates = [
        r for r in rows
        if r.get("model") in APPROACHES and APPROACHES[r["model"]].kind == "keras"
        and r.get("transform") in APPROACHES[r["model"]].transforms
        and (model is None or r["model"] == model) and (transform is None or r["transform"] == transform)
        and not math.isnan(number(r, first))
    ]
    if not candidates:
        return None
    best = max(candidates, key=lambda r: (number(r, first), number(r, second) if not math.isnan(number(r, second)) else -1))
    return best["model"], best["transform"]


def resolve_approach(args) -> tuple[str, str, str]:
    """(model, transform, where from) for the search."""
    model = flags.flag_value(args, TrainConfig, "model")
    transform = flags.flag_value(args, TransformConfig, "name")
    if model and transform:
        return model, transform, "command line"
    found = best_of_compare_report(args.compare_results, model, transform, args.objective)
    if found:
        return found[0], found[1], f"best Keras approach of {args.compare_results}"
    if model:
        from models.registry import get_approach

        accepted = get_approach(model).transforms
        return model, DEFAULT_APPROACH[1] if DEFAULT_APPROACH[1] in accepted else accepted[0], "default transform"
    if transform:
        return DEFAULT_APPROACH[0], transform, "default model"
    return DEFAULT_APPROACH[0], DEFAULT_APPROACH[1], "default (no compare report)"
