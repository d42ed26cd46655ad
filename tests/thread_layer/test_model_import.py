"""Bringing in a model trained elsewhere (issue 23, deliverable 5): a skops file is checked
(loads with trusted types only, predicts the sample, outputs of the problem's shape) and
becomes a model version like a trained one, served in real time and in batch; a file with an
untrusted type, a pickle, or a model whose outputs do not fit is refused with its reason, and
nothing becomes a version."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.factories import batch_files, cancer_frame, cancer_project, csv_bytes

pytestmark = pytest.mark.slow  # import executions run in worker processes
FRAME = cancer_frame()
FEATURES = [c for c in FRAME.columns if c not in ("diagnosis", "sample_id")]


class Untrusted:
    """A class of the uploader's own: skops does not trust it, so the file is never loaded."""

    def __init__(self):
        self.weights = [1.0]


def skops_file(model) -> bytes:
    return sio.dumps(model)


def on_frame():
    """A pipeline fitted on a DataFrame of the schema's columns (by name)."""
    pipeline = make_pipeline(ColumnTransformer([("scale", StandardScaler(), FEATURES)]),
                             LogisticRegression(max_iter=500))
    return pipeline.fit(FRAME[FEATURES], FRAME["diagnosis"])


def on_array():
    """A classifier fitted on a bare array of the feature columns, in the schema's order."""
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(FRAME[FEATURES].to_numpy(),
                                                                    FRAME["diagnosis"])


@pytest.fixture
def project(api):
    created = api.create_project(cancer_project())
    response = api.upload(created["id"], "training_batch_files/", batch_files(FRAME, "cancer", 2))
    assert response.status_code == 201, response.get_json()
    return created


def _import(api, project, data: bytes, name: str = "model.skops", sample=None):
    files = {"model": (io.BytesIO(data), name)}
    if sample is not None:
        files["sample"] = (io.BytesIO(sample[1]), sample[0])
    return api.post(f"/projects/{project['id']}/models/import", data=files,
                    content_type="multipart/form-data")


def _versions(api, project) -> list:
    return api.get(f"/projects/{project['id']}/models").get_json()["items"]


@pytest.mark.parametrize("build", [on_frame, on_array], ids=["by-name", "by-position"])
def test_a_good_model_becomes_a_version_served_in_real_time_and_in_batch(api, project, build):
    response = _import(api, project, skops_file(build()))
    assert response.status_code == 202, response.get_json()
    done = api.wait_final(project["id"], response.get_json()["id"])
    assert done["status"] == "succeeded", done
    [version] = _versions(api, project)
    assert version["origin"]["kind"] == "imported" and version["origin"]["format"] == "skops"
    assert version["active"] is True  # the project had no model
    assert "model.skops" in version["artifacts"] and "model.joblib" not in version["artifacts"]
    assert version["metrics"]["accuracy"] > 0.9  # on the training files it was checked on
    assert version["metrics"]["evaluated_on"].startswith("569 rows of training_batch_files/")

    rows = FRAME.drop(columns=["diagnosis"]).head(20)
    records = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
               for r in rows.to_dict(orient="records")]
    answer = api.post(f"/projects/{project['id']}/predict", json={"records": records})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    expected = build().predict(rows[FEATURES] if build is on_frame else rows[FEATURES].to_numpy())
    assert body["predictions"] == list(expected)
    assert set(body["probabilities"][0]) == {"benign", "malignant"}

    assert api.upload(project["id"], "prediction_batch_files/", [
        ("cancer_20270101_000000.csv", csv_bytes(rows))]).status_code == 201
    predicted = api.start(project["id"], "predict")
    assert predicted.status_code == 202
    assert api.wait_final(project["id"], predicted.get_json()["id"])["status"] == "succeeded"


def test_a_file_naming_an_untrusted_type_is_refused_with_the_list_and_nothing_stored(api,
                                                                                    project):
    response = _import(api, project, skops_file(Untrusted()))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"]["untrusted_types"] == [f"{__name__}.Untrusted"]
    assert "not trusted" in error["message"]
    root = api.get(f"/projects/{project['id']}/files").get_json()
    assert "model_imports/" not in root["folders"]
    assert api.get(f"/projects/{project['id']}/executions").get_json()["total"] == 0


@pytest.mark.parametrize("name, data, field_says", [
    ("model.pkl", pickle.dumps(on_array()), "skops.io.dump"),
    ("model.joblib", b"anything", "skops.io.dump"),
    ("model.onnx.txt", b"anything", "skops file"),
    ("model.skops", b"PK\x03\x04 not really a zip", "could not be read"),
])
def test_pickles_other_formats_and_broken_files_are_refused_at_once(api, project, name, data,
                                                                   field_says):
    response = _import(api, project, data, name)
    assert response.status_code == 422, response.get_json()
    assert field_says in response.get_json()["error"]["details"]["model"]
    assert _versions(api, project) == []


@pytest.mark.parametrize("build, reason", [
    (lambda: LinearRegression().fit(FRAME[FEATURES].to_numpy(),
                                    (FRAME["diagnosis"] == "benign").astype(float)),
     "needs a classifier"),
    (lambda: LogisticRegression().fit(np.zeros((4, 3)), ["a", "b", "a", "b"]),
     "another number of columns"),
], ids=["regressor-for-classification", "wrong-feature-count"])
def test_a_model_whose_outputs_do_not_fit_fails_with_the_reason(api, project, build, reason):
    response = _import(api, project, skops_file(build()))
    assert response.status_code == 202, response.get_json()
    done = api.wait_final(project["id"], response.get_json()["id"])
    assert done["status"] == "failed"
    logs = api.get(f"/projects/{project['id']}/executions/{done['id']}/logs").get_json()
    assert reason in done["error"] + " ".join(line["message"] for line in logs["items"])
    assert _versions(api, project) == []


def test_a_sample_file_of_the_schema_is_used_when_given(api, project):
    sample = ("cancer_20270101_000000.csv", csv_bytes(FRAME.iloc[:100]))
    response = _import(api, project, skops_file(on_array()), sample=sample)
    assert response.status_code == 202, response.get_json()
    done = api.wait_final(project["id"], response.get_json()["id"])
    assert done["status"] == "succeeded", done
    [version] = _versions(api, project)
    assert version["metrics"]["evaluated_on"] == (
        "100 rows of model_imports/" + version["origin"]["file"].split("/")[1] +
        "/cancer_20270101_000000.csv")

