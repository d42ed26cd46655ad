"""The monitoring job and the alerts: numbers on records inserted here, one process computing
per turn, incidents opened once and mailed once to a real SMTP server (aiosmtpd), reminders,
closing when the condition clears, and signed webhook posts to a real local HTTP server with a
retry after a 500."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from entity.base import from_iso
from entity.user import User
from tests.conftest import free_port, wait_until
from tests.monitoring_world import TRAINING_ACCURACY, insert_records, make_project, records
from thread_layer.alerts import Alerts
from thread_layer.monitoring import Monitor

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def app_config(app_config, smtp_server):
    return {**app_config, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_server.port,
            "MAIL_DEFAULT_SENDER": "trainyard@example.com"}


@pytest.fixture
def platform(app):
    return app.extensions["trainyard"]


@pytest.fixture
def owner(platform):
    return platform.db.users.add(User(email="owner@example.com", name="Owner",
                                      password_hash="x", role="member"))


@pytest.fixture
def project(platform, owner):
    return make_project(platform.db, platform.resolver, owner)


def monitor_of(platform, **alerts) -> Monitor:
    return Monitor(platform.db, platform.resolver, every_seconds=600,
                   alerts=Alerts(platform.db, platform.notifier, platform.box, **alerts))


def window_point(platform, project) -> dict:
    return platform.db.monitor_points.latest(project.id, 1, "window")


def test_known_drift_and_known_labels_give_known_numbers(platform, project):
    start = NOW - timedelta(hours=3)
    insert_records(platform.db, records(project, 400, start=start, labeled=200, accuracy=0.75))
    insert_records(platform.db, records(project, 400, start=start + timedelta(hours=1),
                                        shift=2.0, seed=2))
    monitor_of(platform).compute(NOW)

    point = window_point(platform, project)
    assert point["volume"]["predictions"] == 800 and point["volume"]["labeled"] == 200
    assert point["volume"]["source_realtime"] == 800
    assert point["metrics"]["accuracy"] == pytest.approx(0.75)
    assert point["training_metrics"]["accuracy"] == TRAINING_ACCURACY
    features = point["drift"]["features"]
    assert features["x"]["psi"] > 0.25 and features["x"]["status"] == "drift"
    assert features["x"]["test"] == "ks" and features["x"]["p_value"] < 0.001
    assert features["c"]["psi"] < 0.1 and features["c"]["test"] == "chi2"
    assert features["c"]["p_value"] > 0.001  # drawn from the training shares
    assert point["drift"]["drifted"] == ["x"]
    assert point["drift"]["prediction"]["psi"] > 0.1  # most shifted rows predict "yes"
    assert point["latency_ms"]["p50"] == pytest.approx(5.5, rel=0.1)
    assert set(point["latency_ms"]) == {"p50", "p95", "p99"}

    day = platform.db.monitor_points.list(project.id, granularity="day")
    assert [p["day"] for p in day] == ["2026-12-04"]
    assert day[0]["volume"]["predictions"] == 800


def test_records_outside_the_window_and_of_other_projects_do_not_count(platform, project,
                                                                         owner):
    other = make_project(platform.db, platform.resolver, owner, name="Other")
    insert_records(platform.db, records(project, 60, start=NOW - timedelta(hours=30)))
    insert_records(platform.db, records(other, 70, start=NOW - timedelta(hours=2)))
    insert_records(platform.db, records(project, 80, start=NOW - timedelta(hours=2)))
    monitor_of(platform).compute(NOW)
    assert window_point(platform, project)["volume"]["predictions"] == 80
    days = {p["day"]: p["volume"]["predictions"]
            for p in platform.db.monitor_points.list(project.id, granularity="day")}
    assert days == {"2026-12-03": 60, "2026-12-04": 80}


def test_only_one_of_several_monitors_computes_each_turn(platform, project):
    insert_records(platform.db, records(project, 50, start=NOW - timedelta(hours=1)))
    monitors = [monitor_of(platform) for _ in range(4)]
    results, barrier = [], threading.Barrier(4)

    def run(monitor):
        barrier.wait()
        results.append(monitor.run_once(NOW))

    threads = [threading.Thread(target=run, args=(m,)) for m in monitors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(r is not None for r in results) == 1
    assert monitors[0].run_once(NOW + timedelta(minutes=5)) is None  # the turn is taken
    assert monitors[1].run_once(NOW + timedelta(minutes=11)) is not None


def _mails(smtp_server, subject_part: str) -> list:
    return [m for m in smtp_server.messages if subject_part in m["subject"]]


def drift_incident(platform, project):
    return next(i for i in platform.db.incidents.list(project.id)[0]
                if i.kind == "feature_drift")


def test_drift_opens_one_incident_mails_once_reminds_and_closes(platform, project,
                                                                 smtp_server):
    project.settings["monitoring_window_hours"] = 48
    platform.db.projects.save(project)
    monitor = monitor_of(platform)
    insert_records(platform.db, records(project, 300, start=NOW - timedelta(hours=2),
                                        shift=2.5))
    monitor.compute(NOW)
    monitor.compute(NOW + timedelta(minutes=15))  # still drifting: no second incident or mail
    incidents, total = platform.db.incidents.list(project.id)
    assert total == 1 and incidents[0].status == "open" and incidents[0].kind == "feature_drift"
    assert "x" in incidents[0].summary and incidents[0].value > 0.25
    wait_until(lambda: _mails(smtp_server, "incident opened"), timeout=10, message="the mail")
    opened = _mails(smtp_server, "incident opened")
    assert len(opened) == 1
    assert sorted(opened[0]["to"]) == ["owner@example.com", "team@example.com"]
    audit, _ = platform.db.audit.search(action="incident.open")
    assert len(audit) == 1 and audit[0].target == project.slug

    monitor.compute(NOW + timedelta(hours=24, minutes=1))  # the drifted rows are still in
    assert len(_mails(smtp_server, "incident still open: Drift")) == 1
    assert drift_incident(platform, project).reminders == 1
    # and a day without traffic after some was seen is an incident of its own
    assert len(_mails(smtp_server, "incident opened: No predictions")) == 1

    # traffic from the training distribution pushes the drifted rows out of the window
    later = NOW + timedelta(hours=47)
    insert_records(platform.db, records(project, 300, start=later - timedelta(hours=2),
                                        seed=5))
    monitor.compute(later)
    incident = drift_incident(platform, project)
    assert incident.status == "closed" and incident.closed_at == later
    assert len(_mails(smtp_server, "incident closed: Drift")) == 1
    assert len(_mails(smtp_server, "incident opened: Drift")) == 1
    assert platform.db.audit.search(action="incident.close")[1] == 2  # no traffic closed too


def test_metric_drop_error_rate_and_missing_traffic(platform, project):
    monitor = monitor_of(platform)
    insert_records(platform.db, records(project, 100, start=NOW - timedelta(hours=1),
                                        labeled=100, accuracy=0.6))
    platform.db.prediction_usage.save(project.id, 1, "web-1", {
        "requests": 100, "rows": 100, "errors": 10, "latency_hours": {},
        "request_hours": {NOW.strftime("%Y-%m-%dT%H"): [100, 10]}}, first=True)
    monitor.compute(NOW)
    point = window_point(platform, project)
    assert point["requests"] == {"requests": 100, "errors": 10, "error_rate": 0.1}
    kinds = sorted(i.kind for i in platform.db.incidents.list(project.id, status="open")[0])
    assert kinds == ["error_rate", "metric_drop"]

    monitor.compute(NOW + timedelta(hours=25))  # no traffic since, and the old rows are out
    kinds = {i.kind: i for i in platform.db.incidents.list(project.id, status="open")[0]}
    assert "no_traffic" in kinds and kinds["no_traffic"].value >= 24
    # too few labeled rows and requests to judge: those incidents stay as they were
    assert {"error_rate", "metric_drop"} <= set(kinds)


def test_an_incident_of_a_rule_asking_to_retrain_starts_one(platform, project):
    started = []
    rule = platform.db.alert_rules.for_project(project.id, lambda: [])
    assert rule == []
    from entity.monitoring import AlertRule

    platform.db.alert_rules.add(AlertRule(project_id=project.id, kind="feature_drift",
                                          threshold=0.2, retrain=True))
    monitor = monitor_of(platform, retrain=lambda p, i: started.append(i.id) or {
        "started": True, "execution_id": "x1"})
    insert_records(platform.db, records(project, 200, start=NOW - timedelta(hours=1),
                                        shift=3))
    monitor.compute(NOW)
    monitor.compute(NOW + timedelta(minutes=20))
    incident = platform.db.incidents.list(project.id)[0][0]
    assert started == [incident.id] and incident.retraining["execution_id"] == "x1"


class Receiver:
    """A real HTTP server on 127.0.0.1 that answers each POST with the next status given."""

    def __init__(self, statuses):
        self.statuses, self.received = list(statuses), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args):
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver([500])
    yield server
    server.stop()


def test_webhook_posts_a_signed_body_and_retries_after_a_500(platform, project, receiver):
    from entity.webhook import Webhook

    secret = "s3cret-for-the-test"
    platform.db.webhooks.put(Webhook(project_id=project.id, url=receiver.url,
                                     secret=platform.box.encrypt({"secret": secret})))
    alerts = Alerts(platform.db, platform.notifier, platform.box, backoff=(30, 60))
    monitor = Monitor(platform.db, platform.resolver, alerts=alerts)
    insert_records(platform.db, records(project, 200, start=NOW - timedelta(hours=1),
                                        shift=3))
    monitor.compute(NOW)
    assert not receiver.received  # nothing is posted by the computation itself

    first = alerts.deliver_due(NOW)
    assert [d.status for d in first] == ["pending"]
    assert alerts.deliver_due(NOW + timedelta(seconds=10)) == []  # not due before the backoff
    second = alerts.deliver_due(NOW + timedelta(seconds=31))
    assert [d.status for d in second] == ["delivered"]

    assert len(receiver.received) == 2
    headers, body = receiver.received[1]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Trainyard-Signature"] == expected
    assert headers["X-Trainyard-Event"] == "incident.opened"
    sent = json.loads(body)
    assert sent["event"] == "incident.opened" and sent["project"]["id"] == project.id
    deliveries, _ = platform.db.webhook_deliveries.list(project.id)
    attempts = deliveries[0].attempts
    assert [a["status_code"] for a in attempts] == [500, 200]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert from_iso(attempts[1]["at"]) == NOW + timedelta(seconds=31)
    assert secret not in json.dumps(platform.db.store.collection("webhooks").find())


def test_the_real_retraining_hook_is_asked_with_the_alert_trigger(platform, project):
    """thread_layer.triggers queues a training whose trigger names the incident, and the
    incident records it."""
    from entity.monitoring import AlertRule
    from thread_layer.alerts import retrainer

    platform.db.alert_rules.for_project(project.id, lambda: [
        AlertRule(project_id=project.id, kind="feature_drift", threshold=0.2, retrain=True)])
    monitor = monitor_of(platform, retrain=retrainer(platform.db, platform.runner))
    insert_records(platform.db, records(project, 200, start=NOW - timedelta(hours=1),
                                        shift=3))
    monitor.compute(NOW)
    incident = platform.db.incidents.list(project.id)[0][0]
    assert incident.retraining["started"] is True
    execution = platform.db.executions.get(incident.retraining["execution_id"])
    assert execution.kind == "train" and execution.trigger["by"] == "alert"
    assert execution.trigger["incident_id"] == incident.id
