"""`python -m pipeline.bench`: the quick run end to end (slow), and its pieces (fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from core.config import PipelineConfig, TransformConfig, WindowConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_quick_writes_json(tmp_path):
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "pipeline.bench", "--quick", "--songs", "6", "--rss-factor",
           "3", "--data-dir", str(tmp_path / "tfds"), "--json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in ("transform", "songs", "windows", "librosa_windows_per_s",
                "pipeline_windows_per_s", "speedup", "peak_rss_mb", "peak_rss_mb_1x",
                "peak_rss_mb_3x", "rss_growth", "device", "transforms", "machine", "stages",
                "input_wait_fraction"):
        assert key in result
    assert result["windows"] == 60 and result["device"].startswith(("CPU", "GPU:"))
    assert result["speedup"] > 1.0
    mel = result["transforms"]["mel"]
    assert 0 < mel["fraction_of_peak"] < 1 and 0 < mel["fraction_of_floor"] <= 1.5
    assert 0 <= result["input_wait_fraction"] < 1
    assert "windows/s" in done.stdout


def test_bench_help():
    done = subprocess.run([sys.executable, "-m", "pipeline.bench", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--quick" in done.stdout and "librosa" in done.stdout
    assert "--manual-dir" in done.stdout and "--gpu" in done.stdout
    assert "--dataset-config" in done.stdout and "pipeline.bench build" in done.stdout
    done = subprocess.run([sys.executable, "-m", "pipeline.bench", "build", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--beam" in done.stdout and "--max-rss-gib" in done.stdout


def test_bench_old_dataset_flag_still_works_and_names_its_replacement(capsys):
    from pipeline.bench import build_parser

    args = build_parser().parse_args(["--dataset", "gtzan"])
    assert args.dataset_config == "gtzan" and "use --dataset-config" in capsys.readouterr().err


def test_gpu_bench_refuses_without_a_gpu(tmp_path):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible here")
    done = subprocess.run([sys.executable, "-m", "pipeline.bench", "--gpu", "--data-dir",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no GPU" in done.stderr
    assert not any(tmp_path.iterdir())  # refused before building anything


def test_flops_are_counted_analytically():
    from pipeline.benchmark.flops import efficiency, rfft_flops, transform_flops

    cfg = PipelineConfig()
    mel = transform_flops(cfg)
    assert mel["fft"] == 130 * 2.5 * 2048 * 11  # the floor of the brief: ~7.3 MFLOP
    assert rfft_flops(2048) == 2.5 * 2048 * 11
    stft = transform_flops(PipelineConfig(transform=TransformConfig(name="stft")))
    assert stft["fft"] == mel["fft"] and mel["other"] < 2 * stft["other"]
    mfcc = transform_flops(PipelineConfig(transform=TransformConfig(name="mfcc")))
    assert mfcc["other"] - mel["other"] == 130 * 2 * 128 * 20
    assert transform_flops(PipelineConfig(transform=TransformConfig(name="raw")))["fft"] == 0
    rates = {"matmul_gflops": 100.0, "rfft_gflops": 20.0}
    e = efficiency(cfg, 1000.0, rates)
    assert e["gflops_reached"] == pytest.approx(mel["total"] * 1000 / 1e9)
    assert e["floor_ms_per_window"] == pytest.approx(
        1000 * (mel["fft"] / 20e9 + mel["other"] / 100e9))
    assert e["fraction_of_floor"] == pytest.approx(e["floor_ms_per_window"])  # at 1000 w/s


def _song_ds(count=6, seconds=3.0):
    rng = np.random.default_rng(0)
    songs = [{"audio": (rng.standard_normal(int(seconds * 22_050)) * 3000).astype(np.int16),
              "label": np.int64(i % 3), "song_id": f"{i:03d}"} for i in range(count)]
    return tf.data.Dataset.from_generator(
        lambda: iter(songs),
        output_signature={"audio": tf.TensorSpec([None], tf.int16),
                          "label": tf.TensorSpec([], tf.int64),
                          "song_id": tf.TensorSpec([], tf.string)})


def test_stage_profile_rows():
    from pipeline.benchmark.stages import stage_profile, stage_table

    cfg = PipelineConfig(window=WindowConfig(window_seconds=1.0, step_seconds=1.0),
                         batch_size=8, shuffle_buffer=16).validate()
    rows = stage_profile(cfg, _song_ds(), rounds=1)
    assert [r["stage"] for r in rows][:6] == ["read+decode", "+ windows", "+ shuffle blocks",
                                             "+ batch", "+ to float", "+ transform"]
    assert all(r["windows"] == 18 for r in rows[:6]) and rows[-1]["windows"] == 64
    assert all(r["cpu_ms_per_window"] > 0 for r in rows)
    assert "CPU ms/window" in stage_table(rows)


def test_input_wait_is_measured_during_fit():
    from pipeline.benchmark.stalls import input_wait, stall_line

    cfg = PipelineConfig(window=WindowConfig(window_seconds=1.0, step_seconds=1.0),
                         batch_size=4, shuffle_buffer=8).validate()
    r = input_wait(cfg, _song_ds(), num_classes=3)
    assert r["stall_steps"] == 5  # 18 windows in batches of 4
    assert 0 < r["input_wait_fraction"] < 1 and r["stall_longest_wait_ms"] > 0
    assert "waiting for the next batch" in stall_line(r)


@pytest.mark.parametrize("placed_on_gpu", [True, False])
def test_gpu_bench_loop_and_table_with_a_stand_in_device(monkeypatch, placed_on_gpu):
    """The --gpu loop and table on the CPU. The device check itself (``_on_gpu``) needs a GPU,
    so a stand-in reports where the ops ran; what is tested is that every transform and
    placement is timed and that one transform off the GPU makes the whole check fail."""
    from pipeline.benchmark import gpu

    monkeypatch.setattr(gpu, "require_gpu", lambda: "stand-in")
    monkeypatch.setattr(gpu, "GPU_TRANSFORMS", ("mel", "mfcc"))
    device = "/job:localhost/replica:0/task:0/device:" + ("GPU:0" if placed_on_gpu else "CPU:0")
    monkeypatch.setattr(gpu, "_on_gpu", lambda cfg, b: {
        "output_device": device, "on_gpu": placed_on_gpu or cfg.transform.name == "mel",
        "gpu_alone_windows_per_s": 1.0})
    window = WindowConfig(window_seconds=1.0, step_seconds=1.0)
    make_cfg = lambda name, placement: PipelineConfig(  # noqa: E731
        window=window, transform=TransformConfig(name=name), batch_size=4,
        transform_placement=placement).validate()
    result = gpu.run_gpu(make_cfg, _song_ds(3), rounds=1)
    mel = result["transforms"]["mel"]
    assert set(mel) == {"data+xla", "model+xla", "model", "gpu alone"}
    assert all(mel[p]["windows"] == 9 for p in gpu.PLACEMENTS)
    assert result["gpu_ops_on_gpu"] is placed_on_gpu  # mfcc off the GPU fails the check
    assert device.rsplit("/", 1)[-1].removeprefix("device:") in gpu.gpu_table(result)


@pytest.mark.skipif(not tf.config.list_physical_devices("GPU"), reason="needs a GPU")
def test_transform_ops_run_on_the_gpu():
    """The real device check, where there is a GPU (make bench-gpu runs the whole bench)."""
    from pipeline.benchmark import gpu

    cfg = PipelineConfig(transform=TransformConfig(name="mel"),
                         transform_placement="model").validate()
    on = gpu._on_gpu(cfg, 8)
    assert on["on_gpu"] and "GPU" in on["output_device"]


def test_bench_exit_status_checks_memory_and_input_stalls(capsys):
    from pipeline.benchmark.pipeline_bench import MAX_INPUT_WAIT, exit_status

    assert exit_status({"rss_within_tolerance": True, "input_wait_fraction": 0.002}) == 0
    assert exit_status({"rss_within_tolerance": False, "input_wait_fraction": 0.002}) == 1
    assert exit_status({"rss_within_tolerance": True,
                        "input_wait_fraction": MAX_INPUT_WAIT + 0.01}) == 1
    assert "input stalls over the limit" in capsys.readouterr().out


def test_peak_rss_is_this_programs_own_and_arenas_can_be_capped():
    """A child's peak must not inherit its parent's (ru_maxrss does, across exec)."""
    import sys as _sys

    from core.malloc import limit_arenas
    from pipeline.benchmark.memory import peak_rss_kb

    if not _sys.platform.startswith("linux"):
        pytest.skip("VmHWM and glibc's mallopt are Linux's")
    code = "from pipeline.benchmark.memory import peak_rss_kb; print(peak_rss_kb())"
    ballast = np.ones(300 * 2**20 // 8)  # 300 MB resident in this process  # noqa: F841
    child = subprocess.run([_sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, check=True)
    assert float(child.stdout) < peak_rss_kb() - 250 * 1024
    assert limit_arenas() is True


def test_memory_check_takes_the_lowest_of_repeated_peaks_and_still_catches_growth():
    """Repeats absorb one noisy peak; memory that grows with the data still fails."""
    from pipeline.benchmark.memory import compare_rss

    def noisy(peaks):  # factor -> successive peaks (MB)
        runs = {n: iter(p) for n, p in peaks.items()}
        return lambda argv, n: {"peak_rss_mb": next(runs[n])}

    spiky = compare_rss([], 5, repeats=3, measure_fn=noisy({1: [1000, 1010, 1005],
                                                           5: [1250, 1020, 1030]}))
    assert spiky["rss_growth"] == pytest.approx(0.02) and spiky["rss_within_tolerance"]
    assert spiky["peak_rss_mb"] == 1250 and spiky["rss_runs_mb"]["5x"] == [1250, 1020, 1030]
    assert not compare_rss([], 5, repeats=1, measure_fn=noisy({1: [1000], 5: [1250]}))[
        "rss_within_tolerance"]
    growing = compare_rss([], 5, repeats=3, measure_fn=noisy({1: [1000, 1010, 1005],
                                                             5: [1200, 1190, 1210]}))
    assert growing["rss_growth"] == pytest.approx(0.19) and not growing["rss_within_tolerance"]
