"""Bad input gets a specific message with a 4xx status and leaves stored data as it was."""

from __future__ import annotations

import re

import pytest

from tests.factories import batch_files, cancer_frame, cancer_project, csv_bytes

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


@pytest.fixture
def project(api):
    created = api.create_project(cancer_project())
    good = batch_files(cancer_frame().iloc[:100], "cancer", 1)
    assert api.upload(created["id"], "training_batch_files/", good).status_code == 201
    return created


def listing(api, project, folder="training_batch_files/"):
    body = api.get(f"/projects/{project['id']}/files?path={folder}").get_json()
    return sorted((f["name"], f["size"]) for f in body["files"])


def _frame_bytes(transform) -> bytes:
    return csv_bytes(transform(cancer_frame().iloc[:30].copy()))


BAD_FILES = {
    "name breaks the pattern": ("cancer-final.csv", _frame_bytes(lambda f: f), r"pattern"),
    "wrong column count": ("cancer_20260301_000000.csv",
                           _frame_bytes(lambda f: f.drop(columns=["mean_area"])), r"column"),
    "wrong types": ("cancer_20260302_000000.csv",
                    _frame_bytes(lambda f: f.assign(mean_radius="large")), r"mean_radius"),
    "empty file": ("cancer_20260303_000000.csv", b"", r"empty"),
    "not a CSV": ("cancer_20260304_000000.csv", PNG, r"CSV|text|decod"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_batch_files_are_refused_and_nothing_changes(api, project, case):
    name, data, reason = BAD_FILES[case]
    before = listing(api, project)
    response = api.upload(project["id"], "training_batch_files/", [(name, data)])
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_failed"
    assert name in error["message"]
    assert re.search(reason, error["message"], re.IGNORECASE), error["message"]
    assert listing(api, project) == before


def test_one_bad_file_in_a_batch_uploads_none(api, project):
    before = listing(api, project)
    good = batch_files(cancer_frame().iloc[100:200], "cancer", 2)
    response = api.upload(project["id"], "training_batch_files/",
                          [*good, ("cancer_20260305_000000.csv", b"")])
    assert response.status_code == 422
    assert [p["file"] for p in response.get_json()["error"]["details"]["files"]] == [
        "cancer_20260305_000000.csv"]
    assert listing(api, project) == before


# A backslash inside a multipart file name does not survive the form encoding itself, so
# backslashes are tried through the folder parameter below.
@pytest.mark.parametrize("name", ["../escape.csv", "bad\x01name.csv", "..",
                                  ".trainyard-upload-x"])
def test_unsafe_file_names_are_refused(api, project, name):
    before = listing(api, project, "")
    response = api.upload(project["id"], "", [(name, b"a,b\n1,2\n")])
    assert response.status_code in (400, 422), response.get_json()
    assert response.get_json()["error"]["message"]
    assert listing(api, project, "") == before


@pytest.mark.parametrize("folder", ["../", "/etc/", "training_batch_files/../../",
                                    "training_batch_files\\x/", "models/", "archive/x/"])
def test_unsafe_or_system_folders_are_refused(api, project, folder):
    response = api.upload(project["id"], folder, [("x.txt", b"hello")])
    assert response.status_code in (400, 403)
    assert response.get_json()["error"]["message"]


def test_schema_form_without_target_shows_the_error_and_creates_nothing(admin_client, api):
    definition = cancer_project()
    schema = dict(definition["schema"], target=None)
    import json

    form = {"name": "No target", "problem_type": "classification", "description": "",
            "recipients": "", "filename_pattern": schema["filename_pattern"],
            "schema_json": json.dumps(schema), "csrf_token": admin_client.csrf_token}
    response = admin_client.post("/projects/new", data=form)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'data-error-for="target"' in html and "Choose the target column" in html
    # the page keeps what was typed
    assert "No target" in html
    assert api.get("/projects").get_json()["total"] == 0


@pytest.mark.parametrize("change, field", [
    ({"schema": None}, "schema"),
    ({"name": ""}, "name"),
    ({"problem_type": "clustering"}, "problem_type"),
    ({"recipients": ["not-an-address"]}, "recipients"),
    ({"metric": "rmse"}, "metric"),
])
def test_project_api_names_the_wrong_field(api, change, field):
    definition = {**cancer_project(), **change}
    if definition.get("schema") is None:
        definition.pop("schema")
    response = api.post("/projects", json=definition)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]
    assert api.get("/projects").get_json()["total"] == 0


def test_malformed_json_and_wrong_types_get_400(api, project):
    r = api.post("/projects", data="{not json", content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_request"
    r = api.post(f"/projects/{project['id']}/executions", json={"kind": "dance"})
    assert r.status_code == 400
    r = api.post(f"/projects/{project['id']}/executions", json=["train"])
    assert r.status_code == 400
    r = api.get(f"/projects/{project['id']}/executions?page=zero")
    assert r.status_code == 400


def test_predict_without_a_model_says_train_first(api, project):
    r = api.start(project["id"], "predict")
    assert r.status_code == 409
    assert "train it first" in r.get_json()["error"]["message"]


def test_posts_without_csrf_token_are_refused(admin_client, api, project):
    r = admin_client.post("/api/v1/projects", json=cancer_project(name="Sneaky"))
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "csrf_failed"
    r = admin_client.post(f"/projects/{project['slug']}/train", data={})
    assert r.status_code == 400
    assert api.get(f"/projects/{project['id']}/executions").get_json()["total"] == 0


def test_batch_files_stay_put_while_an_execution_holds_the_project(app, api, project):
    """Deleting or moving a batch file, or moving a file into a batch folder, waits for the
    project's execution to end; other files move freely."""
    db = app.extensions["trainyard"].db
    assert db.projects.claim(project["id"], "an-execution")  # held, as a queued run holds it
    batch = listing(api, project)[0][0]
    assert api.upload(project["id"], "notes/", [("a.txt", b"hello")]).status_code == 201
    files = f"/projects/{project['id']}/files"
    refused = [api.delete(f"{files}?path=training_batch_files/{batch}"),
               api.post(f"{files}/move", json={"path": f"training_batch_files/{batch}",
                                               "to": "notes/"}),
               api.post(f"{files}/move", json={"path": "notes/a.txt",
                                               "to": "prediction_batch_files/"})]
    assert [r.status_code for r in refused] == [409, 409, 409]
    assert all("while an execution runs" in r.get_json()["error"]["message"] for r in refused)
    assert api.post(f"{files}/move", json={"path": "notes/a.txt", "to": "",
                                           "name": "b.txt"}).status_code == 200
    assert db.projects.release(project["id"], "an-execution")
    assert api.delete(f"{files}?path=training_batch_files/{batch}").status_code == 204


def _put(api, project, path, data):
    return api.client.put(f"/api/v1/projects/{project['id']}/files/content?path={path}",
                          data=data, headers={"X-CSRFToken": api.client.csrf_token})


def _through_both_upload_paths(api, project, name, data):
    """The answers of a multipart POST and of a raw-body PUT of the same file."""
    posted = api.upload(project["id"], "training_batch_files/", [(name, data)])
    put = _put(api, project, f"training_batch_files/{name}", data)
    return posted, put


def test_a_header_only_file_is_refused_through_post_and_put_alike(api, project):
    """Issue 21 item 9: multipart POST answered 201, PUT 422; the README says no rows is
    refused."""
    before = listing(api, project)
    header = csv_bytes(cancer_frame().iloc[:0])
    for response in _through_both_upload_paths(api, project, "cancer_20260306_000000.csv",
                                               header):
        assert response.status_code == 422, response.get_json()
        assert "no data rows" in response.get_json()["error"]["message"]
    assert listing(api, project) == before


@pytest.mark.parametrize("value", ["inf", "-inf", "1e308", "1" * 400])
def test_out_of_range_floats_are_refused_through_post_and_put_alike(api, project, value):
    """Issue 21 item 9: accepted on upload, then training failed."""
    before = listing(api, project)
    frame = cancer_frame().iloc[:5].astype({"mean_radius": object})
    frame.loc[2, "mean_radius"] = value
    for response in _through_both_upload_paths(api, project, "cancer_20260307_000000.csv",
                                               csv_bytes(frame)):
        assert response.status_code == 422, response.get_json()
        message = response.get_json()["error"]["message"]
        assert "column 'mean_radius': 1 value is out of range in row 3" in message, message
    assert listing(api, project) == before
