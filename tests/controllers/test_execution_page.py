"""The execution page renders what the run reported: the validation of its batch files."""

from __future__ import annotations

import pytest

from entity.execution import Execution
from tests.factories import cancer_project


@pytest.fixture
def project(api):
    return api.create_project(cancer_project())


def _page(app, api, project, result: dict, kind: str = "train") -> str:
    db = app.extensions["trainyard"].db
    owner = db.users.list()[0]
    execution = db.executions.add(Execution(project_id=project["id"], kind=kind,
                                            started_by=owner.id, status="succeeded",
                                            stage="done", progress=100, result=result))
    response = api.client.get(f"/projects/{project['slug']}/executions/{execution.id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_dropped_duplicate_rows_are_counted_on_the_page(app, api, project):
    """Issue 21 item 14: duplicate rows were dropped with a log line only."""
    html = _page(app, api, project, {"version": 1, "algorithm": "random_forest",
                                     "metrics": {}, "validation": [
        {"name": "training_batch_files/a.csv", "ok": True, "reasons": [], "warnings": [],
         "rows": 8, "columns": 3, "duplicate_rows": 2}]})
    assert "2 duplicates dropped" in html
