"""The page under load (issue 20), small: 40 uploads, 8 at a time, to the real server
(``python -m pipeline.serve`` on waitress, 127.0.0.1): real clips, bad files, oversize uploads
and a decompression bomb.  Every request is answered as expected (200/400/413, never a 500 or
no answer), the bomb is refused in under 2 s without moving the server's memory, and the
server's peak RSS stays bounded.  The full run (400 uploads, the 44.1 kHz stereo bomb) is
``python -m pipeline.serving.stress page``, figures in docs/reliability.md."""

from __future__ import annotations

import pytest

from pipeline.serving import stress

PEAK_RSS_BOUND_MB = 1500.0  # measured ~1.2 GB (TensorFlow, the model, one streamed file)


@pytest.mark.timeout(600)
def test_the_page_under_a_small_load(data_run, gtzan_sample_dir):
    report = stress.page_stress(data_run, requests=40, concurrency=8, clips_dir=gtzan_sample_dir,
                                max_upload_mb=2, bomb_seconds=3 * 3600, bomb_rate=8_000,
                                bomb_channels=1, max_seconds=300, max_clips=3)
    print({k: v for k, v in report.items() if k != "unexpected"})
    assert report["requests"] == 40 and report["not_sent_time_limit"] == 0
    assert stress.failures(report, PEAK_RSS_BOUND_MB) == []
    assert set(report["statuses"]) == {"200", "400", "413"}
    assert report["bomb"]["message"].endswith("too long: 3:00:00 (10800 s) of audio, the limit "
                                              "is 10:00 (600 s)")
