"""The builder's benchmark: whole `tfds build` runs (songs/s, peak memory of the process tree)
and the decoder's resampler (time and SNR against librosa), for `python -m pipeline.bench build`
and `python -m pipeline.bench resample`.

`resample` times one 30 s song resampled 44.1 -> 22.05 kHz by the project's resampler
(core.resample, TensorFlow) and by scipy's resample_poly, and gives each one's SNR against
librosa.resample (soxr_hq), the reference the pipeline's tests use. Without --audio the song is
a synthetic one rendered at 44.1 kHz.

`build` runs `tfds build gtzan_tfds` in a fresh data dir and reports the wall time of the
command, songs written per second, and the peak resident memory of the command's process tree
(the tfds process plus Beam's worker processes, sampled every 0.1 s) and of its largest
process. These figures are in docs/dataset_build.md.
"""


from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from core.errors import ConfigError

_SAMPLE_EVERY_S = 0.1


def resample_figures(audio_path: str | None, repeats: int = 10) -> dict:
    """{'core.resample': {...}, 'scipy.resample_poly': {...}}: ms per song and SNR (dB)."""
    import librosa
    import tensorflow as tf
    from scipy import signal

    from core.resample import resample

    x, sr = _song_at_44k(audio_path)
    reference = librosa.resample(x, orig_sr=sr, target_sr=22_050)
    candidates = {
        "core.resample": lambda: resample(tf.constant(x), sr, 22_050).numpy(),
        "scipy.resample_poly": lambda: signal.resample_poly(x, 1, 2).astype(np.float32),
    }
    out = {}
    for name, run in candidates.items():
        y = run()  # warm-up (TensorFlow traces and builds the kernel once)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        n = min(len(y), len(reference))
        noise = np.sum((y[:n] - reference[:n]) ** 2)
        snr = 10 * np.log10(np.sum(reference[:n] ** 2) / noise)
        out[name] = {"ms_per_30s_song": round(1000 * float(np.median(times)), 1),
                     "snr_db_vs_librosa": round(float(snr), 1)}
    return out


def _song_at_44k(audio_path: str | None) -> tuple[np.ndarray, int]:
    if audio_path is None:
        from gtzan_tfds.synthetic_audio import generate_song_float

        return generate_song_float("jazz", 0, sr=44_100), 44_100
    import soundfile as sf

    data, sr = sf.read(audio_path, dtype="float32", always_2d=True)
    if sr != 44_100:
        raise ConfigError(f"{audio_path}: {sr} Hz; give a 44.1 kHz file")
    return data.mean(axis=1)[: 30 * sr].astype(np.float32), sr


def build_figures(
    config: str, beam: str | None, data_dir: str, manual_dir: str | None,
    max_rss_gib: float | None = None,
) -> dict:
    """Runs one `tfds build` and measures it (see the module docstring); its output is in
    `<data_dir>/tfds_build.log`.

    With `max_rss_gib`, a build whose process tree grows past it is stopped (its processes
    killed) and reported as such, rather than left to exhaust a shared machine's memory.
    """
    import psutil

    tfds_cli = Path(sys.executable).with_name("tfds")
    cmd = [str(tfds_cli), "build", "gtzan_tfds", "--imports", "gtzan_tfds", "--config", config,
           "--data_dir", data_dir]
    if manual_dir:
        cmd += ["--manual_dir", manual_dir]
    if beam:
        cmd += ["--beam_pipeline_options", beam]
    figures = {"config": config, "beam": beam or None}
    log_path = Path(data_dir) / "tfds_build.log"
    peak_tree = peak_one = 0
    with open(log_path, "w") as log:
        start = time.perf_counter()
        proc = psutil.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            rss = _tree_rss(proc)
            peak_tree, peak_one = max(peak_tree, sum(rss)), max(peak_one, max(rss, default=0))
            if max_rss_gib and peak_tree > max_rss_gib * 2**30:
                _kill_tree(proc)
                return {**figures, "stopped_at_rss_cap_gib": max_rss_gib,
                        "after_s": round(time.perf_counter() - start, 1)}
            time.sleep(_SAMPLE_EVERY_S)
        wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"tfds build failed ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
    songs = _songs_written(Path(data_dir))
    return {**figures, "songs": songs, "wall_s": round(wall, 1),
            "songs_per_s": round(songs / wall, 2), "peak_rss_tree_mib": round(peak_tree / 2**20),
            "peak_rss_largest_process_mib": round(peak_one / 2**20)}


def _tree_rss(proc) -> list[int]:
    import psutil

    rss = []
    for p in [proc, *proc.children(recursive=True)]:
        try:
            rss.append(p.memory_info().rss)
        except psutil.Error:  # the process ended between listing and reading it
            pass
    return rss


def _kill_tree(proc) -> None:
    import psutil

    for p in [*proc.children(recursive=True), proc]:
        try:
            p.kill()
        except psutil.Error:  # already gone
            pass
    proc.wait()


def _songs_written(data_dir: Path) -> int:
    reports = list(data_dir.glob("gtzan_tfds/*/*/build_report.json"))
    if len(reports) != 1:
        raise RuntimeError(f"expected one build report under {data_dir}, found {len(reports)}")
    return sum(json.loads(reports[0].read_text())["written"].values())


