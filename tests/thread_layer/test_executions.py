"""Executions through the app: one at a time per project, plain-words failures, bad files
archived with their reasons, cancellation. Real worker processes, real local storage."""

from __future__ import annotations

import json

import pytest

from tests.factories import batch_files, cancer_frame, cancer_project, cancer_rows, csv_bytes

pytestmark = pytest.mark.slow


def test_a_second_execution_is_refused_while_one_runs(api):
    project = api.create_project(cancer_project())
    api.upload(project["id"], "training_batch_files/", batch_files(cancer_frame(), "cancer", 2))
    first = api.start(project["id"], "train")
    assert first.status_code == 202
    running_id = first.get_json()["id"]

    # for a prediction, no model yet is also a reason, but the running execution comes first
    for kind in ("train", "predict"):
        second = api.start(project["id"], kind)
        body = second.get_json()["error"]
        assert second.status_code == 409
        assert body["code"] == "execution_in_progress"
        assert running_id in body["message"]
        assert body["details"]["execution_id"] == running_id

    listed = api.get(f"/projects/{project['id']}/executions").get_json()
    assert [e["id"] for e in listed["items"]] == [running_id]  # nothing else was created
    assert api.wait_final(project["id"], running_id)["status"] == "succeeded"
    assert api.get(f"/projects/{project['id']}").get_json()["active_execution_id"] is None


def test_training_without_files_fails_in_plain_words(api):
    project = api.create_project(cancer_project())
    started = api.start(project["id"], "train").get_json()
    done = api.wait_final(project["id"], started["id"])
    assert done["status"] == "failed"
    assert done["error"] == "no training batch files found in training_batch_files/"
    assert "Traceback" not in done["error"]
    # the project is free again, and the failure is in its list of executions
    assert api.get(f"/projects/{project['id']}").get_json()["active_execution_id"] is None
    listed = api.get(f"/projects/{project['id']}/executions").get_json()["items"]
    assert [(e["id"], e["status"]) for e in listed] == [(started["id"], "failed")]
    logs = api.get(f"/projects/{project['id']}/executions/{started['id']}/logs").get_json()
    assert any(line["level"] == "ERROR" and "no training batch files" in line["message"]
               for line in logs["items"])
    # the failed attempt left no half-written model behind
    models = api.get(f"/projects/{project['id']}/files?path=models/").get_json()
    assert models["folders"] == [] and models["files"] == []


def test_files_that_break_the_schema_are_archived_with_reasons(app, api):
    """Bad files can reach the storage without the upload check (a sync job, a cloud console):
    the training moves them to archive/<execution>/bad/ and trains on the rest."""
    project = api.create_project(cancer_project())
    good = batch_files(cancer_frame(), "cancer", 3)
    api.upload(project["id"], "training_batch_files/", good)
    services = app.extensions["trainyard"]
    with app.app_context():
        files = services.resolver.files(services.db.projects.get(project["id"]))
    broken = cancer_frame().iloc[:40].copy()
    broken["mean_radius"] = "not a number"
    files.upload_bytes("training_batch_files/cancer_20261231_000000.csv", csv_bytes(broken))
    files.upload_bytes("training_batch_files/wrong_name.csv", good[0][1])

    started = api.start(project["id"], "train").get_json()
    done = api.wait_final(project["id"], started["id"])
    assert done["status"] == "succeeded", done
    report = {entry["name"]: entry for entry in done["result"]["validation"]}
    assert report["cancer_20261231_000000.csv"]["ok"] is False
    assert any("mean_radius" in r for r in report["cancer_20261231_000000.csv"]["reasons"])
    assert report["wrong_name.csv"]["ok"] is False
    assert any("pattern" in r.lower() or "name" in r.lower()
               for r in report["wrong_name.csv"]["reasons"])
    assert all(report[name]["ok"] for name, _ in good)

    bad_folder = f"archive/{started['id']}/bad/"
    assert sorted(f.name for f in files.list_files(bad_folder)) == [
        "cancer_20261231_000000.csv", "wrong_name.csv"]
    assert not files.exists("training_batch_files/wrong_name.csv")
    stored_report = json.loads(files.read_bytes(f"archive/{started['id']}/validation_report.json"))
    assert len(stored_report) == 5 or len(stored_report.get("files", [])) == 5


def test_cancel_a_running_training(api, app):
    project = api.create_project(cancer_project())
    big = cancer_rows(40000)
    api.upload(project["id"], "training_batch_files/", batch_files(big, "cancer", 2))
    started = api.start(project["id"], "train").get_json()
    from tests.conftest import wait_until

    wait_until(lambda: api.execution(project["id"], started["id"])["status"] == "running",
               message="the training to run")
    r = api.post(f"/projects/{project['id']}/executions/{started['id']}/cancel")
    assert r.status_code == 202
    done = api.wait_final(project["id"], started["id"], timeout=30)
    assert done["status"] == "cancelled"
    assert api.get(f"/projects/{project['id']}").get_json()["active_execution_id"] is None
    again = api.post(f"/projects/{project['id']}/executions/{started['id']}/cancel")
    assert again.status_code == 409
