"""`python -m pipeline.serving.stress page|predict --run RUN`: the page and pipeline.predict
under the inputs of issue 20, measured.

``page``: starts ``python -m pipeline.serve`` (waitress) on 127.0.0.1, sends it the
decompression bomb alone (a ~1.9 MB FLAC of 3 hours of 44.1 kHz stereo silence, written block
by block), then ``--requests`` uploads, ``--concurrency`` at a time: real clips, bad files (text
named .wav, an empty .mp3, random bytes named .ogg, a file named ../../etc/passwd.wav, no file),
oversize uploads and the bomb again.  Every answer must be the expected 200/400/413 (never a
500 or no answer), the server's peak RSS under ``--max-rss-mb``, the bomb refused in under 2 s
with the server's RSS moving less than 200 MB.  Prints latencies (p50/p95 per kind) and memory;
exit status 1 when a check fails.  Bounded: ``--requests`` and ``--max-seconds``.

``predict``: peak RSS (VmHWM, read by the child itself: ``ru_maxrss`` would report a parent's
peak after exec) and CPU time of ``python -m pipeline.predict`` on a 30 s file and on
``--hours`` of the bomb: streamed, memory must not grow with the length.

Figures: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Optional

import numpy as np

from pipeline.cli.entry import run_cli

ROOT = Path(__file__).resolve().parents[2]
SHARED_CLIPS = ROOT.parent / "shared" / "data" / "gtzan_sample"
EXPECTED = {"clip": 200, "bad": 400, "bomb": 400, "oversize": 413}
BOMB_SECONDS_LIMIT = 2.0  # done-when of issue 20: the bomb is refused within this
BOMB_RSS_LIMIT_MB = 200.0  # ... and the server's RSS moves less than this


# --- inputs ----------------------------------------------------------------------------------
def write_silence_flac(path: Path, seconds: float, sr: int = 44_100, channels: int = 2) -> Path:
    """The decompression bomb: silence, a minute at a time (never the whole in memory)."""
    import soundfile as sf

    block = np.zeros((sr * 60, channels), np.float32)
    with sf.SoundFile(path, "w", sr, channels, subtype="PCM_16", format="FLAC") as f:
        for _ in range(int(seconds // 60)):
            f.write(block)
        f.write(block[: int(seconds % 60 * sr)])
    return path


@dataclasses.dataclass(frozen=True)
class Upload:
    kind: str  # a key of EXPECTED
    name: Optional[str]  # file name sent; None: no file field at all
    data: bytes


def make_uploads(folder: Path, clips_dir: Optional[Path], max_upload_mb: float,
                 bomb: Path, max_clips: int = 10) -> list[Upload]:
    """The mix: real clips (or generated noise where the shared sample is absent), bad files,
    an oversize upload and the bomb."""
    import soundfile as sf

    clips = sorted(clips_dir.glob("genres/*/*.wav"))[::5][:max_clips] if clips_dir else []
    uploads = [Upload("clip", p.name, p.read_bytes()) for p in clips]
    if not uploads:
        rng = np.random.default_rng(0)
        for i in range(min(3, max_clips)):
            path = folder / f"noise{i}.wav"
            sf.write(path, 0.2 * rng.standard_normal(30 * 22_050), 22_050, subtype="PCM_16")
            uploads.append(Upload("clip", path.name, path.read_bytes()))
    uploads += [
        Upload("bad", "notes.wav", b"these are my notes, not a song\n" * 40),
        Upload("bad", "empty.mp3", b""),
        Upload("bad", "noise.ogg", np.random.default_rng(1).bytes(50_000)),
        Upload("bad", "../../etc/passwd.wav", b"root:x:0:0:root:/root:/bin/bash\n"),
        Upload("bad", None, b""),
        Upload("oversize", "zeros.wav", b"RIFF" + bytes(int((max_upload_mb + 1) * 1_000_000))),
        Upload("bomb", bomb.name, bomb.read_bytes()),
    ]
    return uploads


# --- the client ------------------------------------------------------------------------------
def post(url: str, upload: Upload, timeout: float) -> tuple[int, float, str]:
    """(status, seconds, error message or genre) of one multipart POST; status 0: no answer."""
    boundary = uuid.uuid4().hex
    parts = []
    if upload.name is not None:
        parts += [f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; "
                  f"filename=\"{upload.name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                  .encode(), upload.data, b"\r\n"]
    body = b"".join(parts + [f"--{boundary}--\r\n".encode()])
    request = urllib.request.Request(url + "predict", data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            status, text = reply.status, reply.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    except OSError as e:
        return 0, time.perf_counter() - start, f"no answer: {e}"
    seconds = time.perf_counter() - start
    try:
        answer = json.loads(text)
        return status, seconds, answer.get("error") or answer.get("genre", "")
    except ValueError:
        return status, seconds, text[:200].decode(errors="replace")


# --- the server ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m pipeline.serve`` in a child process, its RSS polled every 20 ms."""

    def __init__(self, run: Path, max_upload_mb: float, log: Path, extra=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        self._log = open(log, "w")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.serve", "--run", str(run), "--port", str(self.port),
             "--max-upload-mb", str(max_upload_mb), *extra],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: see {self._log.name}")
            time.sleep(0.3)
        self._thread.start()

    def rss_mb(self) -> float:
        import psutil

        try:
            return psutil.Process(self.proc.pid).memory_info().rss / 2**20
        except psutil.Error:
            return 0.0

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mb = max(self.peak_mb, self.rss_mb())

    def hwm_mb(self) -> float:
        """VmHWM: the kernel's own peak RSS of the server (catches what polling misses)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            line = next(l for l in f if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def stop(self) -> None:
        self._stop.set()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._log.close()


# --- the page under load ---------------------------------------------------------------------
def _percentiles(seconds: list[float]) -> dict:
    if not seconds:
        return {}
    p50, p95 = np.percentile(seconds, [50, 95])
    return {"n": len(seconds), "p50_s": round(float(p50), 3), "p95_s": round(float(p95), 3),
            "max_s": round(float(max(seconds)), 3)}


def _bomb_alone(server: Server, bomb: Upload) -> dict:
    """The bomb on an idle server: its latency and how far the server's RSS moves."""
    time.sleep(1.0)
    before = server.rss_mb()
    server.peak_mb = before
    status, seconds, message = post(server.url, bomb, timeout=60)
    time.sleep(0.5)
    return {"status": status, "seconds": round(seconds, 3), "message": message,
            "rss_before_mb": round(before, 1), "rss_peak_mb": round(server.peak_mb, 1),
            "rss_after_mb": round(server.rss_mb(), 1),
            "rss_moved_mb": round(server.peak_mb - before, 1)}


def _load(server: Server, uploads: list[Upload], requests: int, concurrency: int,
          max_seconds: float, seed: int = 0) -> list[dict]:
    """``requests`` uploads drawn from the mix, ``concurrency`` at a time; stops submitting
    after ``max_seconds``."""
    rng = random.Random(seed)
    chosen = [uploads[i % len(uploads)] for i in range(requests)]
    rng.shuffle(chosen)
    deadline = time.monotonic() + max_seconds
    results = []

    def one(upload: Upload) -> dict:
        if time.monotonic() > deadline:
            return {"kind": upload.kind, "name": upload.name, "status": None}
        status, seconds, message = post(server.url, upload, timeout=max_seconds)
        return {"kind": upload.kind, "name": upload.name, "status": status,
                "seconds": seconds, "message": message}

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for result in pool.map(one, chosen):
            results.append(result)
    return results


def page_stress(run: Path, *, requests: int = 400, concurrency: int = 8,
                clips_dir: Optional[Path] = SHARED_CLIPS, max_upload_mb: float = 10.0,
                bomb_seconds: float = 3 * 3600, bomb_rate: int = 44_100, bomb_channels: int = 2,
                max_seconds: float = 600.0, max_clips: int = 10) -> dict:
    """Runs the page test; returns the report (see ``failures``)."""
    with tempfile.TemporaryDirectory(prefix="gtzan_stress_") as tmp:
        folder = Path(tmp)
        bomb_path = write_silence_flac(folder / "three hours of silence.flac", bomb_seconds,
                                       bomb_rate, bomb_channels)
        bomb_mb = round(bomb_path.stat().st_size / 1e6, 2)
        clips = clips_dir if clips_dir and clips_dir.is_dir() else None
        uploads = make_uploads(folder, clips, max_upload_mb, bomb_path, max_clips)
        server = Server(run, max_upload_mb, folder / "server.log")
        try:
            server.wait_ready()
            started = server.rss_mb()
            bomb = _bomb_alone(server, uploads[-1])
            start = time.perf_counter()
            results = _load(server, uploads, requests, concurrency, max_seconds)
            wall = time.perf_counter() - start
            alive = post(server.url, uploads[0], timeout=60)[0]
            hwm = server.hwm_mb()
        finally:
            server.stop()
    answered = [r for r in results if r["status"] is not None]
    return {
        "requests": len(answered), "not_sent_time_limit": len(results) - len(answered),
        "concurrency": concurrency, "wall_s": round(wall, 1),
        "bomb": {**bomb, "file_mb": bomb_mb,
                 "audio_seconds": bomb_seconds},
        "statuses": _count(answered, "status"),
        "unexpected": [r for r in answered if r["status"] != EXPECTED[r["kind"]]],
        "latency": {"all": _percentiles([r["seconds"] for r in answered]),
                    **{k: _percentiles([r["seconds"] for r in answered if r["kind"] == k])
                       for k in EXPECTED}},
        "rss_mb": {"started": round(started, 1), "peak_polled": round(server.peak_mb, 1),
                   "peak_vmhwm": round(hwm, 1)},
        "health_after": alive,
    }


def _count(results: list[dict], key: str) -> dict:
    out: dict = {}
    for r in results:
        out[str(r[key])] = out.get(str(r[key]), 0) + 1
    return dict(sorted(out.items()))


def failures(report: dict, max_rss_mb: float) -> list[str]:
    """What the page test found wrong (empty: passed)."""
    out = [f"{r['kind']} {r['name']!r}: expected {EXPECTED[r['kind']]}, got {r['status']} "
           f"({r['message']})" for r in report["unexpected"][:10]]
    bomb = report["bomb"]
    if bomb["status"] != 400 or "too long" not in bomb["message"]:
        out.append(f"the bomb was not refused as too long: {bomb['status']} {bomb['message']}")
    if bomb["seconds"] >= BOMB_SECONDS_LIMIT:
        out.append(f"the bomb took {bomb['seconds']} s (limit {BOMB_SECONDS_LIMIT} s)")
    if bomb["rss_moved_mb"] >= BOMB_RSS_LIMIT_MB:
        out.append(f"the bomb moved the server's RSS by {bomb['rss_moved_mb']} MB")
    if report["rss_mb"]["peak_vmhwm"] > max_rss_mb:
        out.append(f"server peak RSS {report['rss_mb']['peak_vmhwm']} MB > {max_rss_mb} MB")
    if report["health_after"] != 200:
        out.append("the server did not predict a clip after the load")
    return out


# --- pipeline.predict on long files ----------------------------------------------------------
PEAK_CHILD = """
import sys, time, resource
from pipeline.cli.entry import run_cli
from pipeline import predict
try:
    run_cli(predict.main, sys.argv[1:])
finally:
    status = open("/proc/self/status").read()
    hwm = next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("stress_peak_kb", hwm, usage.ru_utime + usage.ru_stime, file=sys.stderr)
"""


def predict_memory(run: Path, hours: float, workdir: Path) -> list[dict]:
    """Peak RSS (VmHWM) and CPU seconds of pipeline.predict on 30 s, 10 min and ``hours``."""
    rows = []
    for seconds in (30.0, 600.0, hours * 3600):
        path = write_silence_flac(workdir / f"silence_{seconds:.0f}s.flac", seconds)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(path), "--run", str(run)],
                              cwd=ROOT, capture_output=True, text=True, env=dict(
                                  os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3"))
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        kb, cpu = proc.stderr.rsplit("stress_peak_kb", 1)[1].split()[:2]
        rows.append({"audio_s": seconds, "peak_rss_mb": round(int(kb) / 1024, 1),
                     "cpu_s": round(float(cpu), 1), "wall_s": round(wall, 1),
                     "answer": proc.stdout.strip()[:120]})
    return rows


# --- the command -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.serving.stress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("page", "predict"), help="what to stress")
    parser.add_argument("--run", required=True, help="run directory written by pipeline.train")
    parser.add_argument("--requests", type=int, default=400, help="page: uploads sent")
    parser.add_argument("--concurrency", type=int, default=8, help="page: uploads at a time")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="page: stop sending after this long")
    parser.add_argument("--max-rss-mb", type=float, default=1500.0,
                        help="page: the bound on the server's peak RSS")
    parser.add_argument("--hours", type=float, default=3.0, help="predict: the long file")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.what == "predict":
        with tempfile.TemporaryDirectory(prefix="gtzan_stress_") as tmp:
            report = {"predict": predict_memory(Path(args.run), args.hours, Path(tmp))}
        problems = []
    else:
        report = page_stress(Path(args.run), requests=args.requests,
                             concurrency=args.concurrency, max_seconds=args.max_seconds)
        problems = failures(report, args.max_rss_mb)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    for p in problems:
        print(f"FAILED: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    run_cli(main)
