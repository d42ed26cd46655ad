"""Live logs through a real python-socketio client (websocket transport) on a real server, during
a real training: lines arrive in order, and a client joining late first gets what it missed."""

from __future__ import annotations

import json
import threading

import pytest
import requests
import socketio

from tests.conftest import ADMIN, wait_until
from tests.factories import batch_files, cancer_project, cancer_rows

pytestmark = pytest.mark.slow
FINAL = {"succeeded", "failed", "cancelled", "interrupted"}


class Watcher:
    """A Socket.IO client that records the log lines and execution states it receives."""

    def __init__(self, url: str, cookies: str):
        self.lines: list[dict] = []
        self.states: list[dict] = []
        self.errors: list[dict] = []
        self.finished = threading.Event()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("log", self.lines.append)
        self.sio.on("join_error", self.errors.append)
        self.sio.on("execution", self._state)
        self.sio.connect(url, headers={"Cookie": cookies}, transports=["websocket"],
                         wait_timeout=10)

    def _state(self, state):
        self.states.append(state)
        if state["status"] in FINAL:
            self.finished.set()

    def join(self, project_id: str, execution_id: str | None = None, after_seq: int = 0):
        self.sio.emit("join", {"project_id": project_id, "execution_id": execution_id,
                               "after_seq": after_seq})

    def seqs(self, execution_id: str) -> list[int]:
        """Sequence numbers as the browser renders them: each once, in seq order (a live line
        may arrive before the replay of the lines missed before it; static/js/live_log.js
        puts each in its place)."""
        return sorted({line["seq"] for line in self.lines
                       if line["execution_id"] == execution_id})

    def close(self):
        self.sio.disconnect()


def _login(url: str) -> tuple[requests.Session, str]:
    http = requests.Session()
    token = http.post(f"{url}/api/v1/setup", json=ADMIN, timeout=30).json()["csrf_token"]
    http.headers["X-CSRFToken"] = token
    cookies = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    return http, cookies


def test_watchers_get_every_line_in_order_even_when_joining_late(live_server):
    http, cookies = _login(live_server.url)
    api = f"{live_server.url}/api/v1"
    project = http.post(f"{api}/projects", json=cancer_project(), timeout=30).json()
    big = cancer_rows(6000, seed=2)
    files = [("files", (n, d, "text/csv")) for n, d in batch_files(big, "cancer", 3)]
    assert http.post(f"{api}/projects/{project['id']}/files",
                     params={"path": "training_batch_files/"}, files=files,
                     timeout=60).status_code == 201

    early = Watcher(live_server.url, cookies)
    early.join(project["id"])
    execution = http.post(f"{api}/projects/{project['id']}/executions", json={"kind": "train"},
                          timeout=30).json()
    logs_url = f"{api}/projects/{project['id']}/executions/{execution['id']}/logs"
    # join late: once the training has already written several lines
    wait_until(lambda: len(http.get(logs_url, timeout=5).json()["items"]) >= 6,
               message="a few log lines")
    late = Watcher(live_server.url, cookies)
    late.join(project["id"], execution["id"], after_seq=0)
    try:
        assert early.finished.wait(180) and late.finished.wait(30)
        wait_until(lambda: len(late.seqs(execution["id"])) == len(
            http.get(logs_url, timeout=5).json()["items"]), timeout=10,
            message="the last lines to arrive")
        stored = [line["seq"] for line in http.get(logs_url, timeout=5).json()["items"]]
        assert stored == list(range(1, len(stored) + 1))
        # the early watcher saw every line after the moment it joined, in order
        early_seqs = early.seqs(execution["id"])
        assert early_seqs == stored[stored.index(early_seqs[0]):]
        # the late one got the missed lines first, then the live ones: all of them, in order
        assert late.seqs(execution["id"]) == stored
        assert late.states[-1]["status"] == "succeeded"
        messages = [line["message"] for line in late.lines]
        assert any("is now the active model" in m for m in messages)
    finally:
        early.close()
        late.close()


def test_anonymous_sockets_and_strangers_are_refused(live_server, app):
    with pytest.raises(socketio.exceptions.ConnectionError):
        socketio.Client(reconnection=False).connect(live_server.url, transports=["websocket"],
                                                    wait_timeout=5)
    http, cookies = _login(live_server.url)
    watcher = Watcher(live_server.url, cookies)
    try:
        watcher.join("no-such-project")
        wait_until(lambda: watcher.errors, timeout=10, message="the join error")
        assert watcher.errors[0]["message"] == "No such project."
    finally:
        watcher.close()


def test_server_sent_events_stream_the_log_to_the_end(live_server):
    """The plain-HTTP fallback: an API client without Socket.IO follows the log as SSE."""
    http, _ = _login(live_server.url)
    api = f"{live_server.url}/api/v1"
    project = http.post(f"{api}/projects", json=cancer_project(), timeout=30).json()
    files = [("files", (n, d, "text/csv")) for n, d in batch_files(cancer_rows(800), "cancer", 2)]
    http.post(f"{api}/projects/{project['id']}/files", params={"path": "training_batch_files/"},
              files=files, timeout=60).raise_for_status()
    execution = http.post(f"{api}/projects/{project['id']}/executions", json={"kind": "train"},
                          timeout=30).json()
    url = f"{api}/projects/{project['id']}/executions/{execution['id']}/events"
    events, data = [], None
    with http.get(url, stream=True, timeout=180) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for raw in response.iter_lines(decode_unicode=True):
            if raw.startswith("event: "):
                event = raw[7:]
            elif raw.startswith("data: "):
                data = raw[6:]
                events.append((event, json.loads(data)))
    seqs = [payload["seq"] for event, payload in events if event == "log"]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 10
    states = [payload["status"] for event, payload in events if event == "execution"]
    assert states[-1] == "succeeded"
