"""The Flask app behind ``python -m pipeline.serve``: one page to try a trained run.

Choose an audio file, and the page shows the genre (mean vote over windows), the top genres and
the per-window timeline (``plots.plot_timeline``, sent as a PNG in base64).  Predictions go
through the code ``pipeline.predict`` runs (``prediction.predict_file`` on a
``Predictor.from_run``; decoding by ``gtzan_tfds.audio_io.read_audio``), so the page says what
the command line says.  Any Keras or scikit-learn run works.

Bad uploads never take the server down: no file, an empty file, a file that is not audio or too
short (``AudioDecodeError``, naming the problem) get a 400 with the message, one over the size
limit a 413; the page shows the message and the server keeps answering.  Predictions run one at
a time (a lock), so memory stays that of one file however many people upload.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
from pathlib import Path

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from core.errors import AudioDecodeError
from pipeline.experiments import plots
from pipeline.experiments.prediction import predict_file
from pipeline.experiments.predictor import Predictor

DEFAULT_MAX_UPLOAD_MB = 50.0


def create_app(predictor: Predictor, *, run_name: str = "",
               max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, top: int = 3) -> Flask:
    """The app for one loaded run: ``GET /`` the page, ``POST /predict`` (multipart field
    ``audio``) the prediction as JSON, ``GET /health`` a liveness answer."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1_000_000)
    lock = threading.Lock()
    about = {"run": run_name, "approach": predictor.train.model if predictor.train else "",
             "transform": predictor.pipeline.transform.name,
             "window_seconds": predictor.pipeline.window.window_seconds,
             "max_upload_mb": max_upload_mb, "genres": predictor.class_names}

    @app.get("/")
    def index():
        return render_template("index.html", **about)

    @app.get("/health")
    def health():
        return jsonify(status="ok", **about)

    @app.post("/predict")
    def predict():
        upload = request.files.get("audio")
        if upload is None or not upload.filename:
            return _error("choose an audio file first", 400)
        name = Path(upload.filename).name
        try:
            with lock:
                return jsonify(_predict_upload(predictor, upload, name, top))
        except AudioDecodeError as e:
            return _error(f"{name}: {e.reason}", 400)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_):
        return _error(f"file too large: the limit is {max_upload_mb:g} MB", 413)

    return app


def _error(message: str, status: int):
    return jsonify(error=message), status


def _predict_upload(predictor: Predictor, upload, name: str, top: int) -> dict:
    """predict_file on the upload, saved under a temporary name with its extension (the
    decoder checks the format the extension names); the timeline as a base64 PNG."""
    with tempfile.TemporaryDirectory(prefix="gtzan_serve_") as tmp:
        path = Path(tmp) / ("upload" + Path(name).suffix.lower())
        upload.save(path)
        result = predict_file(predictor, path)
        png = plots.plot_timeline(
            result["window_probabilities"], result["window_starts"], result["window_seconds"],
            predictor.class_names, Path(tmp) / "timeline.png", title=name,
            mean_vote=result["genre"], majority_vote=result["majority_genre"])
        timeline = base64.b64encode(png.read_bytes()).decode("ascii")
    ranked = sorted(result["probabilities"].items(), key=lambda kv: -kv[1])[:top]
    return {
        "file": name, "genre": result["genre"], "majority_genre": result["majority_genre"],
        "top": [{"genre": g, "probability": p} for g, p in ranked],
        "windows": len(result["window_starts"]), "duration_seconds": result["duration_seconds"],
        "timeline_png": timeline,
    }


def serve(run_dir: os.PathLike | str, *, host: str, port: int, max_upload_mb: float,
          top: int = 3) -> None:
    """Load the run and serve the page until interrupted (Werkzeug's threaded server: fine for
    a page on one machine; behind a public address use a WSGI server with ``create_app``)."""
    predictor = Predictor.from_run(run_dir)
    app = create_app(predictor, run_name=Path(run_dir).name, max_upload_mb=max_upload_mb,
                     top=top)
    print(f"serving {run_dir} on http://{host}:{port}/  (Ctrl-C stops)", flush=True)
    app.run(host=host, port=port, threaded=True)
