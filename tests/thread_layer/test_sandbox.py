"""Hostile executions in the sandbox: each is stopped or denied with its own reason, the web
process keeps answering meanwhile, and the project's next execution runs. Real processes, a
real bwrap (or the fallback path when it is turned off), a real TCP server, a real HTTP server."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
import requests

from tests.factories import cancer_project
from tests.thread_layer.hostile_kind import HOSTILE
from thread_layer import sandbox
from thread_layer.kinds import register, unregister

pytestmark = pytest.mark.slow

LOW = {"EXECUTION_MEMORY_MB": 200, "EXECUTION_ADDRESS_SPACE_MB": 1536,
       "EXECUTION_WALL_SECONDS": 3, "EXECUTION_CPU_SECONDS": 30, "EXECUTION_PROCESSES": 32,
       "EXECUTION_WRITTEN_MB": 50, "EXECUTION_OPEN_FILES": 256}


@pytest.fixture
def app_config(app_config):
    return {**app_config, **LOW}


@pytest.fixture
def hostile_kind():
    register(HOSTILE)
    yield HOSTILE
    unregister(HOSTILE.name)


class Pinger:
    """Asks the live server's /healthz every 100 ms; keeps every failure."""

    def __init__(self, url: str):
        self.url, self.failures, self.count = url, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.1):
            try:
                response = requests.get(self.url, timeout=2)
                if response.status_code != 200:
                    self.failures.append(response.status_code)
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
            self.count += 1

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


class TcpServer:
    """A real TCP server on the host's 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def run_and_check_free(api, project, live_server, options: dict) -> dict:
    with Pinger(f"{live_server.url}/healthz") as pinger:
        started = api.start(project["id"], "hostile", **options)
        assert started.status_code == 202, started.get_json()
        done = api.wait_final(project["id"], started.get_json()["id"], timeout=60)
    assert pinger.count >= 3 and pinger.failures == [], pinger.failures
    # the project is free again: its next execution runs
    after = api.start(project["id"], "hostile", payload="quiet")
    assert after.status_code == 202, after.get_json()
    assert api.wait_final(project["id"], after.get_json()["id"], timeout=60)["status"] == \
        "succeeded"
    return done


REASONS = {
    "memory": "used more than 200 MB of memory while running the memory payload",
    "fork": "started more than 32 processes or threads",
    "loop": "ran longer than 3 s while running the loop payload",
    "write": "wrote more than 50 MB",
    "files": "wrote more than 50 MB",
}


@pytest.mark.parametrize("payload", sorted(REASONS))
def test_a_hostile_execution_is_stopped_with_its_reason(payload, hostile_kind, api,
                                                        live_server):
    project = api.create_project(cancer_project())
    done = run_and_check_free(api, project, live_server, {"payload": payload})
    assert done["status"] == "failed", done
    assert REASONS[payload] in done["error"], done["error"]
    assert done["error"].startswith("Stopped: ") and "limit" in done["error"]
    logs = api.get(f"/projects/{project['id']}/executions/{done['id']}/logs").get_json()
    assert any(line["message"] == done["error"] for line in logs["items"])
    usage = done["usage"]
    assert usage["wall_seconds"] > 0 and "peak_memory_mb" in usage
    assert done["limits"]["memory_mb"] == 200
    if payload == "memory":
        assert usage["peak_memory_mb"] > 150 or "address" in done["error"]


def test_the_network_is_not_reachable(hostile_kind, api, live_server):
    server = TcpServer()
    try:
        project = api.create_project(cancer_project())
        done = run_and_check_free(api, project, live_server,
                                  {"payload": "connect", "port": server.port})
    finally:
        server.close()
    assert done["status"] == "failed", done
    assert "no network" in done["error"], done["error"]
    assert server.accepted == 0


def test_secrets_and_files_outside_scratch_are_out_of_reach(hostile_kind, api, live_server,
                                                            app):
    instance = Path(app.config["INSTANCE_DIR"])
    secrets = sorted(str(p) for p in instance.iterdir() if p.is_file())
    assert secrets, "the instance folder holds generated secrets"
    database = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    outside = Path(app.config["DATA_DIR"]) / "escaped.txt"
    project = api.create_project(cancer_project())
    done = run_and_check_free(api, project, live_server, {
        "payload": "secrets", "paths": [*secrets, database, "/etc/shadow"],
        "outside": str(outside)})
    assert done["status"] == "succeeded", done
    result = done["result"]
    for path in [*secrets, database, "/etc/shadow"]:
        assert result[path].startswith("denied"), (path, result[path])
    assert result["write"].startswith("denied") and not outside.exists()
    assert not [name for name in result["environment"] if "SECRET" in name or "KEY" in name]


def test_the_isolation_report_on_this_machine():
    isolated = sandbox.detect("auto", fresh=True)
    assert isolated.network == "bwrap" and isolated.files == "bwrap"
    assert isolated.user and isolated.isolated and isolated.refusal() is None
    fallback = sandbox.detect("strict", bwrap=False, fresh=True)
    assert fallback.network == "unshare" and fallback.files is None
    assert not fallback.isolated
    assert "bwrap turned off" in " ".join(fallback.notes)
    assert "SANDBOX=strict" in fallback.refusal()
    assert "files: NOT isolated" in fallback.summary()
    off = sandbox.detect("off")
    assert not off.active and "off" in off.summary()


def _own_app(config: dict):
    from app import create_app
    from tests.conftest import ApiClient, Auth

    app = create_app(config)
    client = app.test_client()
    assert Auth(client).setup_admin().status_code == 302
    client.csrf_token = Auth(client).csrf("/")
    return app, ApiClient(client)


def _close(app):
    app.extensions["trainyard"].runner.shutdown()
    app.extensions["housekeeping"].shutdown()
    app.extensions["trainyard"].db.close()


def test_strict_refuses_to_run_without_isolation(hostile_kind, app_config):
    app, api = _own_app({**app_config, "SANDBOX": "strict", "SANDBOX_BWRAP": False})
    try:
        project = api.create_project(cancer_project())
        started = api.start(project["id"], "hostile", payload="quiet").get_json()
        from tests.waiting import wait_until

        waiting = wait_until(lambda: api.execution(project["id"], started["id"])
                             .get("waiting_reason"), timeout=30, message="a waiting reason")
        assert "SANDBOX=strict" in waiting and "files" in waiting
        assert api.execution(project["id"], started["id"])["status"] == "queued"
        page = api.client.get("/admin/sandbox").get_data(as_text=True)
        assert "NOT isolated" in page and "strict" in page
    finally:
        _close(app)


def test_the_fallback_path_runs_without_network(hostile_kind, app_config):
    server = TcpServer()
    app, api = _own_app({**app_config, "SANDBOX_BWRAP": False})
    try:
        report = app.extensions["trainyard"].runner.sandbox_report
        assert report.bwrap is None and report.network == "unshare"
        project = api.create_project(cancer_project())
        started = api.start(project["id"], "hostile", payload="connect", port=server.port)
        done = api.wait_final(project["id"], started.get_json()["id"], timeout=60)
        assert done["status"] == "failed" and "no network" in done["error"], done
        assert server.accepted == 0
        started = api.start(project["id"], "hostile", payload="loop")
        done = api.wait_final(project["id"], started.get_json()["id"], timeout=60)
        assert "ran longer than 3 s" in done["error"], done
    finally:
        server.close()
        _close(app)


def test_admission_control_keeps_an_execution_queued_until_memory_is_free(hostile_kind,
                                                                         app_config):
    app, api = _own_app({**app_config, "EXECUTION_MEMORY_BUDGET_MB": 300})
    try:
        first = api.create_project(cancer_project())
        second = api.create_project({**cancer_project(), "name": "Second project"})
        running = api.start(first["id"], "hostile", payload="loop").get_json()
        from tests.waiting import wait_until

        wait_until(lambda: api.execution(first["id"], running["id"])["status"] == "running",
                   timeout=30, message="the first to run")
        queued = api.start(second["id"], "hostile", payload="quiet").get_json()
        reason = wait_until(lambda: api.execution(second["id"], queued["id"])
                            .get("waiting_reason"), timeout=30, message="a waiting reason")
        assert "Waiting for memory" in reason and "300 MB" in reason
        assert api.execution(second["id"], queued["id"])["status"] == "queued"
        assert api.wait_final(second["id"], queued["id"], timeout=60)["status"] == "succeeded"
    finally:
        _close(app)


def test_only_administrators_set_a_projects_limits_up_to_the_ceiling(api, app, auth):
    project = api.create_project(cancer_project())
    shown = api.get(f"/projects/{project['id']}/limits").get_json()
    assert shown["effective"]["memory_mb"] == 200 and shown["overrides"] == {}
    too_high = api.client.put(f"/api/v1/projects/{project['id']}/limits",
                              json={"memory_mb": 10 ** 6}, headers=api._headers())
    assert too_high.status_code == 422
    assert "memory_mb" in too_high.get_json()["error"]["details"], too_high.get_json()
    assert "MAX_EXECUTION_MEMORY_MB" in str(too_high.get_json())
    changed = api.client.put(f"/api/v1/projects/{project['id']}/limits",
                             json={"memory_mb": 300, "wall_seconds": 5},
                             headers=api._headers())
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["effective"]["memory_mb"] == 300
    runner = app.extensions["trainyard"].runner
    with app.app_context():
        assert runner.limits_of(runner.db.projects.get(project["id"])).wall_seconds == 5


def test_the_execution_page_shows_what_it_used(hostile_kind, api, admin_client):
    project = api.create_project(cancer_project())
    started = api.start(project["id"], "hostile", payload="quiet").get_json()
    done = api.wait_final(project["id"], started["id"], timeout=60)
    assert done["status"] == "succeeded" and done["usage"]["wall_seconds"] > 0
    page = admin_client.get(f"/projects/{project['slug']}/executions/{done['id']}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="execution-usage"' in html and "of 200 MB" in html


def test_a_real_csv_above_the_memory_limit_fails_with_the_memory_reason(api, live_server):
    import pandas as pd

    from tests.factories import cancer_frame, csv_bytes

    project = api.create_project(cancer_project())
    assert api.client.put(f"/api/v1/projects/{project['id']}/limits",
                          json={"memory_mb": 260, "wall_seconds": 120},
                          headers=api._headers()).status_code == 200
    big = pd.concat([cancer_frame()] * 400, ignore_index=True)  # 227,600 rows, ~45 MB
    upload = api.upload(project["id"], "training_batch_files/",
                        [("cancer_20260101_120000.csv", csv_bytes(big))])
    assert upload.status_code == 201, upload.get_json()
    with Pinger(f"{live_server.url}/healthz") as pinger:
        started = api.start(project["id"], "train").get_json()
        done = api.wait_final(project["id"], started["id"], timeout=120)
    assert pinger.failures == []
    assert done["status"] == "failed", done
    assert "of memory" in done["error"] and "memory" in done["error"], done["error"]
    assert "(memory_mb = 260 MB)" in done["error"] or "address_space_mb" in done["error"]
    assert api.get(f"/projects/{project['id']}").get_json()["active_execution_id"] is None
