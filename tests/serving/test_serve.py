"""The try-it page: predictions as pipeline.predict makes them, clear messages for bad uploads,
and a server that keeps answering; checked through Flask's test client and in a real headless
Chromium (skipped, with the reason, where Chromium or its driver is missing)."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.experiments.file_prediction import predict_file
from pipeline.experiments.predictor import Predictor

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--window-size=1200,1400")


@pytest.fixture(scope="module")
def client(data_run):
    from pipeline.serving.web import create_app

    app = create_app(Predictor.from_run(data_run), run_name="r", max_upload_mb=2)
    return app.test_client()


def _post(client, name, data: bytes):
    return client.post("/predict", data={"audio": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_page_predicts_what_pipeline_predict_predicts(client, data_run, gtzan_sample_dir):
    clip = gtzan_sample_dir / "genres" / "disco" / "disco.00003.wav"
    reply = _post(client, "disco.00003.wav", clip.read_bytes())
    assert reply.status_code == 200
    ref = predict_file(Predictor.from_run(data_run), clip)
    body = reply.get_json()
    assert body["genre"] == ref["genre"] and body["windows"] == len(ref["window_starts"])
    assert [t["genre"] for t in body["top"]][0] == ref["genre"] and len(body["top"]) == 3
    assert body["timeline_png"].startswith("iVBORw0KGgo")  # base64 of the PNG signature
    assert "What genre does it hear?" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("name, data, status, message", [
    ("song.wav", b"", 400, "song.wav: empty file (0 bytes)"),
    ("notes.wav", b"these are not samples" * 50, 400, "notes.wav: not a WAV file"),
    ("song.txt", b"hello", 400, "song.txt: unknown extension '.txt'"),
    ("big.wav", b"RIFF" + bytes(2_100_000), 413, "file too large: the limit is 2 MB"),
])
def test_bad_uploads_get_a_message_and_the_server_goes_on(client, name, data, status, message):
    reply = _post(client, name, data)
    assert reply.status_code == status and message in reply.get_json()["error"]
    assert client.get("/health").get_json()["status"] == "ok"


def test_too_short_and_missing_file(client, tmp_path):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "short.flac", np.zeros(11025, np.float32), 22050)
    reply = _post(client, "short.flac", (tmp_path / "short.flac").read_bytes())
    assert reply.status_code == 400 and "short.flac: too short: 0.50 s" in reply.get_json()["error"]
    reply = client.post("/predict", data={}, content_type="multipart/form-data")
    assert reply.status_code == 400 and reply.get_json()["error"] == "choose an audio file first"


def test_the_bomb_is_refused_from_its_header_at_once(client, tmp_path):
    """Issue 20: a small FLAC holding 3 hours of audio (here 8 kHz mono, 0.27 MB; the 44.1 kHz
    stereo 1.9 MB one in pipeline.serving.stress) is refused before decoding."""
    from pipeline.serving.stress import write_silence_flac

    bomb = write_silence_flac(tmp_path / "bomb.flac", 3 * 3600, sr=8_000, channels=1)
    start = time.perf_counter()
    reply = _post(client, "bomb.flac", bomb.read_bytes())
    assert time.perf_counter() - start < 2.0
    assert reply.status_code == 400
    assert reply.get_json()["error"] == ("bomb.flac: too long: 3:00:00 (10800 s) of audio, the "
                                         "limit is 10:00 (600 s)")


def test_a_prediction_past_the_time_limit_is_stopped(data_run, gtzan_sample_dir):
    from core.config import ServeConfig
    from pipeline.serving.web import create_app

    app = create_app(Predictor.from_run(data_run),
                     config=ServeConfig(max_upload_mb=2, request_timeout_seconds=1e-6))
    clip = gtzan_sample_dir / "genres" / "rock" / "rock.00000.wav"
    reply = _post(app.test_client(), "rock.wav", clip.read_bytes())
    assert reply.status_code == 503
    assert "time limit of 1e-06 s" in reply.get_json()["error"]


# ---------------------------------------------------------------------------------------------
# the real thing: the CLI's server (waitress), a real browser
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.fixture
def server(data_run, tmp_path):
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.serve", "--run", str(data_run), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while not _answers(url + "health"):
        assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the server did not answer within 180 s"
        time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None or not Path(CHROMEDRIVER).exists():
        pytest.skip("Chromium or chromedriver missing (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={tmp_path / 'chromium-profile'}",):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER),
                              options=options)
    yield driver
    driver.quit()


def _upload(driver, path: Path, wait_for: str) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.ID, "audio").send_keys(str(path))
    driver.find_element(By.ID, "submit").click()
    element = WebDriverWait(driver, 120).until(ec.visibility_of_element_located((By.ID, wait_for)))
    return element.text


def test_in_a_real_browser(server, browser, data_run, gtzan_sample_dir, tmp_path):
    from selenium.webdriver.common.by import By

    clip = gtzan_sample_dir / "genres" / "jazz" / "jazz.00001.wav"
    browser.get(server)
    assert "What genre does it hear?" in browser.page_source
    genre = _upload(browser, clip, "result").splitlines()[1]  # "It hears:", then the genre
    assert genre.lower() == predict_file(Predictor.from_run(data_run), clip)["genre"]
    timeline = browser.find_element(By.ID, "timeline")
    assert browser.execute_script("return arguments[0].naturalWidth", timeline) > 500
    browser.save_screenshot(str(tmp_path / "serve_page.png"))

    junk = tmp_path / "not audio.wav"
    junk.write_bytes(b"<html>this is a web page, not a song</html>")
    error = _upload(browser, junk, "error")
    assert "not audio.wav: not a WAV file" in error
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert _answers(server + "health") and _answers(server)
    assert _upload(browser, clip, "result").splitlines()[1].lower() == genre.lower()
