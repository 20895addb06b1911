"""The build report: what a build wrote, skipped and missed, in `build_report.json`.

Written next to the TFRecords from what generation produced, never from state kept on the
builder:
- generation of each split (in this process or on Beam workers) ends by writing one small part
  file, `build_report.parts/<split>.json`: the songs assigned, the files it skipped as
  undecodable (name and reason) and the listed songs absent from the download;
- once every split is written, `assemble` joins the parts with the number of examples TFDS
  wrote per split (its split infos) into `build_report.json` and removes the parts.
Both happen inside TFDS's temporary `incomplete.*` folder, so the report appears with the
dataset when (and only if) the build completes.  Files go through `tf.io.gfile`: the data
directory may be remote (`gs://...`) too.

Why part files and not only Beam counters: counters carry numbers, the report names every
skipped file; and a build without Beam has no counters.  A Beam build increments counters as
well (`gtzan_tfds` namespace, see generation.py), for the runner's monitoring.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from typing import Any

from gtzan_tfds.song_splits import SPLITS

REPORT_FILE = "build_report.json"
PARTS_DIR = "build_report.parts"
_SHOWN = 5  # names quoted in the summary line


@dataclasses.dataclass(frozen=True)
class SplitOutcome:
    """What generation of one split found."""

    split: str
    assigned: int
    skipped: tuple[tuple[str, str], ...]  # (file, reason), in the order the songs were planned
    missing: tuple[str, ...]  # named by the split lists, absent from the download


def write_part(data_dir: str, outcome: SplitOutcome) -> None:
    """Written by the generation of one split, when it has seen all its songs."""
    import tensorflow as tf  # start-up cost: only when building

    folder = posixpath.join(str(data_dir), PARTS_DIR)
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(posixpath.join(folder, f"{outcome.split}.json"), "w") as f:
        f.write(json.dumps(dataclasses.asdict(outcome)))


def assemble(data_dir: str, dataset: str, written: dict[str, int]) -> dict[str, Any]:
    """Joins the parts of every split and `written` (examples per split) into the report file.

    Returns the report; raises AssertionError (a bug, not bad input) when a split's part is
    missing or the counts do not add up.
    """
    import tensorflow as tf  # start-up cost: only when building

    folder = posixpath.join(str(data_dir), PARTS_DIR)
    parts = {}
    for split in SPLITS:
        with tf.io.gfile.GFile(posixpath.join(folder, f"{split}.json")) as f:
            parts[split] = json.loads(f.read())
    tf.io.gfile.rmtree(folder)
    report = {
        "dataset": dataset,
        "assigned": {s: parts[s]["assigned"] for s in SPLITS},
        "written": {s: written[s] for s in SPLITS},
        "skipped": [{"file": f, "reason": r} for s in SPLITS for f, r in parts[s]["skipped"]],
        "missing": {s: parts[s]["missing"] for s in SPLITS if parts[s]["missing"]},
    }
    for s in SPLITS:
        skipped = len(parts[s]["skipped"])
        assert report["assigned"][s] == written[s] + skipped, (
            f"{dataset} {s}: {report['assigned'][s]} songs assigned, but TFDS wrote {written[s]} "
            f"examples and {skipped} file(s) were skipped"
        )
    with tf.io.gfile.GFile(posixpath.join(str(data_dir), REPORT_FILE), "w") as f:
        f.write(json.dumps(report, indent=1))
    return report


def discard_parts(data_dir: str) -> None:
    """Removes the parts of a build that will have no report (a debug run stopped early)."""
    import tensorflow as tf  # start-up cost: only when building

    folder = posixpath.join(str(data_dir), PARTS_DIR)
    if tf.io.gfile.exists(folder):
        tf.io.gfile.rmtree(folder)


def read(data_dir: str) -> dict[str, Any]:
    """The report of the dataset built in `data_dir` (a builder's `data_dir`)."""
    import tensorflow as tf  # start-up cost: only when reading a report

    with tf.io.gfile.GFile(posixpath.join(str(data_dir), REPORT_FILE)) as f:
        return json.loads(f.read())


def summary(report: dict[str, Any]) -> str:
    """One line: songs written per split, files skipped (with reasons), listed songs missing."""
    written = ", ".join(f"{s} {report['written'].get(s, 0)}" for s in SPLITS)
    parts = [f"{report['dataset']} build report: wrote {written} songs"]
    skipped = "; ".join(f"{s['file']} ({s['reason']})" for s in report["skipped"])
    parts.append(f"skipped {len(report['skipped'])} file(s)" + (f": {skipped}" if skipped else ""))
    n_missing = sum(len(v) for v in report["missing"].values())
    if n_missing:
        names = [i for v in report["missing"].values() for i in v][:_SHOWN]
        parts.append(f"{n_missing} listed song(s) missing, e.g. {', '.join(names)}")
    return "; ".join(parts)


def is_clean(report: dict[str, Any]) -> bool:
    return not report["skipped"] and not report["missing"]
