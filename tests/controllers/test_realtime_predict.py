"""Real-time prediction over HTTP with an API token: records validated against the model's
schema, probabilities, usage counters, and a promotion in the middle of a stream of concurrent
requests (every answer comes from the old or the new version; none fails)."""

from __future__ import annotations

import threading

import pytest
import requests

from tests.conftest import ADMIN, wait_until
from tests.factories import batch_files, cancer_frame, cancer_project

pytestmark = pytest.mark.slow


def records(n: int, start: int = 0) -> list[dict]:
    frame = cancer_frame().drop(columns=["diagnosis"]).iloc[start:start + n]
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


@pytest.fixture
def trained(live_server):
    """A project with two trained versions, and a read-write API token."""
    http = requests.Session()
    csrf = http.post(f"{live_server.url}/api/v1/setup", json=ADMIN, timeout=30).json()
    http.headers["X-CSRFToken"] = csrf["csrf_token"]
    token = http.post(f"{live_server.url}/api/v1/tokens",
                      json={"name": "stream", "scope": "write"}, timeout=30).json()["token"]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    base = f"{live_server.url}/api/v1"
    project = api.post(f"{base}/projects", json=cancer_project(), timeout=30).json()
    files = [("files", (n, d, "text/csv")) for n, d in batch_files(cancer_frame(), "cancer", 2)]
    api.post(f"{base}/projects/{project['id']}/files", params={"path": "training_batch_files/"},
             files=files, timeout=60).raise_for_status()
    for _ in range(2):
        execution = api.post(f"{base}/projects/{project['id']}/executions",
                             json={"kind": "train"}, timeout=30).json()
        url = f"{base}/projects/{project['id']}/executions/{execution['id']}"
        done = wait_until(lambda u=url: (lambda b: b if b["status"] not in ("queued", "running")
                                         else None)(api.get(u, timeout=10).json()),
                          timeout=180, message="training")
        assert done["status"] == "succeeded", done
    return api, base, project


def test_records_are_predicted_with_probabilities_and_counted(trained):
    api, base, project = trained
    url = f"{base}/projects/{project['id']}/predict"
    one = api.post(url, json={"records": records(1)}, timeout=30)
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["rows"] == 1 and body["model_version"] in (1, 2)
    assert body["predictions"][0] in ("malignant", "benign")
    assert set(body["probabilities"][0]) == {"malignant", "benign"}
    assert sum(body["probabilities"][0].values()) == pytest.approx(1, abs=1e-5)

    many = api.post(url, json=records(50, start=100), timeout=30).json()
    truth = cancer_frame()["diagnosis"].iloc[100:150].tolist()
    assert sum(p == t for p, t in zip(many["predictions"], truth, strict=True)) >= 45

    chosen = api.post(url, json={"records": records(2), "version": 1}, timeout=30).json()
    assert chosen["model_version"] == 1

    bad = records(2)
    del bad[0]["mean_radius"]
    bad[1]["mean_texture"] = "rough"
    bad[1]["colour"] = "red"
    refused = api.post(url, json={"records": bad}, timeout=30)
    assert refused.status_code == 422
    rows = refused.json()["error"]["details"]["rows"]
    assert "mean_radius" in rows["0"] and "colour" in rows["1"]
    assert api.post(url, json={"records": bad[:1] and [{**records(1)[0],
                                                         "mean_texture": "rough"}]},
                    timeout=30).status_code == 422
    assert api.post(url, data="not json", timeout=30).status_code == 400
    assert api.post(url, json={"records": []}, timeout=30).status_code == 422
    assert api.post(url, json={"records": records(1), "version": 9}, timeout=30).status_code \
        == 404

    usage = api.get(f"{base}/projects/{project['id']}/usage", timeout=30).json()["versions"]
    total = sum(v["requests"] for v in usage.values())
    assert total >= 6 and sum(v["errors"] for v in usage.values()) >= 3
    assert any(v["latency_ms"].get("p99") for v in usage.values())


def test_promote_during_a_stream_never_fails_a_request(trained):
    api, base, project = trained
    url = f"{base}/projects/{project['id']}/predict"
    before = api.get(f"{base}/projects/{project['id']}", timeout=30).json()["active_version"]
    after = 1 if before == 2 else 2
    answers: list[tuple[int, int | None]] = []
    stop = threading.Event()

    def client():
        session = requests.Session()
        session.headers.update(api.headers)
        while not stop.is_set():
            response = session.post(url, json={"records": records(1)}, timeout=30)
            answers.append((response.status_code, response.json().get("model_version")))

    workers = [threading.Thread(target=client) for _ in range(6)]
    for worker in workers:
        worker.start()
    wait_until(lambda: len(answers) >= 24, timeout=60, interval=0.05,
               message="the stream of requests to be under way")
    promoted = api.post(f"{base}/projects/{project['id']}/models/{after}/promote", timeout=30)
    assert promoted.status_code == 200
    switched_at = len(answers)
    wait_until(lambda: len(answers) >= max(switched_at + 40, 60), timeout=60, interval=0.05,
               message="requests after the promotion")
    stop.set()
    for worker in workers:
        worker.join(timeout=30)

    assert len(answers) > 50
    assert all(status == 200 for status, _ in answers), {s for s, _ in answers}
    assert {v for _, v in answers} <= {before, after}
    assert answers[0][1] == before
    # once the promotion has answered, requests that start afterwards use the new version
    assert answers[-1][1] == after
    assert all(v == after for _, v in answers[switched_at + 12:])


def test_record_checks_without_a_server():
    """The record checks on their own (no model needed): huge numbers, text in numeric
    columns, unknown and missing fields each name the field."""
    from entity.project import BatchSchema
    from exception_layer import ValidationFailed
    from project_library.serving import records_frame

    schema = BatchSchema.from_dict({"filename_pattern": "^x$", "target": "y", "columns": [
        {"name": "a", "type": "float"}, {"name": "n", "type": "integer"},
        {"name": "c", "type": "category"}, {"name": "y", "type": "category"}]})
    frame = records_frame([{"a": 1.5, "n": 2, "c": "x"}, {"a": None, "n": None, "c": None}],
                          schema)
    assert frame["a"].tolist()[0] == 1.5 and frame["n"].tolist()[0] == 2
    for record, field in (({"a": 10**400, "n": 1, "c": "x"}, "a"),
                          ({"a": 1.0, "n": 1.5, "c": "x"}, "n"),
                          ({"a": "wide", "n": 1, "c": "x"}, "a"),
                          ({"a": 1.0, "n": 1}, "c"),
                          ({"a": 1.0, "n": 1, "c": "x", "z": 0}, "z")):
        with pytest.raises(ValidationFailed) as refused:
            records_frame([record], schema)
        assert field in refused.value.details["rows"]["0"]
