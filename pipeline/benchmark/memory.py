"""Peak memory of streaming: 1x the songs against Nx the songs, each in a fresh process.

The pipeline must not hold a split: peak RSS while streaming N times as many songs (the same
songs repeated in one stream, so shuffle buffers and prefetching see N times the data) must
stay within ``RSS_TOLERANCE`` of streaming them once.  Each measurement runs
``python -m pipeline.bench --child-repeat N ...`` in a new process, whose ``ru_maxrss`` is its
own peak.  Both children first stream the songs once (1x): XLA compiles every batch shape
1x needs and TensorFlow's caches warm up before the measured stream, so the 1x figure is not
flattered by a process that never got that far (``ru_maxrss`` is the peak of the whole
process, warm-up included).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from typing import Any

RSS_TOLERANCE = 0.10  # N x the data may use at most 10 % more peak memory than 1x


def child_main(cfg, songs_ds, repeat: int, make_pass=None) -> int:
    """Subprocess body: a warm-up pass over the songs, then the songs ``repeat`` times in one
    stream; prints the peak RSS.

    ``make_pass(cfg, songs_ds, jit_compile=...)`` makes the pass (default: the pipeline's,
    ``throughput.pipeline_pass``; the musicnn feature path for ``--transform musicnn``)."""
    from pipeline.benchmark.throughput import pipeline_pass

    make_pass = make_pass or pipeline_pass
    make_pass(cfg, songs_ds, jit_compile=True)()  # warm-up, the same for every factor
    one_pass = make_pass(cfg, songs_ds.repeat(repeat), jit_compile=True)
    windows = one_pass()["windows"]
    print(json.dumps({"peak_rss_mb": peak_rss_kb() / 1024, "windows": windows}))
    return 0


def peak_rss_kb() -> float:
    """This process's peak resident memory (KiB) since it started its program.

    Linux: VmHWM of /proc/self/status.  Not ``ru_maxrss``: it survives ``exec``, so a child
    started by a 2 GB benchmark process reports the parent's 2 GB whatever it does itself
    (the former measurement gave identical 1x and 10x figures that way).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def measure(bench_argv: list[str], repeat: int) -> dict[str, Any]:
    """Peak RSS (MB) of a child streaming ``repeat`` x the songs of ``bench_argv``."""
    cmd = [sys.executable, "-m", "pipeline.bench", *bench_argv, "--child-repeat", str(repeat)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"RSS subprocess failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_rss(bench_argv: list[str], factor: int, repeats: int = 1,
                measure_fn=measure) -> dict[str, Any]:
    """1x against ``factor`` x the songs: peak RSS of each and the growth.

    With ``repeats`` > 1 each is measured that many times (alternating) and its lowest peak
    counts: noise (allocator timing, a batch's activations freed late) only adds to a peak,
    while memory that grows with the data raises every one of the N x peaks.
    """
    peaks: dict[int, list[float]] = {1: [], factor: []}
    for _ in range(repeats):
        for n in peaks:
            peaks[n].append(measure_fn(bench_argv, n)["peak_rss_mb"])
    one, many = min(peaks[1]), min(peaks[factor])
    growth = many / one - 1
    return {"peak_rss_mb": max(max(p) for p in peaks.values()),
            "peak_rss_mb_1x": one, f"peak_rss_mb_{factor}x": many,
            "rss_factor": factor, "rss_repeats": repeats, "rss_runs_mb": {
                f"{n}x": p for n, p in peaks.items()},
            "rss_growth": growth, "rss_within_tolerance": growth <= RSS_TOLERANCE}


def rss_line(result: dict[str, Any]) -> str:
    k = result["rss_factor"]
    return (f"peak RSS: 1x the songs {result['peak_rss_mb_1x']:.0f} MB; {k}x the songs "
            f"{result[f'peak_rss_mb_{k}x']:.0f} MB ({result['rss_growth']:+.1%}; limit "
            f"+{RSS_TOLERANCE:.0%}"
            + (f"; lowest of {result['rss_repeats']} processes each)" if result.get("rss_repeats", 1) > 1 else ")"))
