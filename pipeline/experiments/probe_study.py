"""Moved: the musicnn probe's choices are a Keras Tuner search now.

``probe_study`` scored a fixed grid of probe choices (weights, layer, probe, C) beside the
tuner.  The same choices, and the window step, are the ``musicnn`` approach's search space
(``models.registry``), searched by ``python -m tuning.search --model musicnn`` with a
cross-validation by song over the training songs; ``--tuner grid`` tries every combination, as
this study did, and ``python -m tuning.nested`` measures the tuned probe on songs that chose
nothing.  This module only says so.
"""

from __future__ import annotations

import sys
from typing import Optional

MOVED = ("probe_study is now a Keras Tuner search of the musicnn approach:\n"
         "  python -m tuning.search --model musicnn --tuner grid --dataset-config gtzan "
         "--data-dir DIR --max-trials 96\n"
         "  python -m tuning.nested --model musicnn --folds 5 ...   (tuned vs default, nested)")


def main(argv: Optional[list[str]] = None) -> int:
    print(MOVED, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
