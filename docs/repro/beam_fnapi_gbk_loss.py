"""Minimal reproduction: Beam's FnApiRunner with 2 worker processes loses whole groups of a
GroupByKey (apache-beam 2.77, Python 3.11), the failure the gtzan_tfds build report caught.

The shape of TFDS's BeamWriter (tensorflow_datasets/core/writer.py: BeamWriter), nothing of
TFDS or this project: N (key, ~1.3 MB bytes) elements -> assigned to 21 shards -> GroupByKey,
whose output has two consumers, the sorted shard ids (a side input) and a per-shard Map that
"writes" the shard.  Expected: 21 shards, N examples.  Run it a few times on a loaded machine:

    python docs/repro/beam_fnapi_gbk_loss.py 260 OUT.txt

Observed on the project's 2-core VM at load average 19-20 (an earlier version of this script
that printed groups and examples only): 3 runs in 4 lost groups ("groups 20 examples 248",
17/211, 19/236; expected 21/260).  This script, 3 runs at load 22-24: "groups 18 ids [21]
examples 223", "groups 16 ids [21] examples 198", then 21/260: the side input saw all 21
keys, the Map fewer.  The gtzan_tfds builds failed the same way (2 of 4
2x builds at load 15-23: whole shards missing, their "Writing N examples" lines absent, while
the shard-count side input said 21).
Leads from reading the code (not proven, not fixed here), in
apache_beam/runners/portability/fn_api_runner/: fn_runner.py ParallelBundleManager (runs a
stage's input as one bundle per worker, added by apache/beam PR #8872, BEAM-3645); execution.py
GroupingBuffer, one buffer shared by both consumers (copy() returns self; partition() caches its
first partitioning and clears the table) whose extend() silently ignores a ListBuffer ("TODO
... remove this workaround"), which the runner's queue of deferred inputs can hand it.
The runs without loss and the dependence on load suggest timing.  No upstream issue found for
it (searched apache/beam issues); this script is what a report would carry.
"""

import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

SHARDS = 21


def main(n: int, out: str) -> None:
    options = PipelineOptions(["--runner=FnApiRunner", "--direct_num_workers=2",
                               "--direct_running_mode=multi_processing"])

    def payload(i):
        return i, bytes([i % 251]) * 1_300_000  # about one 30 s int16 song

    def write(kv, ids):
        shard, examples = kv
        return ids.index(shard), len(list(examples)), len(ids)

    def report(written):
        ids = {w[2] for w in written}
        line = (f"groups {len(written)} ids {sorted(ids)} examples {sum(w[1] for w in written)} "
                f"(expected groups {SHARDS} examples {n})\n")
        with open(out, "a") as f:
            f.write(line)

    with beam.Pipeline(options=options) as p:
        grouped = (p | beam.Create(range(n)) | beam.Map(payload)
                   | "Assign" >> beam.Map(lambda kv: (kv[0] % SHARDS, kv)) | beam.GroupByKey())
        ids = beam.pvalue.AsSingleton(
            grouped | beam.Keys() | "Ids" >> beam.combiners.ToList() | "Sort" >> beam.Map(sorted))
        _ = (grouped | "Write" >> beam.Map(write, ids=ids)
             | "Collect" >> beam.combiners.ToList() | "Report" >> beam.Map(report))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
