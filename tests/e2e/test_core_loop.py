"""The core loop over real HTTP: first-run admin, project with schema, upload, train, predict,
download. The server is the real app on a real threaded WSGI server; training runs in real worker
processes."""

from __future__ import annotations

import io

import pandas as pd
import pytest
import requests

from tests.conftest import ADMIN, wait_until
from tests.factories import batch_files, cancer_frame, cancer_project, csv_bytes

pytestmark = pytest.mark.slow


class Api:
    """A logged-in JSON API session against the live server."""

    def __init__(self, base: str):
        self.base = base + "/api/v1"
        self.http = requests.Session()
        self.csrf = None

    def setup(self):
        r = self.http.post(f"{self.base}/setup", json=ADMIN, timeout=30)
        assert r.status_code == 201, r.text
        self.csrf = r.json()["csrf_token"]
        return r.json()["user"]

    def call(self, method: str, path: str, **kwargs):
        headers = kwargs.pop("headers", {})
        headers["X-CSRFToken"] = self.csrf
        return self.http.request(method, self.base + path, headers=headers, timeout=60, **kwargs)

    def wait_final(self, project_id: str, execution_id: str, timeout: float = 180) -> dict:
        def final():
            body = self.call("GET", f"/projects/{project_id}/executions/{execution_id}").json()
            return body if body["status"] not in ("queued", "running") else None
        return wait_until(final, timeout=timeout, interval=0.3, message="the execution to end")


def test_core_loop_over_http(live_server):
    api = Api(live_server.url)
    api.setup()

    created = api.call("POST", "/projects", json=cancer_project())
    assert created.status_code == 201, created.text
    project = created.json()
    pid = project["id"]

    # the six standard folders exist from the start
    root = api.call("GET", f"/projects/{pid}/files").json()
    assert set(root["folders"]) == {"training_batch_files/", "prediction_batch_files/",
                                    "archive/", "models/", "prediction_output/", "feedback/"}

    frame = cancer_frame()
    train_part, predict_part = frame.iloc[:480], frame.iloc[480:]
    uploads = batch_files(train_part, "cancer", 3)
    r = api.call("POST", f"/projects/{pid}/files", params={"path": "training_batch_files/"},
                 files=[("files", (name, data, "text/csv")) for name, data in uploads])
    assert r.status_code == 201, r.text
    assert len(r.json()["uploaded"]) == 3

    r = api.call("POST", f"/projects/{pid}/executions", json={"kind": "train"})
    assert r.status_code == 202, r.text
    training = api.wait_final(pid, r.json()["id"])
    assert training["status"] == "succeeded", training
    metrics = training["result"]["metrics"]
    assert metrics["accuracy"] > 0.9
    assert training["duration_seconds"] > 0

    models = api.call("GET", f"/projects/{pid}/models").json()["items"]
    assert [m["version"] for m in models] == [1] and models[0]["active"]
    # the model's files are in the project's storage, with their checksums
    stored = api.call("GET", f"/projects/{pid}/files", params={"path": "models/v1/"}).json()
    names = {f["name"] for f in stored["files"]}
    assert "model.joblib" in names and "manifest.json" in names

    # predict: files without the target column
    prediction_files = [(name, csv_bytes(part.drop(columns=["diagnosis"])))
                        for name, part in [("cancer_20270101_000000.csv", predict_part.iloc[:50]),
                                           ("cancer_20270102_000000.csv", predict_part.iloc[50:])]]
    r = api.call("POST", f"/projects/{pid}/files", params={"path": "prediction_batch_files/"},
                 files=[("files", (n, d, "text/csv")) for n, d in prediction_files])
    assert r.status_code == 201, r.text
    r = api.call("POST", f"/projects/{pid}/executions", json={"kind": "predict"})
    assert r.status_code == 202, r.text
    prediction = api.wait_final(pid, r.json()["id"])
    assert prediction["status"] == "succeeded", prediction
    assert prediction["result"]["rows"] == len(predict_part)

    # the output, as a paginated table and as a CSV download
    page = api.call("GET", f"/projects/{pid}/executions/{prediction['id']}/output",
                    params={"page": 1, "per_page": 20}).json()
    assert page["total_rows"] == len(predict_part) and len(page["rows"]) == 20
    download = api.call("GET", f"/projects/{pid}/executions/{prediction['id']}/output.csv")
    assert download.status_code == 200
    output = pd.read_csv(io.BytesIO(download.content))
    assert len(output) == len(predict_part)
    assert output["prediction"].notna().all()
    assert set(output["prediction"]) <= {"malignant", "benign"}
    probability_columns = [c for c in output.columns if c.startswith("probability_")]
    assert len(probability_columns) == 2
    assert (output[probability_columns].sum(axis=1).round(6) == 1).all()
    # the predictions are good ones, not just well-formed
    truth = predict_part["diagnosis"].to_numpy()
    assert (output["prediction"].to_numpy() == truth).mean() > 0.85

    # the output lives under prediction_output/<execution>/
    listed = api.call("GET", f"/projects/{pid}/files",
                      params={"path": f"prediction_output/{prediction['id']}/"}).json()
    assert [f["name"] for f in listed["files"]] == ["predictions.csv"]

    # every execution sent its start and success mails (kept in the outbox: no MAIL_SERVER)
    mails = api.call("GET", "/outbox", params={"per_page": 50}).json()["items"]
    subjects = [m["subject"] for m in mails]
    for execution in (training, prediction):
        assert any(execution["id"] in s and s.endswith("started") for s in subjects)
        assert any(execution["id"] in s and s.endswith("succeeded") for s in subjects)
    assert all(m["recipients"] == [ADMIN["email"], "team@example.com"] for m in mails)

    # the logs of both executions stay readable, in order, stage by stage
    logs = api.call("GET", f"/projects/{pid}/executions/{training['id']}/logs").json()["items"]
    assert [line["seq"] for line in logs] == list(range(1, len(logs) + 1))
    stages = {line["stage"] for line in logs}
    assert {"validating", "loading", "preprocessing", "training", "evaluating",
            "saving"} <= stages
