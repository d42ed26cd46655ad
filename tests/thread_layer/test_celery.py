"""Scale-out: executions queued on a real Redis broker run on a real Celery worker process
(`python -m app worker`), and its live log reaches the web process's Socket.IO clients through
the Redis message queue."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, wait_until
from tests.factories import batch_files, cancer_frame, cancer_project
from tests.logging_layer.test_live_logs import Watcher, _login
from tests.processes import stop_process_group

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_url(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: `apt-get install redis-server`.")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    wait_until(answers, timeout=20, message="redis-server")
    yield f"redis://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)
    # The test app's Socket.IO Redis listener thread (python-socketio's, in this process) has
    # no way to stop: with its server gone it would log a reconnect error every few seconds
    # until the test session exits, after pytest's summary. No test reads that logger.
    logging.getLogger("socketio.server").setLevel(logging.CRITICAL)


@pytest.fixture
def app_config(app_config, redis_url):
    return {**app_config, "CELERY_BROKER_URL": f"{redis_url}/0",
            "SOCKETIO_MESSAGE_QUEUE": f"{redis_url}/1"}


@pytest.fixture
def worker(app_config, tmp_path):
    env = {**os.environ, **{k: str(v) for k, v in app_config.items()
                            if k in ("DATA_DIR", "INSTANCE_DIR", "CELERY_BROKER_URL",
                                     "SOCKETIO_MESSAGE_QUEUE", "HEARTBEAT_SECONDS")},
           "LOG_LEVEL": "WARNING"}
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "app", "worker"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield proc
    stop_process_group(proc)
    log.close()


def test_a_worker_runs_the_training_and_its_log_reaches_the_browser(live_server, worker,
                                                                    tmp_path):
    http, cookies = _login(live_server.url)
    api = f"{live_server.url}/api/v1"
    project = http.post(f"{api}/projects", json=cancer_project(), timeout=30).json()
    files = [("files", (n, d, "text/csv")) for n, d in batch_files(cancer_frame(), "cancer", 2)]
    assert http.post(f"{api}/projects/{project['id']}/files",
                     params={"path": "training_batch_files/"}, files=files,
                     timeout=60).status_code == 201
    watcher = Watcher(live_server.url, cookies)
    watcher.join(project["id"])
    try:
        execution = http.post(f"{api}/projects/{project['id']}/executions",
                              json={"kind": "train"}, timeout=30).json()
        url = f"{api}/projects/{project['id']}/executions/{execution['id']}"
        done = wait_until(
            lambda: (lambda b: b if b["status"] not in ("queued", "running") else None)(
                http.get(url, timeout=10).json()),
            timeout=240, interval=0.5,
            message=f"the worker to finish (log: {tmp_path / 'worker.log'})")
        assert done["status"] == "succeeded", (tmp_path / "worker.log").read_text()[-3000:]
        assert watcher.finished.wait(30)
        logs = http.get(f"{url}/logs", timeout=10).json()["items"]
        # the lines written by the worker process arrived through Redis, in order
        assert watcher.seqs(execution["id"]) == [line["seq"] for line in logs]
        started = next(line for line in watcher.lines if line["message"].startswith("Started on"))
        assert started["stage"] == "validating"
    finally:
        watcher.close()
    app_store = requests.get(f"{api}/projects/{project['id']}", timeout=10,
                             cookies=http.cookies).json()
    assert app_store["active_version"] == 1
