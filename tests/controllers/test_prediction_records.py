"""Prediction records and ground-truth feedback through the API, end to end on a trained model:
real-time and batch predictions answer prediction ids and keep their records (all, or a
sample), the records are listed, filtered and exported, labels arrive through the API and as a
feedback file of the file manager, refusals give a reason per row and change nothing, and the
labeled rows feed the next training and, past a threshold, start it."""

from __future__ import annotations

import csv
import io
import json

import pytest

from entity.base import to_iso, utcnow
from entity.prediction_record import new_prediction_id, new_record
from tests.conftest import wait_until
from tests.factories import batch_files, cancer_frame, cancer_project, csv_bytes

pytestmark = pytest.mark.slow

#: the quickest training that still makes a real model
FAST = {"algorithms": ["LogisticRegression"], "time_budget_seconds": 10}


def features(start: int, n: int) -> list[dict]:
    frame = cancer_frame().drop(columns=["diagnosis"]).iloc[start:start + n]
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def train(api, pid) -> dict:
    done = api.wait_final(pid, api.start(pid, "train").get_json()["id"])
    assert done["status"] == "succeeded", done
    return done


@pytest.fixture
def trained(app, api):
    project = api.create_project(cancer_project(**FAST))
    api.upload(project["id"], "training_batch_files/",
               batch_files(cancer_frame().iloc[:400], "cancer", 1))
    train(api, project["id"])
    return project


def records_of(app):
    return app.extensions["trainyard"].db.prediction_records


def flushed(app) -> None:
    """Write what the real-time recorder holds now (its thread would, within a second)."""
    app.extensions["trainyard"].model_server.recorder.flush()


def test_records_feedback_export_and_refusals_through_the_api(app, api, trained):
    pid = trained["id"]
    answer = api.post(f"/projects/{pid}/predict", json={"records": features(400, 3)})
    assert answer.status_code == 200, answer.get_json()
    ids = answer.get_json()["prediction_ids"]
    assert len(ids) == 3 and len(set(ids)) == 3 and all(len(i) == 32 for i in ids)
    # written by the recorder's own thread, off the request
    wait_until(lambda: records_of(app).count(pid) == 3, timeout=10, message="the records")

    listed = api.get(f"/projects/{pid}/records?per_page=2").get_json()
    assert listed["total"] == 3 and len(listed["items"]) == 2
    first = api.get(f"/projects/{pid}/records/{ids[0]}").get_json()
    assert first["source"] == "realtime" and first["version"] == 1
    assert first["inputs"] == features(400, 1)[0]
    assert first["output"] in ("malignant", "benign") and first["latency_ms"] > 0
    assert set(first["probabilities"]) == {"malignant", "benign"}
    assert api.get(f"/projects/{pid}/records/{'0' * 32}").status_code == 404

    # another project's prediction, to be refused
    other = api.create_project(cancer_project("Other"))
    foreign = new_prediction_id()
    records_of(app).add_many([new_record(foreign, other["id"], 1, "realtime", to_iso(utcnow()),
                                         {}, "benign")])

    answer = api.post(f"/projects/{pid}/feedback", json={"labels": [
        {"prediction_id": ids[0], "actual": "malignant"},
        {"prediction_id": "f" * 32, "actual": "benign"},
        {"prediction_id": ids[0], "actual": "benign"},
        {"prediction_id": foreign, "actual": "benign"},
        {"prediction_id": ids[1], "actual": {"not": "a label"}},
        {"prediction_id": ids[2], "actual": None},
        "not an object"]})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["accepted"] == 1
    reasons = {r["row"]: r["reason"] for r in body["rejected"]}
    assert set(reasons) == {1, 2, 3, 4, 5, 6}
    assert "unknown" in reasons[1] and "repeats row 0" in reasons[2]
    assert "another project" in reasons[3] and reasons[4].startswith("actual: ")
    assert "category" in reasons[4] and "actual is missing" in reasons[5]
    assert "prediction_id is missing" in reasons[6]
    assert records_of(app).get(ids[0])["actual"] == "malignant"

    # nothing kept: 422 naming the field, and nothing changes
    again = api.post(f"/projects/{pid}/feedback", json={"prediction_id": ids[0],
                                                        "actual": "benign"})
    assert again.status_code == 422
    error = again.get_json()["error"]
    assert "labeled already" in error["details"]["prediction_id"]
    wrong = api.post(f"/projects/{pid}/feedback", json={"prediction_id": ids[1], "actual": [1]})
    assert wrong.status_code == 422 and "actual" in wrong.get_json()["error"]["details"]
    assert records_of(app).get(ids[0])["actual"] == "malignant"
    assert records_of(app).get(ids[1])["labeled_at"] is None
    for bad in ({"labels": "x"}, {"labels": []}, {"other": 1}, "text"):
        assert api.post(f"/projects/{pid}/feedback", json=bad).status_code in (400, 422)
    assert api.post(f"/projects/{pid}/feedback", data="x").status_code == 400

    # filters, and their refusals naming the field
    labeled = api.get(f"/projects/{pid}/records?labeled=true").get_json()
    assert [r["prediction_id"] for r in labeled["items"]] == [ids[0]]
    assert api.get(f"/projects/{pid}/records?labeled=false").get_json()["total"] == 2
    assert api.get(f"/projects/{pid}/records?version=2").get_json()["total"] == 0
    assert api.get(f"/projects/{pid}/records?source=batch").get_json()["total"] == 0
    assert api.get(f"/projects/{pid}/records?since=2000-01-01&until=2999-01-01"
                   ).get_json()["total"] == 3
    for query, field in (("version=x", "version"), ("source=web", "source"),
                         ("since=yesterday", "since"), ("labeled=maybe", "labeled")):
        refused = api.get(f"/projects/{pid}/records?{query}")
        assert refused.status_code == 422 and field in refused.get_json()["error"]["details"]

    # export: CSV and JSON lines, oldest first
    exported = api.get(f"/projects/{pid}/records/export?format=csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    rows = {r["prediction_id"]: r for r in csv.DictReader(io.StringIO(
        exported.get_data(as_text=True)))}  # rows of one request share their time
    assert set(rows) == set(ids)
    assert rows[ids[0]]["actual"] == "malignant" and rows[ids[1]]["actual"] == ""
    assert float(rows[ids[0]]["mean_radius"]) == features(400, 1)[0]["mean_radius"]
    lines = api.get(f"/projects/{pid}/records/export?format=jsonl&labeled=true"
                    ).get_data(as_text=True).splitlines()
    assert [json.loads(line)["prediction_id"] for line in lines] == [ids[0]]
    assert api.get(f"/projects/{pid}/records/export?format=xml").status_code == 422

    # the project's Predictions page: the same filters, a bad one said above the list
    page = api.client.get(f"/projects/{trained['slug']}/records?labeled=true")
    assert page.status_code == 200 and ids[0].encode() in page.data
    assert ids[1].encode() not in page.data and b"malignant" in page.data
    refused = api.client.get(f"/projects/{trained['slug']}/records?since=soon")
    assert refused.status_code == 200 and b"not an ISO 8601 date or time" in refused.data
    download = api.client.get(f"/projects/{trained['slug']}/records/export?format=jsonl")
    assert len(download.get_data(as_text=True).splitlines()) == 3

    # sampling: none of the real-time rows kept, then about half of them
    assert api.patch(f"/projects/{pid}", json={"prediction_record_sample": 0}).status_code == 200
    none = api.post(f"/projects/{pid}/predict", json={"records": features(410, 5)}).get_json()
    assert len(none["prediction_ids"]) == 5
    assert api.patch(f"/projects/{pid}", json={"prediction_record_sample": 0.5}
                     ).status_code == 200
    api.post(f"/projects/{pid}/predict", json={"records": features(0, 400)})
    flushed(app)
    sampled = records_of(app).count(pid) - 3
    assert 140 <= sampled <= 260  # binomial(400, 0.5): outside this once in 10^9 runs
    refused = api.patch(f"/projects/{pid}", json={"prediction_record_sample": 1.5})
    assert refused.status_code == 422
    assert "prediction_record_sample" in refused.get_json()["error"]["details"]


def test_batch_records_feedback_file_and_training_on_feedback(app, api, trained):
    pid = trained["id"]
    rows = cancer_frame().iloc[400:460]
    api.upload(pid, "prediction_batch_files/",
               [("cancer_20270101_000000.csv", csv_bytes(rows.drop(columns=["diagnosis"])))])
    done = api.wait_final(pid, api.start(pid, "predict").get_json()["id"])
    assert done["status"] == "succeeded", done
    output = api.get(f"/projects/{pid}/executions/{done['id']}/output.csv").get_data(as_text=True)
    predicted = list(csv.DictReader(io.StringIO(output)))
    ids = [r["prediction_id"] for r in predicted]
    assert len(ids) == 60 and len(set(ids)) == 60
    batch = records_of(app).find(pid, source="batch")
    assert {d["_id"] for d in batch} == set(ids)
    assert {d["execution_id"] for d in batch} == {done["id"]}
    kept = {d["_id"]: d for d in batch}[ids[0]]
    assert kept["inputs"]["mean_radius"] == pytest.approx(rows.iloc[0]["mean_radius"])
    assert kept["output"] == predicted[0]["prediction"]
    assert kept["probabilities"]["benign"] == pytest.approx(
        float(predicted[0]["probability_benign"]))
    assert "sample_id" not in kept["inputs"]  # ignored columns are not model inputs

    # a feedback file missing the target is refused at upload, and nothing is stored
    bad = api.upload(pid, "feedback/", [("labels.csv", b"prediction_id,other\nx,1\n")])
    assert bad.status_code == 422
    assert "diagnosis" in json.dumps(bad.get_json()["error"]["details"])
    labels = "prediction_id,diagnosis\n" + "".join(
        f"{pid_},{truth}\n" for pid_, truth in zip(ids[:50], rows["diagnosis"][:50],
                                                   strict=True)) + f"{'e' * 32},benign\n"
    assert api.upload(pid, "feedback/", [("labels.csv", labels.encode())]).status_code == 201
    taken = api.wait_final(pid, api.start(pid, "feedback").get_json()["id"])
    assert taken["status"] == "succeeded", taken
    assert taken["result"]["accepted"] == 50 and taken["result"]["rejected_count"] == 1
    assert taken["result"]["rejected"][0]["row"] == 51
    assert "unknown" in taken["result"]["rejected"][0]["reason"]
    assert records_of(app).count(pid, labeled=True) == 50
    listing = api.get(f"/projects/{pid}/files?path=feedback/").get_json()
    assert listing["files"] == []  # taken in: out of feedback/, kept in the archive
    archived = api.get(f"/projects/{pid}/files?path=archive/{taken['id']}/good/").get_json()
    assert [f["name"] for f in archived["files"]] == ["labels.csv"]

    # the next training learns from the labeled rows too, and a threshold starts it
    changed = api.patch(f"/projects/{pid}", json={"train_on_feedback": True,
                                                  "retrain_after_labels": 5})
    assert changed.status_code == 200, changed.get_json()
    plain = records_of(app).find(pid, labeled=False)
    answer = api.post(f"/projects/{pid}/feedback", json=[
        {"prediction_id": d["_id"], "actual": "benign"} for d in plain[:5]])
    assert answer.get_json()["accepted"] == 5
    started = wait_until(lambda: next((e for e in api.get(f"/projects/{pid}/executions")
                                       .get_json()["items"] if e["kind"] == "train"
                                       and (e.get("trigger") or {}).get("by") == "labels"),
                                      None), timeout=10, message="the retraining")
    retrained = api.wait_final(pid, started["id"])
    assert retrained["status"] == "succeeded", retrained
    version = api.get(f"/projects/{pid}/models/{retrained['result']['version']}").get_json()
    assert version["data_fingerprint"]["feedback_rows"] == 55
    assert version["data_fingerprint"]["rows"] == 400 + 55
