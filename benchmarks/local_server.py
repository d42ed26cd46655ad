"""A Trainyard server of the working tree for the benchmarks that drive one over HTTP
(``ui_under_load.py``, ``pattern_upload.py``): a free port, and ``python -m app`` started on
its own data folder, answered once ``/healthz`` does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, port: int) -> subprocess.Popen:
    """``python -m app`` on ``port`` with its data under ``data`` (its log in server.log),
    in a session of its own so that the caller can stop its whole process group."""
    env = {**os.environ, "DATA_DIR": str(data / "data"), "INSTANCE_DIR": str(data / "instance"),
           "TRAINYARD_PORT": str(port), "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(data / "server.log", "wb"),
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit("the server did not start; see " + str(data / "server.log"))
