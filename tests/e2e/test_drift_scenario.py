"""The end-to-end drift scenario of issue 22, on the breast-cancer data with a real SMTP server
(aiosmtpd): train; serve real-time traffic from the training distribution, then a shifted one;
send feedback labels for it; the drift alert opens an incident, mailed exactly once, whose rule
starts a retraining; the challenger it trains is compared with the active model on the same
labeled rows and promoted only if it is better by the project's margin (retrained on the same
files with the same seeds it is the same model, so it is refused); when traffic is normal
again the incident closes. One clock drives the prediction recorder's stamps, the monitoring
job and the retraining scheduler (the real ones of the app, their threads stopped so that only
the test moves time); the trainings run in the app's real runner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from project_library.challenger import rows_digest
from tests.factories import batch_files, cancer_frame, cancer_project
from tests.waiting import wait_until
from thread_layer.promotion import _better_by

pytestmark = pytest.mark.slow
MEASURES = [c for c in cancer_frame().columns if c not in ("sample_id", "diagnosis")]


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def app_config(app_config, smtp_server):
    return {**app_config, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_server.port,
            "MAIL_DEFAULT_SENDER": "trainyard@example.com", "MONITORING_MINUTES": 10}


def _mails(smtp_server, part: str) -> list:
    return [m for m in smtp_server.messages if part in m["subject"]]


def _predict(api, pid, frame) -> list[str]:
    records = frame.drop(columns=["diagnosis"]).to_dict("records")
    answer = api.post(f"/projects/{pid}/predict", json={"records": records})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["prediction_ids"]


def _recorded(app, pid, ids) -> None:
    db = app.extensions["trainyard"].db
    app.extensions["trainyard"].model_server.recorder.flush()
    wait_until(lambda: len(db.prediction_records.get_many(ids)) == len(ids), timeout=30,
               message="the prediction records")


def test_drift_opens_one_incident_retrains_judges_the_challenger_and_closes(
        app, api, smtp_server):
    platform = app.extensions["trainyard"]
    monitor, scheduler = app.extensions["monitoring"], app.extensions["scheduler"]
    monitor.shutdown()
    scheduler.shutdown()
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    monitor.clock = scheduler.clock = platform.model_server.recorder.clock = clock

    # 1. train (a logistic regression: the loop is what is tested, not the search)
    project = api.create_project(cancer_project(
        algorithms=["LogisticRegression"], recipients=["team@example.com"],
        monitoring_window_hours=1, promotion_margin=0.01))
    pid = project["id"]
    frame = cancer_frame()
    api.upload(pid, "training_batch_files/", batch_files(frame, "cancer", 2))
    first = api.wait_final(pid, api.start(pid, "train").get_json()["id"])
    assert first["status"] == "succeeded" and first["result"]["promoted"], first
    # the drift rule asks to retrain; the others stay out of this scenario
    rules = api.get(f"/projects/{pid}/alert-rules").get_json()["items"]
    for rule in rules:
        body = {"retrain": True} if rule["kind"] == "feature_drift" else {"enabled": False}
        assert api.patch(f"/projects/{pid}/alert-rules/{rule['id']}",
                         json=body).status_code == 200
    # a nightly schedule: the scheduler, driven by the same clock, has nothing due meanwhile
    assert api.post(f"/projects/{pid}/schedules",
                    json={"cron": "0 3 * * *", "timezone": "Europe/Paris"}).status_code == 201

    # 2a. traffic from the training distribution: no incident
    clock.now += timedelta(minutes=5)
    _recorded(app, pid, _predict(api, pid, frame.sample(n=150, random_state=1)))
    clock.now += timedelta(minutes=5)
    assert monitor.run_once() is not None
    assert api.get(f"/projects/{pid}/incidents").get_json()["items"] == []

    # 2b. then a shifted one (every measurement 60 % larger), an hour later
    clock.now += timedelta(hours=1)
    shifted = frame.sample(n=150, random_state=2).reset_index(drop=True)
    shifted[MEASURES] = shifted[MEASURES] * 1.6
    ids = _predict(api, pid, shifted)
    _recorded(app, pid, ids)

    # 3. feedback labels for the shifted predictions
    labels = [{"prediction_id": i, "actual": a} for i, a in zip(ids, shifted["diagnosis"],
                                                                strict=True)]
    sent = api.post(f"/projects/{pid}/feedback", json={"labels": labels})
    assert sent.status_code == 200 and sent.get_json()["accepted"] == len(ids), sent.get_json()

    # 4. the drift alert opens an incident, mailed exactly once, and starts a retraining
    clock.now += timedelta(minutes=10)
    assert monitor.run_once() is not None
    incidents = api.get(f"/projects/{pid}/incidents").get_json()["items"]
    assert [i["kind"] for i in incidents] == ["feature_drift"] and \
        incidents[0]["status"] == "open"
    incident = incidents[0]
    wait_until(lambda: _mails(smtp_server, "incident opened"), timeout=20,
               message="the incident mail")
    clock.now += timedelta(minutes=10)
    monitor.run_once()  # still drifting: no second mail
    assert len(_mails(smtp_server, "incident opened")) == 1
    assert scheduler.tick() == []  # the nightly slot is not due yet

    retraining = incident["retraining"]
    assert retraining["started"] and retraining["execution_id"]
    second = api.wait_final(pid, retraining["execution_id"])
    assert second["status"] == "succeeded", second
    assert second["trigger"]["by"] == "alert" and \
        second["trigger"]["incident_id"] == incident["id"]

    # 5. the challenger was compared with v1 on the same labeled rows
    challenge = second["result"]["challenge"]
    assert challenge["source"] == "feedback" and challenge["champion_version"] == 1
    assert challenge["rows"] == len(ids) and challenge["rows_sha256"] == rows_digest(ids)
    comparison = second["result"]["comparison"]
    assert set(comparison["champion"]["metrics"]) >= {"accuracy", "f1_macro"}

    # 6. promoted only if better (by the project's margin), and the decision is recorded
    better = _better_by(challenge["challenger_value"], challenge["champion_value"],
                        "accuracy", 0.01)
    assert challenge["better"] is better
    assert challenge["status"] == ("promoted" if better else "refused")
    assert api.get(f"/projects/{pid}").get_json()["active_version"] == (2 if better else 1)
    assert api.get(f"/projects/{pid}/models/2").get_json()["challenge"]["reason"] == \
        challenge["reason"]
    audit = api.get(f"/audit?action=model.challenger.{challenge['status']}").get_json()
    assert audit["items"][0]["details"]["rows"] == len(ids)

    # (trained on the same files with the same seeds, the challenger is v1 again: not better
    # by the margin, so v1 stays, and it is v1's traffic that must return to normal)
    assert not better and challenge["challenger_value"] == challenge["champion_value"]

    # traffic returns to normal: the incident closes
    clock.now += timedelta(hours=1, minutes=10)
    _recorded(app, pid, _predict(api, pid, frame.sample(n=150, random_state=3)))
    clock.now += timedelta(minutes=10)
    assert monitor.run_once() is not None
    closed = api.get(f"/projects/{pid}/incidents/{incident['id']}").get_json()
    assert closed["status"] == "closed"
    assert closed["details"]["closed_because"] == "the condition cleared"
    wait_until(lambda: _mails(smtp_server, "incident closed"), timeout=20,
               message="the closing mail")
    assert len(_mails(smtp_server, "incident opened")) == 1
    open_now = [i for i in api.get(f"/projects/{pid}/incidents").get_json()["items"]
                if i["status"] == "open"]
    assert open_now == []
