"""Champion and challenger: a model trained while another is active is scored with it on the
same rows (the held-out training rows without feedback, the labeled predictions with), and the
project's promotion policy decides: automatically by a margin, or by a person's approval on the
Retraining page or through the API. Every decision is recorded on the version, in the audit
log, and mailed. Real trainings on the breast-cancer data, a logistic regression each."""

from __future__ import annotations

import pytest

from entity.base import to_iso, utcnow
from entity.model_version import ModelVersion
from entity.prediction_record import new_prediction_id, new_record
from entity.project import BatchSchema, Project
from project_library.challenger import rows_digest
from tests.factories import batch_files, cancer_frame, cancer_project
from thread_layer.promotion import judge
from thread_layer.triggers import start_retraining

FAST = {"algorithms": ["LogisticRegression"], "time_budget_seconds": 30}


def _train(api, pid):
    done = api.wait_final(pid, api.start(pid, "train").get_json()["id"])
    assert done["status"] == "succeeded", done
    return done


@pytest.mark.slow
def test_a_challenger_is_compared_on_the_same_rows_and_the_policy_decides(app, api,
                                                                          admin_client):
    project = api.create_project(cancer_project(**FAST))
    pid = project["id"]
    api.upload(pid, "training_batch_files/", batch_files(cancer_frame(), "cancer", 2))
    first = _train(api, pid)
    assert first["result"]["promoted"] and "challenge" not in first["result"]

    # no feedback yet: compared on the challenger's held-out rows; auto with a margin no
    # model can reach refuses it, with its numbers and reason
    assert api.patch(f"/projects/{pid}", json={"promotion_margin": 0.5}).status_code == 200
    second = _train(api, pid)
    challenge = second["result"]["challenge"]
    assert challenge["status"] == "refused" and challenge["source"] == "holdout"
    assert challenge["rows"] == first["result"]["metrics"]["n_test"]
    assert challenge["metric"] == "accuracy" and challenge["champion_version"] == 1
    assert challenge["challenger_value"] == pytest.approx(challenge["champion_value"])
    assert "by at least 0.5" in challenge["reason"]
    assert api.get(f"/projects/{pid}").get_json()["active_version"] == 1
    refused = api.get(f"/projects/{pid}/models/2").get_json()["challenge"]
    assert refused["status"] == "refused" and refused["reason"] == challenge["reason"]

    # feedback: 40 labeled predictions; the manual policy waits for a person
    db = app.extensions["trainyard"].db
    frame = cancer_frame().sample(n=40, random_state=3)
    now = to_iso(utcnow())
    docs = [new_record(new_prediction_id(), pid, 1, "realtime", now,
                       {k: v for k, v in row.items() if k != "diagnosis"}, row["diagnosis"])
            for row in frame.to_dict("records")]
    db.prediction_records.add_many(docs)
    for doc, actual in zip(docs, frame["diagnosis"], strict=True):
        assert db.prediction_records.label(pid, doc["_id"], actual)
    assert api.patch(f"/projects/{pid}", json={"promotion_policy": "manual",
                                               "promotion_margin": 0}).status_code == 200
    with app.app_context():
        started = start_retraining(db, app.extensions["trainyard"].runner,
                                   db.projects.get(pid), trigger="alert",
                                   reason="Accuracy fell", detail={"incident_id": "i1"})
    third = api.wait_final(pid, started.id)
    pending = third["result"]["challenge"]
    assert pending["status"] == "pending" and pending["source"] == "feedback"
    assert pending["rows"] == 40 and pending["rows_sha256"] == rows_digest(d["_id"]
                                                                           for d in docs)
    assert pending["window_days"] == 30 and "waiting for a person" in pending["reason"]
    listed = api.get(f"/projects/{pid}/challengers?status=pending").get_json()["items"]
    assert [v["version"] for v in listed] == [3]
    mails = api.get("/outbox").get_json()["items"]
    assert any("Challenger waiting for approval" in m["body_text"] for m in mails
               if third["id"] in m["subject"])

    page = admin_client.get(f"/projects/{project['slug']}/retraining").get_data(as_text=True)
    assert 'data-challenger="3" data-status="pending"' in page and 'data-action="approve"' in page
    clicked = admin_client.post(f"/projects/{project['slug']}/models/3/approve",
                                data={"csrf_token": admin_client.csrf_token})
    assert clicked.status_code == 303
    assert api.get(f"/projects/{pid}").get_json()["active_version"] == 3
    approved = api.get(f"/projects/{pid}/models/3").get_json()["challenge"]
    assert approved["status"] == "approved" and "Approved by Ada Admin." in approved["reason"]
    again = api.post(f"/projects/{pid}/models/3/reject")
    assert again.status_code == 409 and "approved" in again.get_json()["error"]["message"]
    audit = api.get("/audit?action=model.challenger.approved").get_json()["items"]
    assert audit and audit[0]["details"]["version"] == 3 and audit[0]["details"]["rows"] == 40
    assert any(m["subject"].endswith("challenger v3 approved and promoted")
               for m in api.get("/outbox").get_json()["items"])
    # rollback stays one click: back to the version active before
    assert api.post(f"/projects/{pid}/models/rollback").get_json()["version"] == 2


def _version(number: int, accuracy: float) -> ModelVersion:
    return ModelVersion(project_id="p", version=number, execution_id="e", algorithm="lr",
                        metrics={"accuracy": accuracy, "rmse": 1 - accuracy})


def _project(**settings) -> Project:
    return Project(name="p", slug="p", problem_type="classification", owner_id="u",
                   schema=BatchSchema("^a$", [], "y"), settings=settings)


def _comparison(new: float, old: float, champion: int = 1) -> dict:
    return {"source": "feedback", "rows": 50, "rows_sha256": "x",
            "champion": {"version": champion, "metrics": {"accuracy": old, "rmse": 1 - old}},
            "challenger": {"metrics": {"accuracy": new, "rmse": 1 - new}}}


def test_the_decision_follows_direction_margin_and_policy():
    champion, challenger = _version(1, 0.80), _version(2, 0.99)
    decided = judge(_project(), challenger, champion, _comparison(0.90, 0.85), window_days=7)
    assert decided["status"] == "promoted" and decided["source"] == "feedback"
    assert (decided["challenger_value"], decided["champion_value"]) == (0.90, 0.85)
    assert "the same 50 labeled predictions of the last 7 days" in decided["reason"]
    assert judge(_project(promotion_margin=0.1), challenger, champion,
                 _comparison(0.90, 0.85))["status"] == "refused"
    lower = _project(metric="rmse")
    lower.problem_type = "regression"
    assert judge(lower, challenger, champion, _comparison(0.90, 0.85))["status"] == "promoted"
    assert judge(lower, challenger, champion, _comparison(0.80, 0.85))["status"] == "refused"
    manual = judge(_project(promotion_policy="manual"), challenger, champion,
                   _comparison(0.80, 0.85))
    assert manual["status"] == "pending" and manual["better"] is False
    # a comparison that failed, or made against another champion, falls back to each
    # version's own held-out metrics, and says so
    failed = judge(_project(), challenger, champion, {**_comparison(0.1, 0.9),
                                                      "error": "ArtifactIntegrityError: x"})
    assert failed["source"] == "training_metrics" and failed["status"] == "promoted"
    assert "failed: ArtifactIntegrityError" in failed["reason"]
    assert judge(_project(), challenger, champion,
                 _comparison(0.1, 0.9, champion=7))["source"] == "training_metrics"
