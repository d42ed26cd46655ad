"""Stopping the server during a training and starting it again: the execution ends up
``interrupted`` with a log line, and the project is free. The server is the real ``python -m app``
(gunicorn) in its own process group, killed hard so that nothing gets to clean up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import ADMIN, free_port, wait_until
from tests.factories import batch_files, cancer_project, cancer_rows

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def start_server(tmp_path: Path, port: int, **settings: str) -> subprocess.Popen:
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"),
           "INSTANCE_DIR": str(tmp_path / "instance"), "TRAINYARD_PORT": str(port),
           "TRAINYARD_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING", "HEARTBEAT_SECONDS": "1",
           **settings}
    log = open(tmp_path / f"server-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)

    def healthy():
        if proc.poll() is not None:
            raise AssertionError((tmp_path / f"server-{port}.log").read_text())
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok
        except requests.RequestException:  # not listening yet, or still loading the app
            return False
    wait_until(healthy, timeout=60, message="the server to start")
    return proc


def admin_with_project(port: int) -> tuple[requests.Session, str, dict]:
    """Set up the server on ``port``: (the admin's session, its CSRF token, a new project)."""
    base = f"http://127.0.0.1:{port}/api/v1"
    session = requests.Session()
    token = session.post(f"{base}/setup", json=ADMIN, timeout=30).json()["csrf_token"]
    project = session.post(f"{base}/projects", json=cancer_project(),
                           headers={"X-CSRFToken": token}, timeout=30).json()
    return session, token, project


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # our own process group, by its id
    proc.wait(timeout=10)


def test_a_training_cut_by_a_crash_is_interrupted_after_restart(tmp_path):
    port = free_port()
    server = start_server(tmp_path, port)
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        http, token, project = admin_with_project(port)
        headers = {"X-CSRFToken": token}
        big = cancer_rows(60000, seed=1)
        files = [("files", (n, d, "text/csv")) for n, d in batch_files(big, "cancer", 2)]
        r = http.post(f"{base}/projects/{project['id']}/files",
                      params={"path": "training_batch_files/"}, files=files, headers=headers,
                      timeout=60)
        assert r.status_code == 201, r.text
        execution = http.post(f"{base}/projects/{project['id']}/executions",
                              json={"kind": "train"}, headers=headers, timeout=30).json()
        url = f"{base}/projects/{project['id']}/executions/{execution['id']}"
        wait_until(lambda: http.get(url, timeout=5).json()["stage"] in (
            "loading", "preprocessing", "training"), timeout=60, message="training to be busy")
    finally:
        kill_group(server)

    port = free_port()
    server = start_server(tmp_path, port)
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        http = requests.Session()
        r = http.post(f"{base}/session", json={"email": ADMIN["email"],
                                               "password": ADMIN["password"]}, timeout=30)
        assert r.status_code == 200, r.text
        url = f"{base}/projects/{project['id']}/executions/{execution['id']}"
        after = http.get(url, timeout=10).json()
        assert after["status"] == "interrupted"
        assert "stopped" in after["error"]
        logs = http.get(url + "/logs", timeout=10).json()["items"]
        assert logs[-1]["level"] == "ERROR" and "Interrupted" in logs[-1]["message"]
        assert [line["seq"] for line in logs] == list(range(1, len(logs) + 1))
        assert http.get(f"{base}/projects/{project['id']}",
                        timeout=10).json()["active_execution_id"] is None
        # and the project accepts a new execution at once
        headers = {"X-CSRFToken": r.json()["csrf_token"]}
        again = http.post(f"{base}/projects/{project['id']}/executions", json={"kind": "train"},
                          headers=headers, timeout=30)
        assert again.status_code == 202, again.text
    finally:
        kill_group(server)
