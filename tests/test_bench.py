"""`python -m pipeline.bench --quick --json FILE` end to end (slow: it times things)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_quick_writes_json(tmp_path):
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "pipeline.bench", "--quick", "--songs", "6", "--rss-factor",
           "3", "--data-dir", str(tmp_path / "tfds"), "--json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in ("transform", "songs", "windows", "librosa_windows_per_s",
                "pipeline_windows_per_s", "speedup", "peak_rss_mb", "device"):
        assert key in result
    assert result["windows"] == 60 and result["device"].startswith(("CPU", "GPU:"))
    assert result["speedup"] > 1.0
    assert "windows/s" in done.stdout


def test_bench_help():
    done = subprocess.run([sys.executable, "-m", "pipeline.bench", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--quick" in done.stdout and "librosa" in done.stdout
