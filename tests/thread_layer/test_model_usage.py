"""Real-time prediction counters kept in the database: every web process's counts add up, a
restart keeps them, deleted versions' counts do not come back, and the latency percentiles of
the merged histograms stay close to the true ones.

Here each :class:`ModelServer` stands for one web process (each has its own instance name and
memory, and they share only the database, as processes do); the counting is driven through the
server's own ``_usage_of`` so that no model has to be trained. The test below it runs the real
thing: two ``python -m app`` servers, a trained model, a graceful restart.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from entity.database import Database
from entity.model_version import ModelVersion
from tests.conftest import free_port, wait_until
from tests.factories import batch_files, cancer_frame
from tests.thread_layer.test_recovery import admin_with_project, start_server
from thread_layer.model_server import LATENCY_HOURS, ModelServer, Usage, summarize


@pytest.fixture
def db(tmp_path):
    database = Database.from_url(f"sqlite:///{tmp_path / 'trainyard.db'}")
    database.ensure_indexes()
    for number in (1, 2):
        database.model_versions.add(ModelVersion(project_id="p", version=number,
                                                 execution_id=f"e{number}", algorithm="rf"))
    yield database
    database.close()


def serve(db: Database, requests_: int, errors: int = 0, version: int = 1,
          server: ModelServer | None = None) -> ModelServer:
    server = server or ModelServer(db, resolver=None, flush_seconds=3600)
    for _ in range(requests_):
        server._usage_of("p", version).record(rows=2, milliseconds=10.0)
    for _ in range(errors):
        server._usage_of("p", version).record(rows=0, milliseconds=None)
    return server


def test_counts_of_every_process_add_up_and_survive_a_restart(db):
    first, second = serve(db, 3, errors=1), serve(db, 2, version=2)
    serve(db, 4, server=second)
    # Each sees its own counts at once, the other's once they were written.
    assert first.usage("p")[1]["requests"] == 4 and 2 not in first.usage("p")
    first.flush()
    second.flush()
    for server in (first, second):
        usage = server.usage("p")
        assert usage[1] == {"requests": 8, "rows": 14, "errors": 1, "records_dropped": 0,
                            "latency_ms": {"p50": pytest.approx(10, rel=0.03),
                                           "p95": pytest.approx(10, rel=0.03),
                                           "p99": pytest.approx(10, rel=0.03)}}
        assert usage[2]["requests"] == 2

    first.close()  # a graceful stop writes what is left
    restarted = ModelServer(db, resolver=None)
    assert restarted.usage("p")[1]["requests"] == 8
    serve(db, 1, server=restarted)
    assert restarted.usage("p")[1]["requests"] == 9


def test_a_deleted_version_does_not_come_back_from_another_process(db):
    deleting, other = serve(db, 2), serve(db, 3)
    deleting.flush()
    other.flush()
    serve(db, 1, server=other)  # counted after its last write

    db.model_versions.delete("p", 1)
    deleting.forget("p", 1)
    assert db.prediction_usage.for_project("p") == []
    assert 1 not in other.usage("p")  # hidden at once: the version is gone
    other.flush()  # its next write finds its document deleted and drops the counts
    assert db.prediction_usage.for_project("p") == []
    assert other._usage.get("p", {}) == {}

    # Counts of a version deleted before a process first wrote them are dropped too.
    late = serve(db, 1)
    late._usage_of("p", 1).record(rows=1, milliseconds=1.0)
    late.flush()
    assert db.prediction_usage.for_project("p") == []


def test_a_database_away_keeps_the_counts_for_the_next_write(db, monkeypatch):
    server = serve(db, 2)

    def down(*args, **kwargs):
        raise ConnectionError("database away")

    monkeypatch.setattr(db.prediction_usage, "save", down)
    server.flush()
    monkeypatch.undo()
    server.flush()
    assert db.prediction_usage.for_project("p")[0]["requests"] == 2


def test_percentiles_of_merged_histograms_are_close_to_the_true_ones():
    rng = np.random.default_rng(7)
    latencies = rng.lognormal(mean=1.5, sigma=0.8, size=20000)  # ms: 1 to 100 and beyond
    now = time.time()
    parts = [Usage(), Usage(), Usage()]
    for i, ms in enumerate(latencies):
        parts[i % 3].record(rows=1, milliseconds=float(ms), now=now)
    merged = summarize([p.snapshot(now=now) for p in parts], now=now)
    assert merged["requests"] == 20000
    for q in (50, 95, 99):
        assert merged["latency_ms"][f"p{q}"] == pytest.approx(np.percentile(latencies, q),
                                                             rel=0.03)

    # Latencies older than the window no longer count; the totals still do.
    old = Usage()
    for _ in range(100):
        old.record(rows=1, milliseconds=5000.0, now=now - LATENCY_HOURS * 3600)
    recent = Usage()
    recent.record(rows=1, milliseconds=2.0, now=now)
    both = summarize([old.snapshot(now=now), recent.snapshot(now=now)], now=now)
    assert both["requests"] == 101 and both["latency_ms"]["p99"] == pytest.approx(2, rel=0.03)
    assert old.snapshot(now=now)["latency_hours"] == {}


@pytest.mark.slow
def test_two_web_servers_count_together_and_a_restart_keeps_the_counts(tmp_path, monkeypatch):
    """Two ``python -m app`` processes on one database (SQLite here; MongoDB in a real
    deployment), as behind a load balancer."""
    monkeypatch.setenv("USAGE_FLUSH_SECONDS", "3600")  # only the graceful stop writes
    ports = free_port(), free_port()
    first = start_server(tmp_path, ports[0])
    second = None
    try:
        http, token, project = admin_with_project(ports[0])
        headers = {"X-CSRFToken": token}
        api = f"http://127.0.0.1:{ports[0]}/api/v1/projects/{project['id']}"
        files = [("files", (n, d, "text/csv")) for n, d in batch_files(cancer_frame(), "cancer", 2)]
        http.post(f"{api}/files", params={"path": "training_batch_files/"}, files=files,
                  headers=headers, timeout=60).raise_for_status()
        execution = http.post(f"{api}/executions", json={"kind": "train"}, headers=headers,
                              timeout=30).json()
        done = wait_until(lambda: (lambda b: b if b["status"] not in ("queued", "running")
                                   else None)(http.get(f"{api}/executions/{execution['id']}",
                                                       timeout=10).json()),
                          timeout=180, message="training")
        assert done["status"] == "succeeded", done
        rows = cancer_frame().drop(columns=["diagnosis"]).head(3).to_dict(orient="records")

        def predict(port: int, times: int) -> None:
            url = f"http://127.0.0.1:{port}/api/v1/projects/{project['id']}/predict"
            for _ in range(times):
                answer = http.post(url, json={"records": rows}, headers=headers, timeout=60)
                assert answer.status_code == 200, answer.text

        def usage(port: int) -> dict:
            url = f"http://127.0.0.1:{port}/api/v1/projects/{project['id']}/usage"
            return http.get(url, timeout=30).json()["versions"].get("1", {})

        predict(ports[0], 4)
        os.killpg(first.pid, signal.SIGTERM)  # a graceful stop: the counts are written
        first.wait(timeout=60)
        monkeypatch.setenv("USAGE_FLUSH_SECONDS", "1")
        first = start_server(tmp_path, ports[0])
        assert usage(ports[0])["requests"] == 4

        second = start_server(tmp_path, ports[1])  # the session cookie is valid on both
        predict(ports[1], 3)
        assert usage(ports[1])["requests"] == 7  # its own at once
        # the other server's within its write interval
        wait_until(lambda: usage(ports[0]).get("requests") == 7, timeout=30,
                   message="the second server's counts")
        counted = usage(ports[0])
        assert counted["rows"] == 21 and counted["errors"] == 0 and counted["latency_ms"]["p99"]
    finally:
        for server in (first, second):
            if server is not None and server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)  # our own process groups, by their id
                server.wait(timeout=60)
