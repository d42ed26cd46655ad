"""Issue 25, deliverable 5: the scale-out mode as a whole, under load and faults.

Set-up, all started by the test on free ports of 127.0.0.1 and stopped by process group: a real
PostgreSQL (``tests/databases.py``, a schema of this test's own), a real redis-server (the
Celery broker and the Socket.IO message queue), 2 web processes (``python -m app``, the same
``DATABASE_URL``, ``DATA_DIR``, ``SECRET_KEY`` and ``SECRETS_KEY``, each its own
``INSTANCE_DIR`` so nothing is shared by accident) and 2 Celery workers
(``python -m app worker --queues train``, 2 executions each).

Load: 20 live-log watchers (real Socket.IO clients, half on each web process), 30 browsing
clients (threads GETting pages and API lists in a loop, half on each) and 4 trainings at once.

Faults, mid-training: one worker's process group is killed with SIGKILL (its executions must
end ``interrupted``, found by the sweepers through the dead pid or the missing heartbeats, or
be redelivered and finish; never lost or stuck), then one web process is killed with SIGKILL
(the other keeps serving, and its watchers keep receiving the workers' lines through Redis).

Results: every execution reaches a final status; every watcher that stayed connected received
exactly the stored log's sequence numbers of its execution (0 lost lines); 0 responses of 500
or more from the surviving process (nor from the killed one before it died), and no request
to the surviving process failed.

Run it alone with ``pytest -m scale``; it is ``slow`` too, so ``make test-fast`` skips it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from entity.database import Database
from entity.store import open_store
from tests import databases
from tests.databases import free_port
from tests.factories import batch_files, cancer_frame, cancer_project
from tests.logging_layer.test_live_logs import FINAL, Watcher, _login
from tests.processes import stop_process_group
from tests.thread_layer import test_celery
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.scale]
ROOT = Path(__file__).resolve().parents[2]
redis_url = test_celery.redis_url  # the fixture: a redis-server on a free port, stopped by PID
postgres_server = databases.postgres_server  # the session's PostgreSQL (marks it `database`)

WATCHERS = 20
BROWSERS = 30
TRAININGS = 4
STALE_AFTER_SECONDS = 5
PAUSE_SECONDS = 0.25  # a browsing client's pause between two requests


class Cluster:
    """The processes of one scale-out deployment on this machine."""

    def __init__(self, tmp_path: Path, database_url: str, redis: str):
        self.tmp_path = tmp_path
        self.env = {
            **os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "data"),
            "SECRET_KEY": secrets.token_hex(32), "SECRETS_KEY": Fernet.generate_key().decode(),
            "CELERY_BROKER_URL": f"{redis}/0", "SOCKETIO_MESSAGE_QUEUE": f"{redis}/1",
            "HEARTBEAT_SECONDS": "1", "STALE_AFTER_SECONDS": str(STALE_AFTER_SECONDS),
            "MAX_CONCURRENT_EXECUTIONS": "2", "LOG_LEVEL": "WARNING",
            "TRAINYARD_HOST": "127.0.0.1"}
        self.started: list[tuple[subprocess.Popen, object]] = []
        self.webs: list[tuple[subprocess.Popen, str]] = []
        self.workers: list[subprocess.Popen] = []

    def _start(self, name: str, args: list[str], **extra: str) -> subprocess.Popen:
        log = open(self.tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        env = {**self.env, "INSTANCE_DIR": str(self.tmp_path / f"instance-{name}"), **extra}
        proc = subprocess.Popen([sys.executable, "-m", "app", *args], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.started.append((proc, log))
        return proc

    def start(self) -> Cluster:
        for i in range(2):
            port = free_port()
            proc = self._start(f"web{i}", [], TRAINYARD_PORT=str(port))
            self.webs.append((proc, f"http://127.0.0.1:{port}"))
        self.workers = [self._start(f"worker{i}", ["worker", "--queues", "train"])
                        for i in range(2)]
        for i, (proc, url) in enumerate(self.webs):
            def healthy(proc=proc, url=url, i=i):
                assert proc.poll() is None, f"web{i} exited: {self.log(f'web{i}')}"
                try:
                    return requests.get(f"{url}/healthz", timeout=5).ok
                except requests.RequestException:  # not listening yet, or busy starting
                    return False
            wait_until(healthy, timeout=90, interval=0.2, message=f"web process {i}")
        return self

    def log(self, name: str) -> str:
        path = self.tmp_path / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        for proc, log in self.started:
            if proc.poll() is None:
                stop_process_group(proc, grace=10)
            log.close()


@pytest.fixture
def cluster(tmp_path, postgres_server, redis_url):
    url, schema = postgres_server.fresh_url()
    running = Cluster(tmp_path, url, redis_url)
    try:
        yield running.start()
    finally:
        running.stop()
        postgres_server.drop(schema)


class Browser(threading.Thread):
    """A client browsing one web process in a loop; records every response's status."""

    def __init__(self, base: str, cookies, paths: list[str], stop: threading.Event):
        super().__init__(daemon=True)
        self.base, self.paths, self.stop = base, paths, stop
        self.http = requests.Session()
        self.http.cookies.update(cookies)
        self.answers: list[tuple[float, int]] = []  # (time, status)
        self.failures: list[tuple[float, str]] = []  # (time, the request's error)

    def run(self):
        i = 0
        while not self.stop.is_set():
            path = self.paths[i % len(self.paths)]
            i += 1
            try:
                status = self.http.get(f"{self.base}{path}", timeout=30).status_code
                self.answers.append((time.monotonic(), status))
            except requests.RequestException as exc:
                self.failures.append((time.monotonic(), f"{path}: {exc!r}"))
                self.stop.wait(0.2)
            self.stop.wait(PAUSE_SECONDS)


def _project(http, api: str, name: str) -> dict:
    project = http.post(f"{api}/projects", json=cancer_project(name), timeout=30)
    assert project.status_code == 201, project.text
    project = project.json()
    files = [("files", (n, d, "text/csv")) for n, d in batch_files(cancer_frame(), "cancer", 2)]
    assert http.post(f"{api}/projects/{project['id']}/files",
                     params={"path": "training_batch_files/"}, files=files,
                     timeout=60).status_code == 201
    return project


def test_two_web_processes_and_two_workers_survive_load_and_kills(cluster):
    (web0, url0), (web1, url1) = cluster.webs
    http, cookies = _login(url0)  # the first admin, signed in through web process 0
    api0, api1 = f"{url0}/api/v1", f"{url1}/api/v1"
    # the session made by one process is good on the other (the same SECRET_KEY)
    assert requests.get(f"{api1}/projects", cookies=http.cookies, timeout=30).status_code == 200
    projects = [_project(http, (api0, api1)[i % 2], f"Scale {i}") for i in range(TRAININGS)]

    stop = threading.Event()
    paths = ["/", "/api/v1/projects"]
    for project in projects:
        paths += [f"/projects/{project['slug']}", f"/api/v1/projects/{project['id']}",
                  f"/api/v1/projects/{project['id']}/executions",
                  f"/api/v1/projects/{project['id']}/files?path=training_batch_files/"]
    browsers = [Browser((url0, url1)[i % 2], http.cookies, paths, stop) for i in range(BROWSERS)]
    watchers: list[tuple[Watcher, str, str]] = []  # (watcher, its web's url, execution id)
    db = Database(open_store(cluster.env["DATABASE_URL"]))
    try:
        for browser in browsers:
            browser.start()
        executions = []
        for project in projects:
            response = http.post(f"{api0}/projects/{project['id']}/executions",
                                 json={"kind": "train"}, timeout=30)
            assert response.status_code == 202, response.text
            executions.append((project, response.json()))
        for i in range(WATCHERS):
            project, execution = executions[i % TRAININGS]
            url = (url0, url1)[(i // TRAININGS) % 2]  # each training watched from both
            watcher = Watcher(url, cookies)
            watcher.join(project["id"], execution["id"], after_seq=0)  # missed lines first
            watchers.append((watcher, url, execution["id"]))

        def status(execution: dict) -> dict:
            return http.get(f"{api0}/projects/{execution['project_id']}/executions/"
                            f"{execution['id']}", timeout=30).json()

        def all_running():
            return all(status(e)["status"] == "running" for _p, e in executions)
        wait_until(all_running, timeout=120, interval=0.3,
                   message=f"4 trainings running on the 2 workers ({cluster.log('worker0')}"
                           f"{cluster.log('worker1')})")
        runners = {e["id"]: db.executions.get(e["id"]).runner["pid"] for _p, e in executions}
        victim = cluster.workers[0]
        killed = [eid for eid, pid in runners.items() if pid == victim.pid]
        assert killed, f"worker 0 ran none of the trainings: {runners}"

        # Fault 1: worker 0 (its whole group: the worker and its executions' processes) dies
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        # Fault 2: web process 1 dies while the other worker's trainings still run
        os.killpg(web1.pid, signal.SIGKILL)
        web1.wait(timeout=30)
        web_killed_at = time.monotonic()
        survivors = [(w, eid) for w, url, eid in watchers if url == url0]
        seen_at_kill = {id(w): len(w.lines) for w, _eid in survivors}

        def every_final():
            bodies = [status(e) for _p, e in executions]
            return bodies if all(b["status"] in FINAL for b in bodies) else None
        finals = wait_until(every_final, timeout=180, interval=0.5,
                            message="every execution to reach a final status "
                                    f"({cluster.log('worker1')})")
        time.sleep(1)  # the browsers keep going a moment after the last state change
        stop.set()
        for browser in browsers:
            browser.join(timeout=60)

        by_id = {b["id"]: b for b in finals}
        for eid in killed:  # interrupted by a sweeper, or redelivered and finished
            assert by_id[eid]["status"] in ("interrupted", "succeeded"), by_id[eid]
        for eid in set(by_id) - set(killed):
            assert by_id[eid]["status"] == "succeeded", (by_id[eid], cluster.log("worker1"))

        # 0 lost lines: each watcher that stayed connected has its execution's stored log
        stored = {}
        for project, execution in executions:
            logs = http.get(f"{api0}/projects/{project['id']}/executions/{execution['id']}/logs",
                            timeout=30).json()["items"]
            stored[execution["id"]] = [line["seq"] for line in logs]
        for watcher, eid in survivors:
            assert watcher.sio.connected
            wait_until(lambda w=watcher, e=eid: w.seqs(e) == stored[e], timeout=20,
                       message=f"watcher of {eid} to have all {len(stored[eid])} lines "
                               f"(has {watcher.seqs(eid)})")
        # the lines the other worker wrote after the web process's death came through Redis
        # to the survivor's sockets (the killed worker's executions may have been marked
        # interrupted before that death: their watchers need not get anything after it)
        running_on = [(w, eid) for w, eid in survivors if eid not in killed]
        assert running_on and all(len(w.lines) > seen_at_kill[id(w)] for w, _eid in running_on)
        assert all(not w.sio.connected for w, url, _eid in watchers if url == url1)

        # the survivor served everything it was asked, before and after the kill; none of its
        # answers (nor the killed process's, before it died) was a server error
        survivor = [b for b in browsers if b.base == url0]
        assert not [f for b in survivor for f in b.failures]
        statuses = [s for b in browsers for _t, s in b.answers]
        assert not [s for s in statuses if s >= 500], sorted(set(statuses))
        after = [s for b in survivor for t, s in b.answers if t > web_killed_at]
        assert len(after) >= len(survivor) and set(after) == {200}, sorted(set(after))
    finally:
        stop.set()
        for watcher, _url, _eid in watchers:
            watcher.close()
        db.close()
