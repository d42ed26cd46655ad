"""Issue 21, finding 2: a user's file-name pattern cannot freeze the web process.

With Python's backtracking ``re``, ``^(a+)+$`` against ``'a' * 28 + '!'`` took 9 s and held
/healthz meanwhile; the names below are long enough that it would need hours. Patterns RE2
cannot run, or would read differently, are refused with a 422 when the schema is saved."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import ADMIN
from tests.factories import batch_files, cancer_frame, cancer_project

HOSTILE = r"^(a+)+$"
LONG = 60  # 2**60 backtracking steps with Python's re


def _login(url: str) -> requests.Session:
    http = requests.Session()
    token = http.post(f"{url}/api/v1/setup", json=ADMIN, timeout=30).json()["csrf_token"]
    http.headers["X-CSRFToken"] = token
    return http


def test_upload_against_the_pathological_pattern_answers_and_health_stays_up(live_server):
    http = _login(live_server.url)
    api = f"{live_server.url}/api/v1"
    definition = cancer_project()
    definition["schema"]["filename_pattern"] = HOSTILE
    project = http.post(f"{api}/projects", json=definition, timeout=30).json()
    data = batch_files(cancer_frame().iloc[:50], "cancer", 1)[0][1]

    def upload(name: str) -> requests.Response:
        return http.post(f"{api}/projects/{project['id']}/files",
                         params={"path": "training_batch_files/"},
                         files=[("files", (name, data, "text/csv"))], timeout=10)

    with ThreadPoolExecutor(4) as pool:
        hostile = [pool.submit(upload, "a" * LONG + "!") for _ in range(3)]
        health = pool.submit(requests.get, f"{live_server.url}/healthz", timeout=10)
        refused = [future.result() for future in hostile]
        assert health.result().status_code == 200
    for response in refused:
        assert response.status_code == 422
        assert "does not follow the project's naming pattern" in response.json()["error"][
            "message"]
    accepted = upload("a" * LONG)
    assert accepted.status_code == 201, accepted.json()


@pytest.mark.parametrize("pattern, reason", [
    ("a{99999999999}", "at most 1000"),
    (r"(\d+)_\1\.csv", "Backreferences"),
    (r"^(?!tmp_).*\.csv$", "Negative lookahead"),
    (r"\pL{1000}", "too large"),
])
def test_costly_or_unsupported_patterns_get_a_422_and_change_nothing(api, pattern, reason):
    definition = cancer_project()
    definition["schema"]["filename_pattern"] = pattern
    response = api.post("/projects", json=definition)
    assert response.status_code == 422, response.get_json()
    assert reason in response.get_json()["error"]["details"]["filename_pattern"]
    assert api.get("/projects").get_json()["total"] == 0

    project = api.create_project(cancer_project())
    response = api.patch(f"/projects/{project['id']}",
                         json={"schema": {**project["schema"], "filename_pattern": pattern}})
    assert response.status_code == 422
    assert reason in response.get_json()["error"]["details"]["filename_pattern"]
    after = api.get(f"/projects/{project['id']}").get_json()
    assert after["schema"] == project["schema"]


def test_the_project_form_shows_the_refusal(admin_client, api):
    schema = dict(cancer_project()["schema"], filename_pattern="a{99999999999}")
    form = {"name": "Hostile", "problem_type": "classification", "description": "",
            "recipients": "", "filename_pattern": schema["filename_pattern"],
            "schema_json": json.dumps(schema), "csrf_token": admin_client.csrf_token}
    response = admin_client.post("/projects/new", data=form)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'data-error-for="filename_pattern"' in html and "at most 1000" in html
    assert api.get("/projects").get_json()["total"] == 0


def test_a_stored_pattern_re2_cannot_run_leaves_the_project_usable(app, admin_client, api):
    """A project saved before patterns ran on RE2 may hold a lookahead: it still opens, its
    uploads are refused with the reason, and its settings page asks for a new pattern."""
    project = api.create_project(cancer_project())
    db = app.extensions["trainyard"].db
    stored = db.projects.get(project["id"])
    stored.schema.filename_pattern = r"^(?=cancer_)\w+\.csv$"
    db.projects.save(stored)

    assert admin_client.get(f"/projects/{project['slug']}").status_code == 200
    files = batch_files(cancer_frame().iloc[:50], "cancer", 1)
    response = api.upload(project["id"], "training_batch_files/", files)
    assert response.status_code == 422
    assert "can no longer be used (Lookahead (?=...) is not supported.)" in response.get_json()[
        "error"]["message"]
    settings = admin_client.get(f"/projects/{project['slug']}/settings")
    assert settings.status_code == 200
    assert "Change the pattern to upload files again" in settings.get_data(as_text=True)
    # other settings still change; a new pattern puts uploads back
    assert api.patch(f"/projects/{project['id']}",
                     json={"description": "still editable"}).status_code == 200
    schema = {**project["schema"], "filename_pattern": r"^cancer_\w+\.csv$"}
    assert api.patch(f"/projects/{project['id']}", json={"schema": schema}).status_code == 200
    assert api.upload(project["id"], "training_batch_files/", files).status_code == 201
