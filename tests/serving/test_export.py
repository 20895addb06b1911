"""The exported SavedModel, loaded by a process that cannot import this project, predicts what
``pipeline.predict`` predicts on real audio; unsupported input fails with a clear message."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core.errors import ConfigError
from pipeline import export
from pipeline.experiments.file_prediction import predict_file
from pipeline.experiments.predictor import Predictor

# Measured (cnn1d/mfcc and cnn2d/mel runs): every file agrees to 5.5e-7, i.e. to the 6 decimals
# pipeline.predict rounds to, the stereo 44.1 kHz one included: pipeline.predict's decoder and
# the SavedModel's graph resample with the same function (core.resample).  The musicnn probe
# run (frozen network + the logistic probe as a Dense layer): windows 3.9e-6, songs 4.6e-7.
TOL = 1e-5

# Runs in a fresh interpreter (-I: no PYTHONPATH, no script folder on the path) from a folder
# outside the repository; importing any module of the project raises, so the SavedModel must
# be all it needs.
CLEAN_LOADER = r'''
import importlib.abc, json, sys
PROJECT = ("core", "pipeline", "models", "gtzan_tfds", "tuning", "tests")

class RefuseProject(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in PROJECT:
            raise ImportError(f"{name} imported: the SavedModel must not need this project")
        return None

sys.meta_path.insert(0, RefuseProject())
import numpy as np, soundfile as sf, tensorflow as tf

export_dir, files, out_json = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
serve = tf.saved_model.load(export_dir).signatures["serving_default"]
results = {}
for path in files:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32)  # the caller mixes stereo down
    out = serve(audio=tf.constant(mono), sample_rate=tf.constant(rate, tf.int32))
    results[path] = {
        "rate": rate, "channels": data.shape[1], "genre": out["genre"].numpy().decode(),
        "class_names": [c.decode() for c in out["class_names"].numpy()],
        "probabilities": out["probabilities"].numpy().tolist(),
        "window_probabilities": out["window_probabilities"].numpy().tolist(),
        "window_starts": out["window_starts"].numpy().tolist(),
    }
errors = {}
for name, n, rate in (("rate", 50000, 12345), ("short", 1000, 22050), ("empty", 0, 44100)):
    try:
        serve(audio=tf.zeros([n]), sample_rate=tf.constant(rate, tf.int32))
        errors[name] = None
    except tf.errors.InvalidArgumentError as e:
        errors[name] = e.message
results["errors"] = errors
results["project_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in PROJECT)
with open(out_json, "w") as f:
    json.dump(results, f)
'''


def _run_clean(export_dir, files, tmp_path) -> dict:
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    (workdir / "loader.py").write_text(CLEAN_LOADER)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = workdir / "out.json"
    proc = subprocess.run(
        [sys.executable, "-I", "loader.py", str(export_dir), json.dumps([str(f) for f in files]),
         str(out)], cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def _real_files(gtzan_sample_dir, outside_dir):
    genres = gtzan_sample_dir / "genres"
    return [genres / "blues" / "blues.00000.wav", genres / "classical" / "classical.00001.wav",
            next(outside_dir.glob("*Vibe_Ace.ogg")), next(outside_dir.glob("*.hq.ogg"))]


@pytest.mark.parametrize("run_fixture", ["data_run", "model_run", "musicnn_run"])
def test_saved_model_in_a_clean_process_matches_predict(run_fixture, request, tmp_path,
                                                        gtzan_sample_dir, outside_dir):
    run = request.getfixturevalue(run_fixture)
    files = _real_files(gtzan_sample_dir, outside_dir)
    assert export.main(["--run", str(run), "--out", str(tmp_path / "model" / "1")]) == 0
    got = _run_clean(tmp_path / "model" / "1", files, tmp_path)
    assert got["project_modules"] == []
    predictor = Predictor.from_run(run)
    for path in files:
        ref, out = predict_file(predictor, path), got[str(path)]
        assert out["class_names"] == predictor.class_names
        window_diff = np.abs(np.subtract(out["window_probabilities"], ref["window_probabilities"]))
        song_diff = np.abs(np.subtract(out["probabilities"], list(ref["probabilities"].values())))
        assert out["window_starts"] == pytest.approx(ref["window_starts"])
        assert window_diff.max() < TOL and song_diff.max() < TOL, path
        assert out["genre"] == ref["genre"], path
    rates = {(got[str(p)]["rate"], got[str(p)]["channels"]) for p in files}
    assert (44100, 2) in rates and (22050, 1) in rates  # a resampled stereo file was checked
    assert "unsupported sample_rate" in got["errors"]["rate"] and "44100" in got["errors"]["rate"]
    seconds = predictor.pipeline.window.window_seconds
    assert "too short" in got["errors"]["short"] and f"{seconds:g} s window" in got["errors"]["short"]
    assert "too short" in got["errors"]["empty"]


def test_export_writes_its_metadata_and_keeps_an_existing_export(data_run, tmp_path, capsys,
                                                                  gtzan_sample_dir):
    out = tmp_path / "export"
    clip = gtzan_sample_dir / "genres" / "hiphop" / "hiphop.00002.wav"
    assert export.main(["--run", str(data_run), "--out", str(out), "--check", str(clip),
                        "--repeats", "1"]) == 0
    row = capsys.readouterr().out.splitlines()[-1].split()  # the --check row of the clip
    assert row[0] == "hiphop.00002.wav" and row[1] == "22050" and row[7] == "same"
    assert float(row[5]) < 1e-5 and float(row[6]) < 1e-5  # window and song differences
    meta = json.loads((out / "assets.extra" / "gtzan_stream.json").read_text())
    assert meta["approach"] == "cnn1d" and meta["class_names"][0] == "blues"
    assert 44100 in meta["supported_sample_rates"] and meta["window_seconds"] == 1.5
    assert "data_dir" not in meta["pipeline"]["dataset"]
    stamp = (out / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(ConfigError, match="already exists.*--overwrite"):
        export.main(["--run", str(data_run), "--out", str(out)])
    assert (out / "saved_model.pb").stat().st_mtime_ns == stamp
    assert export.main(["--run", str(data_run), "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary left


def test_sklearn_run_is_refused_in_one_line(sklearn_run, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.export", "--run", str(sklearn_run),
         "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=300,
        env=dict(os.environ))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "rf is a scikit-learn approach and cannot be exported" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_saved_model_of_a_16khz_musicnn_pipeline(tmp_path, gtzan_sample_dir):
    """A run at another rate (musicnn's 16 kHz input, as the musicnn approaches use): the graph
    resamples 22,050 -> 16,000 Hz as prediction does.  An untrained cnn1d stands in for the
    model; what is checked is the path around it."""
    import keras
    import tensorflow as tf

    from core.config import PipelineConfig, TrainConfig, TransformConfig, WindowConfig
    from gtzan_tfds.audio_io import read_audio
    from pipeline.experiments.keras_training import build_keras_model
    from pipeline.experiments.file_prediction import predict_audio
    from pipeline.serving.saved_model import GenreModule

    cfg = PipelineConfig(window=WindowConfig(sample_rate=16000, window_seconds=3.0),
                         transform=TransformConfig(name="musicnn"), batch_size=4)
    keras.utils.set_random_seed(0)
    train = TrainConfig(model="cnn1d")
    predictor = Predictor(build_keras_model(cfg, train, 10), "keras", cfg,
                          [f"g{i}" for i in range(10)], train)
    module = GenreModule(predictor.model, cfg, predictor.class_names, {})
    tf.saved_model.save(module, str(tmp_path / "m"), signatures=module.signatures())
    serve = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"]
    audio = read_audio(gtzan_sample_dir / "genres" / "pop" / "pop.00004.wav")
    out = serve(audio=tf.constant(audio), sample_rate=tf.constant(22050))
    ref = predict_audio(predictor, audio)
    assert out["window_probabilities"].shape == (10, 10)  # 30 s in 3 s windows, batches of 4
    assert np.abs(out["window_probabilities"].numpy() - ref["window_probabilities"]).max() < 1e-5
    assert np.ptp(np.asarray(ref["window_probabilities"]), axis=0).max() > 1e-3  # windows differ


def test_the_saved_model_states_and_enforces_its_input_limit(data_run, tmp_path):
    """Issue 20: the graph holds its whole input, so it takes at most max_input_seconds (in its
    metadata) and refuses longer audio with "too long", at any input rate."""
    import tensorflow as tf

    from pipeline.serving.exporting import load_keras_run, run_metadata
    from pipeline.serving.saved_model import GenreModule

    predictor = load_keras_run(data_run)
    assert run_metadata(predictor, data_run)["max_input_seconds"] == 600.0
    module = GenreModule(predictor.model, predictor.pipeline, predictor.class_names, {},
                         max_input_seconds=2.0)
    ok = module.serve(tf.zeros([2 * 8000]), tf.constant(8000))
    assert ok["window_probabilities"].shape[0] == 1  # 2 s: one 1.5 s window
    with pytest.raises(tf.errors.InvalidArgumentError, match="too long: the SavedModel takes at "
                                                             "most 2 s of audio"):
        module.serve(tf.zeros([2 * 8000 + 1]), tf.constant(8000))
