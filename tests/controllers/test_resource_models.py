"""The declared models of the API bodies and resources (services.resources): bodies are parsed
by them (types checked, nesting and size limited before anything walks a body), the answers
are dumped through them and the OpenAPI components are generated from them."""

from __future__ import annotations

import pytest

from controllers.openapi import SCHEMAS
from services import resources
from tests.factories import cancer_project

NESTED = "[" * 5000
#: every route that takes a JSON body (path templates filled in by the test)
JSON_ROUTES = [
    ("post", "/projects"), ("patch", "/projects/{project}"),
    ("post", "/projects/{project}/files/move"), ("post", "/projects/{project}/folders"),
    ("post", "/projects/{project}/executions"), ("post", "/projects/{project}/predict"),
    ("put", "/projects/{project}/members"), ("post", "/tokens"), ("post", "/users"),
    ("patch", "/users/{user}"), ("post", "/storage-connections"),
    ("patch", "/storage-connections/{connection}"),
]
PUBLIC_JSON_ROUTES = ["/session", "/setup", "/password-reset"]


@pytest.fixture
def project(api):
    return api.create_project(cancer_project())


def test_deeply_nested_json_is_a_400_on_every_json_route(api, project, client, app):
    """Issue 21, 7: `[` x 5000 answered 500 with a traceback on all 15 JSON routes."""
    user = api.get("/session").get_json()["user"]["id"]
    connection = api.post("/storage-connections", json={
        "name": "spare", "kind": "local", "settings": {"directory": str(app.config["DATA_DIR"])
                                                       + "/spare"}}).get_json().get("id", "x")
    for method, template in JSON_ROUTES:
        path = template.format(project=project["id"], user=user, connection=connection)
        response = getattr(api.client, method)(
            "/api/v1" + path, data=NESTED, content_type="application/json",
            headers={"X-CSRFToken": api.client.csrf_token})
        assert response.status_code == 400, (method, path, response.get_data(as_text=True))
    anonymous = app.test_client()
    for path in PUBLIC_JSON_ROUTES:
        response = anonymous.post("/api/v1" + path, data=NESTED,
                                  content_type="application/json")
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert response.get_json()["error"]["code"]


def test_a_list_where_text_is_expected_is_a_422_naming_the_field(api, project):
    """Issue 21, 7: {"problem_type": ["classification"]} answered 500 on POST and PATCH."""
    created = api.post("/projects", json={**cancer_project(), "name": "Other",
                                          "problem_type": ["classification"]})
    assert created.status_code == 422
    assert "problem_type" in created.get_json()["error"]["details"]
    changed = api.patch(f"/projects/{project['id']}", json={"problem_type": ["regression"]})
    assert changed.status_code == 422
    assert "problem_type" in changed.get_json()["error"]["details"]
    assert api.get(f"/projects/{project['id']}").get_json()["problem_type"] == "classification"


def test_numbers_are_not_taken_for_text(api, project):
    """Issue 21, 12: PATCH stored a description or name of 123 as "123"."""
    response = api.post("/projects", json={**cancer_project(), "name": 123})
    assert response.status_code == 422
    assert "string" in response.get_json()["error"]["details"]["name"]
    response = api.patch(f"/projects/{project['id']}", json={"description": 123})
    assert response.status_code == 422 and "description" in response.get_json()["error"][
        "details"]
    response = api.post("/tokens", json={"name": 123, "scope": "read"})
    assert response.status_code == 422 and "name" in response.get_json()["error"]["details"]
    assert api.get(f"/projects/{project['id']}").get_json()["description"] == \
        project["description"]


def test_a_field_that_cannot_change_is_refused_not_ignored(api, project, app):
    """Issue 21, 12: an editor's forbidden field was silently ignored."""
    for change in ({"storage_connection_id": "elsewhere"}, {"owner_id": "someone"},
                   {"members": {"someone": "owner"}}, {"name": "Renamed"}):
        response = api.patch(f"/projects/{project['id']}", json=change)
        assert response.status_code == 422, change
        assert set(response.get_json()["error"]["details"]) == set(change)
    # the project as read, sent back whole with one change, is taken
    response = api.patch(f"/projects/{project['id']}",
                         json={**project, "description": "Changed"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["description"] == "Changed"


def test_control_characters_in_names_are_refused(api, project):
    """Issue 21, 10: a project named "Inj\\r\\nBcc: ..." broke every mail of the project."""
    response = api.post("/projects", json={**cancer_project(),
                                           "name": "Inj\r\nBcc: evil@example.com"})
    assert response.status_code == 422
    assert "Control characters" in response.get_json()["error"]["details"]["name"]
    assert api.post("/tokens", json={"name": "ci\nbot", "scope": "read"}).status_code == 422
    assert api.get("/projects").get_json()["total"] == 1


def test_a_422_does_not_echo_a_huge_value_back(api, project):
    """Issue 21, 12: a 422 repeated a 3 MB value whole (JSON bodies now stop at 1 MB)."""
    response = api.patch(f"/projects/{project['id']}",
                         json={"recipients": ["x" * 900_000]})
    assert response.status_code == 422
    assert len(response.get_data()) < 2000


def test_answers_and_components_come_from_the_models(api, project):
    document = api.get("/openapi.json").get_json()
    generated = {name: schema for name, schema in document["components"]["schemas"].items()
                 if name not in ("StorageConnection", "StorageConnectionInput",
                                 "ExecutionKind", "ExecutionInput")}
    # the storage ones come from the backends' declared fields, the execution ones from the
    # registry of execution kinds
    assert generated == resources.components()
    assert SCHEMAS == resources.components()
    declared = resources.Project.model_json_schema(by_alias=True, mode="serialization")
    assert set(api.get(f"/projects/{project['id']}").get_json()) <= set(declared["properties"])


def test_the_page_forms_validate_through_the_same_models(admin_client, api):
    """The project form goes through ProjectInput (leniently: its values are text), the
    invitation form through the same account rules as the API."""
    import json

    definition = cancer_project()
    form = {"name": "Inj\r\nBcc: evil@example.com", "problem_type": "classification",
            "description": "", "recipients": "", "time_budget_seconds": "3600",
            "filename_pattern": definition["schema"]["filename_pattern"],
            "schema_json": json.dumps(definition["schema"]),
            "csrf_token": admin_client.csrf_token}
    response = admin_client.post("/projects/new", data=form)
    assert response.status_code == 422
    assert "Control characters" in response.get_data(as_text=True)
    response = admin_client.post("/projects/new", data={**form, "name": "Fine"})
    assert response.status_code == 302
    created = api.get("/projects").get_json()["items"]
    assert [(p["name"], p["time_budget_seconds"]) for p in created] == [("Fine", 3600)]
    response = admin_client.post("/admin/users", data={
        "action": "invite", "email": "new@example.com", "name": "New\nLine", "role": "member",
        "csrf_token": admin_client.csrf_token})
    assert response.status_code == 422
    assert api.post("/users", json={"email": "new@example.com", "name": "New\nLine"}
                    ).status_code == 422


def test_an_unknown_key_is_a_422_naming_it_and_the_closest_known_one(api, project):
    """Issue 26: `file_name_pattern` for `filename_pattern` was dropped in silence."""
    schema = cancer_project()["schema"]
    misspelt = {k: v for k, v in schema.items() if k != "filename_pattern"}
    misspelt["file_name_pattern"] = schema["filename_pattern"]
    created = api.post("/projects", json={**cancer_project(), "name": "Other",
                                          "schema": misspelt})
    assert created.status_code == 422
    assert created.get_json()["error"]["details"]["schema"] == \
        "Unknown field 'file_name_pattern'; did you mean 'filename_pattern'?"
    changed = api.patch(f"/projects/{project['id']}", json={"time_budget_second": 60})
    assert changed.status_code == 422
    assert changed.get_json()["error"]["details"]["time_budget_second"] == \
        "Unknown field 'time_budget_second'; did you mean 'time_budget_seconds'?"
    assert api.get(f"/projects/{project['id']}").get_json()["time_budget_seconds"] is None
    token = api.post("/tokens", json={"name": "ci", "scope": "read", "scopes": "x"})
    assert token.status_code == 422
    assert "did you mean 'scope'" in token.get_json()["error"]["details"]["scopes"]


def test_a_project_without_a_metric_answers_the_default_metric(api, project):
    """Issue 26: a project created without a metric answered `"metric": null`."""
    assert api.get(f"/projects/{project['id']}").get_json()["metric"] == "accuracy"


def test_schema_inference_reads_every_sample_and_proposes_targets(api):
    """Issue 26: types from one sample, and the last column taken as the target."""
    import io

    first = b"weather,amount,wind\nrain,1,3\nsun,2,4\nrain,3,5\n"
    second = b"weather,amount,wind\nsun,999999.375,6\nfog,5,7\n"
    answer = api.client.post(
        "/api/v1/schema/infer", headers={"X-CSRFToken": api.client.csrf_token},
        data={"sample": [(io.BytesIO(first), "w_1.csv"), (io.BytesIO(second), "w_2.csv")]},
        content_type="multipart/form-data")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["schema"]["target"] is None
    types = {c["name"]: c["type"] for c in body["schema"]["columns"]}
    assert types["amount"] == "float"  # from the second file
    assert body["target_proposals"][0]["column"] == "weather"
