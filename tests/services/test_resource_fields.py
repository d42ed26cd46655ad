"""Issue 20, Deliver 1: a plain field added to a project is one declaration. The test declares a
throw-away field on ``services.resources.ProjectSettings`` (what a developer writes in its class
body) and sees it accepted and refused by the API, answered, stored, in the OpenAPI document
and on the project settings page, with no other edit."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import Field
from pydantic.fields import FieldInfo

from controllers import openapi
from entity.project import DOCUMENT_KEYS, BatchSchema, Project
from services import resources
from tests.factories import cancer_project

#: the throw-away field, as it would be declared: ``review_days: int | None = Field(...)``
NAME, ANNOTATION = "review_days", int | None
DECLARATION = Field(None, ge=1, le=365, title="Review every (days)",
                    description="How often the owners look at the project again.")


@pytest.fixture
def declared(monkeypatch):
    """``ProjectSettings`` with the throw-away field declared, as if in its class body: the
    models that take the settings in (by inheritance, or as page items) are rebuilt, as Python
    would have built them from the edited source, and put back afterwards."""
    settings = resources.ProjectSettings
    takers = [resources.ProjectInput, resources.Project]
    for model in (settings, *takers):
        fields = {**model.model_fields, NAME: FieldInfo.from_annotated_attribute(
            ANNOTATION, DECLARATION)}
        monkeypatch.setattr(model, "__pydantic_fields__", fields)
        model.model_rebuild(force=True)
    resources.PAGES["Project"].model_rebuild(force=True)
    monkeypatch.setattr(openapi, "SCHEMAS", resources.components())
    yield
    monkeypatch.undo()
    for model in (settings, *takers, resources.PAGES["Project"]):
        model.model_rebuild(force=True)


def test_a_field_declared_once_is_taken_answered_stored_documented_and_shown(
        declared, api, admin_client, app):
    created = api.post("/projects", json=cancer_project(review_days=30))
    assert created.status_code == 201, created.get_json()
    project = created.get_json()
    assert project[NAME] == 30

    wrong = api.post("/projects", json=cancer_project("Other", review_days="soon"))
    assert wrong.status_code == 422
    assert NAME in wrong.get_json()["error"]["details"]
    out_of_range = api.patch(f"/projects/{project['id']}", json={NAME: 1000})
    assert out_of_range.status_code == 422
    assert NAME in out_of_range.get_json()["error"]["details"]

    assert api.patch(f"/projects/{project['id']}", json={NAME: 7}).get_json()[NAME] == 7
    assert api.get(f"/projects/{project['id']}").get_json()[NAME] == 7
    assert api.get("/projects").get_json()["items"][0][NAME] == 7
    db = app.extensions["trainyard"].db
    assert db.projects.get(project["id"]).settings[NAME] == 7  # read back from the store

    schemas = api.get("/openapi.json").get_json()["components"]["schemas"]
    for component in ("Project", "ProjectInput"):
        described = schemas[component]["properties"][NAME]
        assert described["description"] == DECLARATION.description
        assert {"type": "integer", "minimum": 1, "maximum": 365} in described["anyOf"]

    page = admin_client.get(f"/projects/{project['slug']}/settings").get_data(as_text=True)
    field = re.search(rf'<input[^>]*name="{NAME}"[^>]*>', page)
    assert field and 'type="number"' in field.group() and 'value="7"' in field.group()
    assert "Review every (days)" in page and DECLARATION.description in page
    form = {"csrf_token": admin_client.csrf_token, "problem_type": project["problem_type"],
            "schema_json": json.dumps(project["schema"]), NAME: "14"}
    assert admin_client.post(f"/projects/{project['slug']}/settings",
                             data=form).status_code == 302
    assert db.projects.get(project["id"]).settings[NAME] == 14
    refused = admin_client.post(f"/projects/{project['slug']}/settings",
                                data=form | {NAME: "often"})
    assert refused.status_code == 422
    assert f'data-error-for="{NAME}"' in refused.get_data(as_text=True)


def test_the_form_shows_every_declared_setting_and_the_document_keys_are_its_fields():
    """A project without settings holds only the entity's own fields (which DOCUMENT_KEYS
    names), and a stored key it does not know is kept as a setting."""
    assert [f["name"] for f in resources.plain_fields()] == \
        list(resources.ProjectSettings.model_fields)
    project = Project(name="p", slug="p", problem_type="regression", owner_id="u",
                      schema=BatchSchema("^a$", [], None))
    assert set(project.to_document()) == DOCUMENT_KEYS
    loaded = Project.from_document({**project.to_document(), "colour": "blue"})
    assert loaded.settings == {"colour": "blue"}
    assert loaded.to_public()["colour"] == "blue"
