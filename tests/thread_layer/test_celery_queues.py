"""Separate queues on a real Redis broker: workers dedicated to trainings or to predictions
(`python -m app worker --queues ...`), a worker's graceful stop handing its execution back, and
the start-up refusal of unknown queues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.factories import batch_files, cancer_frame, cancer_project
from tests.logging_layer.test_live_logs import _login
from tests.processes import stop_process_group
from tests.thread_layer import test_celery
from tests.waiting import wait_until
from thread_layer.celery_queue import parse_queues

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
redis_url = test_celery.redis_url  # the fixture: a redis-server on a free port, stopped by PID
app_config = test_celery.app_config  # the broker and the message queue on that server


@pytest.fixture
def start_worker(app_config, tmp_path):
    """``start_worker(*args, **env)``: a `python -m app worker` process on the test's broker
    and database; every one started is stopped by its process group at the end."""
    started: list[tuple[subprocess.Popen, object]] = []

    def start(*args: str, **extra_env: str) -> subprocess.Popen:
        env = {**os.environ, **{k: str(v) for k, v in app_config.items()
                                if k in ("DATA_DIR", "INSTANCE_DIR", "CELERY_BROKER_URL",
                                         "SOCKETIO_MESSAGE_QUEUE", "HEARTBEAT_SECONDS")},
               "LOG_LEVEL": "WARNING", "MAX_CONCURRENT_EXECUTIONS": "1", **extra_env}
        log = open(tmp_path / f"worker{len(started)}.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([sys.executable, "-m", "app", "worker", *args], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        started.append((proc, log))
        return proc

    yield start
    for proc, log in started:
        if proc.poll() is None:  # not stopped by the test itself
            stop_process_group(proc)
        log.close()


def _project_with_files(http, api: str, name: str, *, predict: bool = False) -> dict:
    project = http.post(f"{api}/projects", json=cancer_project(name), timeout=30).json()
    frame = cancer_frame()
    files = [("files", (n, d, "text/csv")) for n, d in batch_files(frame, "cancer", 2)]
    assert http.post(f"{api}/projects/{project['id']}/files",
                     params={"path": "training_batch_files/"}, files=files,
                     timeout=60).status_code == 201
    if predict:
        rows = frame.drop(columns=["diagnosis"]).head(50)
        files = [("files", ("cancer_20270101_000000.csv", rows.to_csv(index=False).encode(),
                            "text/csv"))]
        assert http.post(f"{api}/projects/{project['id']}/files",
                         params={"path": "prediction_batch_files/"}, files=files,
                         timeout=60).status_code == 201
    return project


def _start(http, api: str, project: dict, kind: str) -> dict:
    response = http.post(f"{api}/projects/{project['id']}/executions", json={"kind": kind},
                         timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def _when(http, api: str, project: dict, execution: dict, done, what: str, timeout=240):
    url = f"{api}/projects/{project['id']}/executions/{execution['id']}"
    return wait_until(lambda: (lambda body: body if done(body) else None)(
        http.get(url, timeout=10).json()), timeout=timeout, interval=0.3, message=what)


def _ran_on(live_server, execution: dict) -> int:
    """The pid of the worker that ran ``execution`` (kept in the database, not in the API)."""
    db = live_server.app.extensions["trainyard"].db
    return db.executions.get(execution["id"]).runner["pid"]


def _ended(body: dict) -> bool:
    return body["status"] not in ("queued", "running")


def test_trainings_and_predictions_go_to_the_workers_of_their_queue(live_server, start_worker):
    http, _cookies = _login(live_server.url)
    api = f"{live_server.url}/api/v1"
    trainer = start_worker("--queues", "train")
    predictor = start_worker("--queues", "predict")
    first = _project_with_files(http, api, "First", predict=True)
    trained = _when(http, api, first, _start(http, api, first, "train"), _ended,
                    "the training worker")
    assert trained["status"] == "succeeded", trained
    assert _ran_on(live_server, trained) == trainer.pid

    second = _project_with_files(http, api, "Second")
    training = _start(http, api, second, "train")
    prediction = _start(http, api, first, "predict")
    predicted = _when(http, api, first, prediction, _ended, "the prediction worker")
    assert predicted["status"] == "succeeded", predicted
    assert _ran_on(live_server, predicted) == predictor.pid  # not behind the training's worker
    trained = _when(http, api, second, training, _ended, "the second training")
    assert trained["status"] == "succeeded" and _ran_on(live_server, trained) == trainer.pid


def test_a_stopped_worker_hands_its_execution_back_and_another_runs_it(live_server,
                                                                       start_worker):
    http, _cookies = _login(live_server.url)
    api = f"{live_server.url}/api/v1"
    project = _project_with_files(http, api, "Handed back")
    workers = {proc.pid: proc for proc in (
        start_worker("--queues", "train", WORKER_STOP_GRACE_SECONDS="0") for _ in range(2))}
    execution = _start(http, api, project, "train")
    _when(http, api, project, execution, lambda b: b["status"] == "running",
          "a worker to start the training", timeout=60)
    first = workers.pop(_ran_on(live_server, execution))
    os.killpg(first.pid, signal.SIGTERM)  # as a service manager stops the worker's group
    assert first.wait(timeout=60) is not None
    url = f"{api}/projects/{project['id']}/executions/{execution['id']}"
    lines = [line["message"] for line in http.get(f"{url}/logs", timeout=10).json()["items"]]
    assert any("goes back to its queue" in line for line in lines), lines

    done = _when(http, api, project, execution, _ended, "the other worker")
    assert done["status"] == "succeeded", done
    assert _ran_on(live_server, done) in workers  # the worker still running took it
    assert requests.get(f"{api}/projects/{project['id']}", cookies=http.cookies,
                        timeout=10).json()["active_version"] == 1
    assert "Interrupted" not in " ".join(
        line["message"] for line in http.get(f"{url}/logs", timeout=10).json()["items"])


@pytest.mark.parametrize("args, env, named", [
    (["--queues", "train,gpu"], {}, "--queues"),
    ([], {"WORKER_QUEUES": "predict,bogus"}, "WORKER_QUEUES"),
])
def test_a_worker_with_unknown_queues_does_not_start(tmp_path, args, env, named):
    broker = "redis://127.0.0.1:9/0"  # never reached: the queues are refused before
    environ = {**os.environ, "DATA_DIR": str(tmp_path / "data"),
               "INSTANCE_DIR": str(tmp_path / "instance"), "LOG_LEVEL": "WARNING",
               "CELERY_BROKER_URL": broker, "SOCKETIO_MESSAGE_QUEUE": broker, **env}
    done = subprocess.run([sys.executable, "-m", "app", "worker", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert named in done.stderr and "the queues are train, predict, monitor" in done.stderr


def test_queue_names_are_parsed_and_checked():
    assert parse_queues(None) == ("train", "predict", "monitor")
    assert parse_queues(" predict , train,predict") == ("predict", "train")
    with pytest.raises(ValueError, match="unknown queue gpu"):
        parse_queues("gpu")
