"""The Flask app behind ``python -m pipeline.serve``: one page to try a trained run.

Choose an audio file, and the page shows the genre (mean vote over windows), the top genres and
the per-window timeline (``plots.plot_timeline``, sent as a PNG in base64).  Predictions go
through the code ``pipeline.predict`` runs (``prediction.predict_file`` on a
``Predictor.from_run``: decoded and predicted block by block), so the page says what the
command line says.  Any Keras or scikit-learn run works.

Bad uploads never take the server down: no file, an empty file, a file that is not audio, too
short or longer than ``ServeConfig.max_audio_seconds`` of decoded audio (``AudioDecodeError``,
naming the problem; the length is read from the header before decoding, so a small file that
holds hours of audio is refused at once) get a 400 with the message, one over the upload limit
a 413.  A prediction that would pass ``request_timeout_seconds`` (waiting for its turn
included) is stopped with a 503.  Predictions run one at a time (a lock), so memory stays that
of one streamed file (one block, one batch) however many people upload; after each one, freed
memory goes back to the system (``core.malloc.trim``).

``serve`` runs the app on waitress, a production WSGI server (Werkzeug's development server is
not meant for it), with its own upload cap (twice ``max_upload_mb``) as a second guard.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
import time
from pathlib import Path

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from core.config import ServeConfig
from core.errors import AudioDecodeError, TimeLimitError
from core.malloc import trim
from gtzan_tfds.audio_io import audio_info, check_length
from pipeline.experiments import plots
from pipeline.experiments.file_prediction import predict_file
from pipeline.experiments.predictor import Predictor

DEFAULT_MAX_UPLOAD_MB = ServeConfig().max_upload_mb


def create_app(predictor: Predictor, *, run_name: str = "",
               max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, top: int = 3,
               config: ServeConfig | None = None) -> Flask:
    """The app for one loaded run: ``GET /`` the page, ``POST /predict`` (multipart field
    ``audio``) the prediction as JSON, ``GET /health`` a liveness answer.  ``config`` gives
    every limit; without it, ServeConfig's defaults with ``max_upload_mb`` and ``top``."""
    cfg = (config or ServeConfig(max_upload_mb=max_upload_mb, top=top)).validate()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(cfg.max_upload_mb * 1_000_000)
    lock = threading.Lock()
    about = {"run": run_name, "approach": predictor.train.model if predictor.train else "",
             "transform": predictor.pipeline.transform.name,
             "window_seconds": predictor.pipeline.window.window_seconds,
             "max_upload_mb": cfg.max_upload_mb, "max_audio_seconds": cfg.max_audio_seconds,
             "genres": predictor.class_names}

    @app.get("/")
    def index():
        return render_template("index.html", **about)

    @app.get("/health")
    def health():
        return jsonify(status="ok", **about)

    @app.post("/predict")
    def predict():
        deadline = time.monotonic() + cfg.request_timeout_seconds
        upload = request.files.get("audio")
        if upload is None or not upload.filename:
            return _error("choose an audio file first", 400)
        name = Path(upload.filename).name
        try:
            with tempfile.TemporaryDirectory(prefix="gtzan_serve_") as tmp:
                path = Path(tmp) / ("upload" + Path(name).suffix.lower())
                upload.save(path)
                # the header's checks (format, length) before waiting for a turn: a bad file
                # or a bomb is answered at once, even while others' songs are predicted
                check_length(audio_info(path), cfg.max_audio_seconds)
                if not lock.acquire(timeout=max(deadline - time.monotonic(), 0)):
                    return _error(f"the server is busy: no turn within the limit of "
                                  f"{cfg.request_timeout_seconds:g} s, try again", 503)
                try:
                    return jsonify(_predict_path(predictor, path, name, cfg, deadline))
                finally:
                    lock.release()
                    trim()
        except AudioDecodeError as e:
            return _error(f"{name}: {e.reason}", 400)
        except TimeLimitError:
            return _error(f"{name}: stopped at the time limit of {cfg.request_timeout_seconds:g} "
                          "s per request", 503)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_):
        return _error(f"file too large: the limit is {cfg.max_upload_mb:g} MB", 413)

    return app


def _error(message: str, status: int):
    return jsonify(error=message), status


def _predict_path(predictor: Predictor, path: Path, name: str, cfg: ServeConfig,
                  deadline: float) -> dict:
    """predict_file on the saved upload (its extension kept: the decoder checks the format the
    extension names); the timeline as a base64 PNG."""
    result = predict_file(predictor, path, max_seconds=cfg.max_audio_seconds, deadline=deadline)
    with tempfile.TemporaryDirectory(prefix="gtzan_serve_") as tmp:
        png = plots.plot_timeline(
            result["window_probabilities"], result["window_starts"], result["window_seconds"],
            predictor.class_names, Path(tmp) / "timeline.png", title=name,
            mean_vote=result["genre"], majority_vote=result["majority_genre"])
        timeline = base64.b64encode(png.read_bytes()).decode("ascii")
    ranked = sorted(result["probabilities"].items(), key=lambda kv: -kv[1])[:cfg.top]
    return {
        "file": name, "genre": result["genre"], "majority_genre": result["majority_genre"],
        "top": [{"genre": g, "probability": p} for g, p in ranked],
        "windows": len(result["window_starts"]), "duration_seconds": result["duration_seconds"],
        "timeline_png": timeline,
    }


def serve(run_dir: os.PathLike | str, config: ServeConfig) -> None:
    """Load the run and serve the page on waitress until interrupted."""
    from waitress import serve as waitress_serve

    config.validate()
    predictor = Predictor.from_run(run_dir)
    app = create_app(predictor, run_name=Path(run_dir).name, config=config)
    print(f"serving {run_dir} on http://{config.host}:{config.port}/  (waitress, "
          f"{config.threads} threads; Ctrl-C stops)", flush=True)
    waitress_serve(
        app, host=config.host, port=config.port, threads=config.threads,
        # waitress's own cap (its default is 1 GB), twice Flask's so that Flask's 413 with a
        # message answers the usual oversize upload; bodies are spooled to disk past 512 KB
        max_request_body_size=2 * int(config.max_upload_mb * 1_000_000) + 1_000_000,
        channel_timeout=int(config.request_timeout_seconds) + 60, ident="gtzan-stream")
