"""The model registry through the API: versions with metrics, compare, promote, roll back, delete
with files, and tampered artifacts refused at prediction time."""

from __future__ import annotations

import dataclasses

import pytest
from markupsafe import escape

from app import param_lines
from tests.factories import batch_files, cancer_frame, cancer_project, csv_bytes

pytestmark = pytest.mark.slow


def train(api, project_id):
    done = api.wait_final(project_id, api.start(project_id, "train").get_json()["id"])
    assert done["status"] == "succeeded", done
    return done


def test_versions_compare_promote_rollback_delete(app, api):
    project = api.create_project(cancer_project())
    pid = project["id"]
    api.upload(pid, "training_batch_files/", batch_files(cancer_frame(), "cancer", 2))
    train(api, pid)
    train(api, pid)
    versions = api.get(f"/projects/{pid}/models").get_json()["items"]
    assert [v["version"] for v in versions] == [2, 1]
    for v in versions:
        assert v["metrics"]["accuracy"] > 0.9
        assert v["leaderboard"] and v["artifacts"]["model.joblib"]
        assert v["data_fingerprint"]["rows"] == 569

    comparison = api.get(f"/projects/{pid}/models/compare?a=1&b=2").get_json()
    accuracy = next(m for m in comparison["metrics"] if m["name"] == "accuracy")
    assert accuracy["difference"] == pytest.approx(accuracy["b"] - accuracy["a"])
    page = api.client.get(f"/projects/{project['slug']}/models/compare?a=1&b=2")
    assert page.status_code == 200 and b"accuracy" in page.data
    for line in param_lines(versions[0]["params"]):
        assert str(escape(line)).encode() in page.data

    active = api.get(f"/projects/{pid}").get_json()["active_version"]
    assert active in (1, 2)
    assert api.post(f"/projects/{pid}/models/2/promote").status_code == 200
    rolled = api.post(f"/projects/{pid}/models/rollback")
    assert rolled.status_code == 200 and rolled.get_json()["version"] == 1
    assert api.get(f"/projects/{pid}").get_json()["active_version"] == 1
    again = api.post(f"/projects/{pid}/models/rollback")
    assert again.status_code == 409 and "oldest" in again.get_json()["error"]["message"]

    # real-time predictions keep counters for the versions that exist, and only those
    record = cancer_frame().drop(columns=["diagnosis"]).iloc[0].to_dict()
    for version, status in ((2, 200), (1, 200), (99, 404)):
        answer = api.post(f"/projects/{pid}/predict", json={"records": [record],
                                                           "version": version})
        assert answer.status_code == status, answer.get_json()
    usage = lambda: api.get(f"/projects/{pid}/usage").get_json()["versions"]  # noqa: E731
    assert sorted(usage()) == ["1", "2"] and usage()["2"]["requests"] == 1

    refused = api.delete(f"/projects/{pid}/models/1")
    assert refused.status_code == 409
    assert api.delete(f"/projects/{pid}/models/2").status_code == 204
    assert sorted(usage()) == ["1"]  # a deleted version's counters go with it
    assert [v["version"] for v in api.get(f"/projects/{pid}/models").get_json()["items"]] == [1]
    listing = api.get(f"/projects/{pid}/files?path=models/").get_json()
    assert listing["folders"] == ["models/v1/"]
    assert api.get(f"/projects/{pid}/models/2").status_code == 404


def trained_project(app, api) -> tuple[dict, object]:
    """A project trained once (v1): the API's answer for it, and its files as the platform
    stores them."""
    project = api.create_project(cancer_project())
    api.upload(project["id"], "training_batch_files/", batch_files(cancer_frame(), "cancer", 2))
    train(api, project["id"])
    services = app.extensions["trainyard"]
    with app.app_context():
        return project, services.resolver.files(services.db.projects.get(project["id"]))


def test_a_tampered_model_is_refused_at_prediction(app, api):
    project, files = trained_project(app, api)
    pid = project["id"]
    original = files.read_bytes("models/v1/model.joblib")
    files.upload_bytes("models/v1/model.joblib", original[:-10] + b"0123456789")
    api.upload(pid, "prediction_batch_files/", [(
        "cancer_20270101_000000.csv",
        csv_bytes(cancer_frame().iloc[:10].drop(columns=["diagnosis"])))])
    done = api.wait_final(pid, api.start(pid, "predict").get_json()["id"])
    assert done["status"] == "failed"
    assert "checksum" in done["error"].lower() or "does not match" in done["error"].lower()
    assert "version 1" in done["error"]


def test_a_version_whose_files_are_gone_or_changed_is_not_promoted(app, api):
    """Issue 21, item 5: with models/v1/model.joblib deleted (the file manager no longer lets
    anyone do it, but a storage can still lose it), promoting v1 answered 200 and every
    prediction failed afterwards. Promotion and rollback now verify the version's files and
    checksums first and refuse with a 409, leaving the active version serving."""
    project, files = trained_project(app, api)
    pid = project["id"]
    services = app.extensions["trainyard"]
    # v2: a copy of v1 (cheaper than a second training; the checks read the files only)
    for info in files.list_files("models/v1/"):
        files.copy(info.key, "models/v2/" + info.key.removeprefix("models/v1/"))
    services.db.model_versions.add(dataclasses.replace(
        services.db.model_versions.get(pid, 1), version=2))
    services.db.projects.set_versions(pid, next_version=3)
    assert api.post(f"/projects/{pid}/models/2/promote").status_code == 200
    refused = api.delete(f"/projects/{pid}/files?path=models/v1/model.joblib")
    assert refused.status_code == 403
    assert "through the model registry" in refused.get_json()["error"]["message"]
    files.delete("models/v1/model.joblib")  # lost by the storage itself
    record = cancer_frame().drop(columns=["diagnosis"]).iloc[0].to_dict()
    for attempt in (f"/projects/{pid}/models/1/promote", f"/projects/{pid}/models/rollback"):
        answer = api.post(attempt)
        assert answer.status_code == 409, answer.get_json()
        error = answer.get_json()["error"]
        assert error["code"] == "artifact_integrity"
        assert "model.joblib of model version 1 is missing" in error["message"]
        assert api.get(f"/projects/{pid}").get_json()["active_version"] == 2
        assert api.post(f"/projects/{pid}/predict", json={"records": [record]}).status_code \
            == 200
    # a changed file (here the metrics, which the model file's checksum does not cover)
    files.upload_bytes("models/v2/metrics.json", b"{}")
    page = api.client.post(f"/projects/{project['slug']}/models/2/promote",
                           headers={"X-CSRFToken": api.client.csrf_token})
    assert page.status_code == 409
    assert b"metrics.json of model version 2 does not match" in page.data
