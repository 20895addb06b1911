"""Distributed tuning: one chief (the oracle) and any number of workers (the trials).

keras_tuner's chief/worker mode, driven by three environment variables on every process:

    KERASTUNER_TUNER_ID     "chief" on the chief; a unique id per worker ("tuner0", "tuner1", ...)
    KERASTUNER_ORACLE_IP    address the chief listens on and the workers connect to
    KERASTUNER_ORACLE_PORT  its port

Every process runs the *same* ``python -m tuning.search ...`` command.  The chief reloads or
creates the project, serves the oracle over gRPC and runs no trial; each worker asks it for a
trial, builds that trial's pipeline and model, trains it and reports back, until the oracle says
stop.  Then the chief writes the summary and retrains the best configuration; workers just
exit.  Example, on three machines (or three terminals)::

    KERASTUNER_TUNER_ID=chief  KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000 \\
        python -m tuning.search --tuner random --max-trials 20 --directory /shared/tuning_runs
    KERASTUNER_TUNER_ID=tuner0 KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000 \\
        python -m tuning.search --tuner random --max-trials 20 --directory /shared/tuning_runs
    KERASTUNER_TUNER_ID=tuner1 ...same...

(The chief binds KERASTUNER_ORACLE_IP: use the chief's own address, or 0.0.0.0 on the chief
with its address on the workers.)  The directory need not be shared (the chief holds the
oracle and every trial's record), except with Hyperband, whose later rounds start from an
earlier round's checkpoint written by whichever worker ran it.  On one machine,
``python -m tuning.distributed --workers 2 -- <search flags>`` starts the chief and the workers
for you, each logging to ``<directory>/<project>/logs/<tuner id>.log``.

A worker that dies mid-trial leaves the chief waiting for that trial: restart the worker with
the same KERASTUNER_TUNER_ID and it is handed the same trial again.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from tuning.project import project_dir_from_args
from tuning.roles import CHIEF, ENV_ID, ENV_IP, ENV_PORT
from tuning.search import build_parser as search_parser


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def role_env(tuner_id: str, ip: str, port: int, base: Optional[dict] = None) -> dict:
    env = dict(os.environ if base is None else base)
    env.update({ENV_ID: tuner_id, ENV_IP: ip, ENV_PORT: str(port)})
    return env


def launch_local(
    search_argv: Sequence[str],
    workers: int = 2,
    *,
    ip: str = "127.0.0.1",
    port: Optional[int] = None,
    log_dir: Optional[os.PathLike] = None,
    timeout: Optional[float] = None,
    grace_seconds: float = 60.0,
    env: Optional[dict] = None,
) -> dict[str, int]:
    """Run ``python -m tuning.search <search_argv>`` as a chief and `workers` workers here.

    Returns each process's exit status by tuner id.  If the workers have all exited but the
    chief still waits after `grace_seconds` (a worker crashed mid-trial), the chief is stopped
    and reported with status -1.
    """
    port = port or free_port(ip)
    cmd = [sys.executable, "-m", "tuning.search", *search_argv]
    ids = [CHIEF] + [f"tuner{i}" for i in range(workers)]
    log_dir = Path(log_dir) if log_dir else None
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    procs, logs = {}, []
    for tuner_id in ids:
        out = open(log_dir / f"{tuner_id}.log", "w") if log_dir else None
        logs.append(out)
        procs[tuner_id] = subprocess.Popen(
            cmd, env=role_env(tuner_id, ip, port, env), stdout=out,
            stderr=subprocess.STDOUT if out else None,
        )
    try:
        return _wait_all(procs, timeout, grace_seconds)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for out in logs:
            if out:
                out.close()


def _wait_all(procs: dict, timeout: Optional[float], grace_seconds: float) -> dict[str, int]:
    """Exit status of every process; a chief left waiting for a crashed worker is stopped
    (-1), and everything still running at `timeout` is killed (-9)."""
    start = time.monotonic()
    workers = [t for t in procs if t != CHIEF]
    workers_done_at = None
    codes: dict[str, int] = {}
    while len(codes) < len(procs):
        for tuner_id, proc in procs.items():
            if tuner_id not in codes and proc.poll() is not None:
                codes[tuner_id] = proc.returncode
        if workers_done_at is None and all(t in codes for t in workers):
            workers_done_at = time.monotonic()
        if CHIEF not in codes and workers_done_at and time.monotonic() - workers_done_at > grace_seconds \
                and any(codes[t] != 0 for t in workers):
            procs[CHIEF].terminate()
            procs[CHIEF].wait(30)
            codes[CHIEF] = -1
        if timeout is not None and time.monotonic() - start > timeout:
            for tuner_id, proc in procs.items():
                if tuner_id not in codes:
                    proc.kill()
                    proc.wait()
                    codes[tuner_id] = -9
        time.sleep(0.5)
    return codes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tuning.distributed",
        description="Run a distributed search on this machine: a chief and N workers, each a "
        "`python -m tuning.search` process with keras_tuner's environment variables.\n\n"
        + __doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python -m tuning.distributed --workers 2 -- --tuner random --max-trials 6 "
        "--model lstm --transform mfcc --epochs 3",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--ip", default="127.0.0.1", help="address of the chief (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port of the chief (default: a free one)")
    parser.add_argument("search_args", nargs=argparse.REMAINDER,
                        help="flags of python -m tuning.search, after --")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    search_argv = list(args.search_args)
    if search_argv[:1] == ["--"]:
        search_argv = search_argv[1:]
    project = project_dir_from_args(search_parser().parse_args(search_argv))
    log_dir = project / "logs"
    print(f"chief + {args.workers} workers; logs in {log_dir}/", flush=True)
    codes = launch_local(search_argv, args.workers, ip=args.ip, port=args.port, log_dir=log_dir)
    for tuner_id, code in codes.items():
        print(f"  {tuner_id}: exit status {code}")
    if codes.get(CHIEF) == 0:
        print((log_dir / f"{CHIEF}.log").read_text()[-4000:])
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
