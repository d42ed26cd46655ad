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


def _prediction_page(app, api, project, **result) -> str:
    services = app.extensions["trainyard"]
    stored = services.db.projects.get(project["id"])
    output = "prediction_output/run1/predictions.csv"
    services.resolver.files(stored).upload_bytes(
        output, b"mean_radius,prediction,model_version\n1.5,B,1\n2.5,M,1\n")
    return _page(app, api, project, {"output_path": output, "rows": 2, "version": 1, **result},
                 kind="predict")


def test_class_counts_read_as_counts_not_as_a_python_dict(app, api, project):
    """Issue 21 item 13: the summary showed class_counts: {'B': 1, 'M': 1}."""
    html = _prediction_page(app, api, project, summary={"class_counts": {"B": 1, "M": 1}})
    assert "Predicted classes: B 1 · M 1" in html
    assert "{&#39;B&#39;" not in html and "{'B'" not in html


def test_the_drift_panel_says_when_there_were_too_few_rows_to_judge(app, api, project):
    """Issue 21 item 13: it said "No feature drifted" while the log said too few rows."""
    drift = {"rows": 2, "drifted": [], "warnings": [],
             "features": {"mean_radius": {"psi": 0.4, "status": "insufficient_data"}}}
    html = _prediction_page(app, api, project, drift=drift)
    assert "Only 2 rows: too few to judge drift." in html
    assert "No feature drifted" not in html
    judged = {**drift, "rows": 500,
              "features": {"mean_radius": {"psi": 0.01, "status": "ok"}}}
    assert "No feature drifted" in _prediction_page(app, api, project, drift=judged)


def test_the_prediction_table_keeps_model_version_in_view(app, api, project):
    """Issue 21 item 13: a wide table overflowed and hid model_version (the last column):
    it scrolls in its own box and its last column sticks to the right edge."""
    html = _prediction_page(app, api, project)
    assert 'class="table-responsive predictions-scroll"' in html
    css = app.test_client().get("/static/css/app.css").get_data(as_text=True)
    assert "#predictions tr > :last-child { position: sticky; right: 0;" in css
