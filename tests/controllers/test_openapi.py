"""The OpenAPI document of /api/v1 is generated from the routes, describes every one of them,
validates as OpenAPI 3.1, and the app answers what it says (schemathesis, every operation)."""

from __future__ import annotations

import io

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app import PUBLIC_ENDPOINTS, create_app
from controllers import api
from controllers.openapi import build_document, undocumented
from entity.execution import Execution
from entity.log_record import LogRecord
from entity.model_version import ModelVersion
from tests.factories import batch_files, cancer_frame, cancer_project, csv_bytes

ADMIN = {"email": "admin@example.com", "name": "Ada Admin", "password": "correct horse battery"}
#: examples per operation: bounded so that the whole run stays around a minute
MAX_EXAMPLES = 20


def _route_only_app() -> Flask:
    """The API blueprint on a bare Flask app: enough to generate the document at collection
    time (no database, no storage)."""
    bare = Flask(__name__)
    bare.register_blueprint(api.bp)
    return bare


DOCUMENT = build_document(_route_only_app())
OPERATIONS = [(method.upper(), path) for path, item in DOCUMENT["paths"].items()
              for method in item]


# -- the document ----------------------------------------------------------------------------

def test_every_api_route_is_declared(app):
    """A route without a @spec declaration (or without a docstring) fails here by name."""
    assert undocumented(app) == []


def test_document_is_valid_openapi_and_covers_every_route(client, app):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    rules = {(method, rule.rule) for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("api.")
             for method in rule.methods - {"HEAD", "OPTIONS"}}
    described = {(method.upper(), "/api/v1" + path.replace("{", "<").replace("}", ">"))
                 for path, item in document["paths"].items() for method in item}
    assert described == rules


def test_operations_carry_summaries_schemas_and_error_shapes():
    paths = DOCUMENT["paths"]
    for path, item in paths.items():
        for method, operation in item.items():
            assert operation["summary"], (method, path)
            assert operation["tags"], (method, path)
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path)
    schemas = DOCUMENT["components"]["schemas"]
    assert {"Project", "BatchSchema", "Execution", "LogRecord", "ModelVersion", "User", "Token",
            "StorageConnection", "Error", "ProjectPage"} <= set(schemas)
    created = paths["/projects"]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"] == {"$ref": "#/components/schemas/Project"}
    upload = paths["/projects/{project_id}/files"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    download = paths["/projects/{project_id}/files/content"]["get"]["responses"]["200"]
    assert "application/octet-stream" in download["content"]
    events = paths["/projects/{project_id}/executions/{execution_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert set(DOCUMENT["components"]["securitySchemes"]) == {"bearerAuth", "consumerKey",
                                                              "cookieAuth",
                                                              "csrfHeader"}
    secrets = schemas["StorageConnection"]["properties"]["secrets"]["additionalProperties"]
    assert secrets == {"enum": ["--------", ""]}


def test_public_operations_are_the_public_endpoints(app):
    public = {rule.rule for rule in app.url_map.iter_rules()
              if rule.endpoint.startswith("api.") and rule.endpoint in PUBLIC_ENDPOINTS}
    marked = {"/api/v1" + path.replace("{", "<").replace("}", ">")
              for path, item in DOCUMENT["paths"].items() for operation in item.values()
              # no login: open, or a consumer key (tyc_...) that is no login
              if operation.get("security") in ([], [{"consumerKey": []}])}
    assert marked == public


def test_docs_page_is_served_locally_without_login(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/static/js/api_docs.js" in html and "/api/v1/openapi.json" in html
    assert "<script>" not in html and "https://" not in html  # CSP: no inline or CDN script
    assert client.get("/static/js/api_docs.js").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200


# -- schemathesis against the app --------------------------------------------------------------

@pytest.fixture
def fuzz_app(app_config):
    """An app without execution threads: a started execution stays queued (training is slow
    and is not what this contract test is about); the project then answers 409 to the next."""
    application = create_app(app_config, start_runner=False)
    yield application
    application.extensions["trainyard"].runner.shutdown()
    application.extensions["trainyard"].db.close()


def _seed(app, tmp_path) -> dict:
    """An admin with a token, a project with batch files, a member, a second token, a storage
    connection, a finished prediction with its log and output, and two model versions.

    Returns the bearer header and the ids the path parameters take.
    """
    client = app.test_client()
    session = client.post("/api/v1/setup", json={**ADMIN})
    assert session.status_code == 201, session.get_json()
    csrf = {"X-CSRFToken": session.get_json()["csrf_token"]}
    token = client.post("/api/v1/tokens", json={"name": "fuzz", "scope": "write"}, headers=csrf)
    client.delete("/api/v1/session", headers=csrf)
    bearer = {"Authorization": f"Bearer {token.get_json()['token']}"}
    client = app.test_client()

    def call(method, path, **kwargs):
        response = client.open("/api/v1" + path, method=method, headers=bearer, **kwargs)
        assert response.status_code < 300, (path, response.get_json())
        return response.get_json()

    project = call("POST", "/projects", json=cancer_project())
    files = batch_files(cancer_frame().iloc[:60], "cancer", 2)
    call("POST", f"/projects/{project['id']}/files?path=training_batch_files/",
         data={"files": [(io.BytesIO(data), name) for name, data in files]},
         content_type="multipart/form-data")
    member = call("POST", "/users", json={"email": "member@example.com", "name": "Mo Member"})
    call("PUT", f"/projects/{project['id']}/members",
         json={"email": "member@example.com", "role": "viewer"})
    spare = call("POST", "/tokens", json={"name": "spare", "scope": "read"})
    connection = call("POST", "/storage-connections",
                      json={"name": "Spare disk", "kind": "local",
                            "settings": {"directory": str(tmp_path / "spare")}})

    services = app.extensions["trainyard"]
    with app.app_context():
        stored = services.db.projects.get(project["id"])
        execution = Execution(project_id=project["id"], kind="predict", started_by=member["id"],
                              status="succeeded", stage="done", progress=100,
                              result={"output_path": "prediction_output/seed/predictions.csv"})
        services.db.executions.add(execution)
        for seq, message in enumerate(["Predicting 3 rows.", "Done."], start=1):
            services.db.logs.add(LogRecord(execution_id=execution.id, project_id=project["id"],
                                           seq=seq, level="INFO", stage="done",
                                           message=message))
        services.resolver.files(stored).upload_bytes(
            "prediction_output/seed/predictions.csv", csv_bytes(cancer_frame().iloc[:3]))
        for number in (1, 2):
            services.db.model_versions.add(ModelVersion(
                project_id=project["id"], version=number, execution_id=execution.id,
                algorithm="LogisticRegression", metrics={"accuracy": 0.9 + number / 100},
                problem_type="classification"))
        services.db.projects.set_versions(project["id"], next_version=3, active_version=2)
    return {"headers": bearer,
            "path_parameters": {"project_id": project["id"], "execution_id": execution.id,
                                "version": "1", "user_id": member["id"],
                                "token_id": spare["id"], "connection_id": connection["id"]}}


#: realistic values of the ``path`` query parameter, mixed with generated ones
FOLDERS = ["", "training_batch_files/", "prediction_batch_files/", "archive/", "models/",
           "training_batch_files/2026/", "prediction_output/seed/predictions.csv",
           "training_batch_files/" + batch_files(cancer_frame().iloc[:1], "cancer", 1)[0][0]]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_answers_what_the_document_says(method, path, fuzz_app, tmp_path):
    """Schemathesis generates requests for one operation from the app's own document (valid
    and invalid ones) and checks that the app never answers 5xx and that each answer matches
    the documented schema of its status.

    Every operation is tested, none excluded. Each one gets a fresh app and freshly seeded
    data, so the destructive ones (DELETE /projects/{id}, DELETE /session, revoking a token,
    deactivating a user) cannot break the others. The calls use the bearer token of the admin
    who owns the project: DELETE /session then ends no session, and the CSRF check (cookie
    sessions only) is covered by tests/security. Path parameters are the seeded ids (random
    ids would only ever meet 404); ``path`` query parameters are drawn half of the time from
    real folders. The events stream ends because the seeded execution is finished.
    """
    seeded = _seed(fuzz_app, tmp_path)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)
    operation = schema[path][method]
    names = {p["name"] for p in DOCUMENT["paths"][path][method.lower()].get("parameters", [])}
    path_parameters = {k: v for k, v in seeded["path_parameters"].items() if k in names}
    strategy = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE,
                              path_parameters=path_parameters),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE,
                              path_parameters=path_parameters))
    calls = []

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy, data=st.data())
    def check(case, data):
        if "path" in names and data.draw(st.booleans()):
            case.query = {**(case.query or {}), "path": data.draw(st.sampled_from(FOLDERS))}
        response = case.call_and_validate(headers=seeded["headers"],
                                          checks=[not_a_server_error,
                                                  response_schema_conformance])
        calls.append(response.status_code)

    check()
    assert calls, "schemathesis generated no request"
