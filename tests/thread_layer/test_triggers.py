"""Every execution records who or what started it and why (its ``trigger``), shown in the API
and on the execution page; retraining started by the platform goes through one function that
declines when the project should not retrain now."""

from __future__ import annotations

import pytest

from app import create_app
from entity.execution import Execution
from tests.conftest import ApiClient, Auth
from tests.factories import cancer_project
from thread_layer.triggers import start_retraining, trigger_record


@pytest.fixture
def quiet_app(app_config):
    """An app whose runner queues executions but never runs them (nothing here needs a
    trained model: the trigger is recorded at submission)."""
    application = create_app(app_config, start_runner=False)
    runner = application.extensions["trainyard"].runner
    runner.start = lambda: None
    yield application
    runner.shutdown()
    application.extensions["trainyard"].db.close()


@pytest.fixture
def quiet_api(quiet_app):
    client = quiet_app.test_client()
    auth = Auth(client)
    assert auth.setup_admin().status_code == 302
    client.csrf_token = auth.csrf("/")
    return ApiClient(client)


def _platform(app):
    return app.extensions["trainyard"]


def _free(app, project_id: str) -> None:
    """Finish the project's queued execution (as if it had run), freeing the project."""
    db = _platform(app).db
    project = db.projects.get(project_id)
    db.executions.finish(project.active_execution_id, "cancelled", error="test")
    db.projects.release(project_id, project.active_execution_id)


def test_a_schedule_started_retraining_records_its_trigger_in_the_api_and_the_page(
        quiet_app, quiet_api):
    project = quiet_api.create_project(cancer_project())
    platform = _platform(quiet_app)
    stored = platform.db.projects.get(project["id"])
    with quiet_app.app_context():
        started = start_retraining(platform.db, platform.runner, stored, trigger="schedule",
                                   reason="Nightly retraining (0 3 * * * Europe/Paris).",
                                   detail={"schedule_id": "s1", "slot": "2026-12-05T02:00Z"})
    assert isinstance(started, Execution)

    body = quiet_api.execution(project["id"], started.id)
    assert body["trigger"] == {"by": "schedule", "schedule_id": "s1",
                               "slot": "2026-12-05T02:00Z",
                               "reason": "Nightly retraining (0 3 * * * Europe/Paris)."}
    assert body["started_by"] is None and body["kind"] == "train"
    logs = quiet_api.get(f"/projects/{project['id']}/executions/{started.id}/logs").get_json()
    assert logs["items"][0]["message"] == ("Training queued by the schedule trigger: Nightly "
                                           "retraining (0 3 * * * Europe/Paris).")
    page = quiet_api.client.get(f"/projects/{project['slug']}/executions/{started.id}"
                                ).get_data(as_text=True)
    assert 'data-trigger="schedule"' in page and "the retraining schedule" in page
    assert "Nightly retraining (0 3 * * * Europe/Paris)." in page
    audit = [e for e in platform.db.audit.search(action="execution.train")[0]
             if e.details.get("execution") == started.id]
    assert audit and audit[0].details["trigger"]["by"] == "schedule"

    # while it is active, any other trigger is declined (not queued behind it)
    with quiet_app.app_context():
        assert start_retraining(platform.db, platform.runner, stored, trigger="alert",
                                reason="Drift on mean_radius", detail={}) is None


def test_triggers_follow_the_project_policy(quiet_app, quiet_api):
    project = quiet_api.create_project(cancer_project())
    platform = _platform(quiet_app)
    with quiet_app.app_context():
        stored = platform.db.projects.get(project["id"])
        # labels retrain only once the project sets a count
        assert start_retraining(platform.db, platform.runner, stored, trigger="labels",
                                reason="500 new labels", detail={"labels": 500}) is None
        assert quiet_api.patch(f"/projects/{project['id']}", json={
            "retrain_on_alert": False, "retrain_after_labels": 500}).status_code == 200
        assert start_retraining(platform.db, platform.runner, stored, trigger="alert",
                                reason="drift", detail={}) is None
        by_labels = start_retraining(platform.db, platform.runner, stored, trigger="labels",
                                     reason="500 new labels", detail={"labels": 500})
        assert by_labels is not None and by_labels.trigger["labels"] == 500
        with pytest.raises(ValueError, match="Unknown trigger"):
            trigger_record("cron", "?")
    refused = quiet_api.patch(f"/projects/{project['id']}", json={"retrain_after_labels": 0})
    assert refused.status_code == 422 and "retrain_after_labels" in \
        refused.get_json()["error"]["details"]


def test_a_person_s_start_records_by_user_and_the_channel(quiet_app, quiet_api):
    project = quiet_api.create_project(cancer_project())
    from_api = quiet_api.start(project["id"], "train").get_json()
    assert from_api["trigger"]["by"] == "user" and from_api["trigger"]["via"] == "api"
    assert from_api["trigger"]["user_id"] == from_api["started_by"]
    _free(quiet_app, project["id"])

    from_cli = quiet_api.client.post(
        f"/api/v1/projects/{project['id']}/executions", json={"kind": "train"},
        headers={"X-CSRFToken": quiet_api.client.csrf_token,
                 "User-Agent": "trainyard-cli/0.1"}).get_json()
    assert from_cli["trigger"]["via"] == "cli"
    _free(quiet_app, project["id"])

    clicked = quiet_api.client.post(f"/projects/{project['slug']}/train",
                                    data={"csrf_token": quiet_api.client.csrf_token})
    assert clicked.status_code == 303
    newest = quiet_api.get(f"/projects/{project['id']}/executions").get_json()["items"][0]
    assert newest["trigger"] == {"by": "user", "user_id": newest["started_by"],
                                 "reason": "Started by Ada Admin.", "via": "page"}
    page = quiet_api.client.get(clicked.location).get_data(as_text=True)
    assert 'data-trigger="user"' in page and "Ada Admin (from the web page)" in page


def test_an_execution_stored_before_triggers_reads_as_a_person_s_start():
    doc = Execution(project_id="p", kind="train", started_by="u1").to_document()
    del doc["trigger"]
    assert Execution.from_document(doc).trigger == {"by": "user", "user_id": "u1",
                                                    "reason": "Started by a person."}
