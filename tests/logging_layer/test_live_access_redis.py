"""Issue 21, finding 3, across processes: access ended through one web process takes the
sockets out in another, over a real Redis message queue (a redis-server of the test's own)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from werkzeug.security import generate_password_hash

from entity.user import User
from tests.conftest import ADMIN, free_port, wait_until
from tests.logging_layer.test_live_access import (
    PASSWORD,
    Watcher,
    _cookies,
    _remove,
    _scene,
    _session,
)
from tests.processes import stop_process_group
from tests.thread_layer import test_celery

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
redis_url = test_celery.redis_url  # the fixture: a redis-server on a free port, stopped by PID


@pytest.fixture
def second_web_process(app_config, redis_url, tmp_path):
    """``python -m app`` on the same database, storage and Redis message queue: another web
    process, as behind a load balancer."""
    port = free_port()
    env = {**os.environ, "DATA_DIR": app_config["DATA_DIR"],
           "INSTANCE_DIR": app_config["INSTANCE_DIR"], "TRAINYARD_PORT": str(port),
           "SOCKETIO_MESSAGE_QUEUE": app_config["SOCKETIO_MESSAGE_QUEUE"],
           "LOG_LEVEL": "WARNING"}
    log = open(tmp_path / "web2.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy():
        try:
            return requests.get(f"{url}/healthz", timeout=5).ok
        except requests.RequestException:  # not listening yet, or busy starting
            return False
    try:
        wait_until(healthy, timeout=60, message="the second web process")
        yield url
    finally:
        stop_process_group(proc)
        log.close()


@pytest.fixture
def app_config(app_config, redis_url):
    return {**app_config, "SOCKETIO_MESSAGE_QUEUE": f"{redis_url}/1"}


def test_access_ended_in_one_process_takes_the_sockets_out_in_another(app, live_server,
                                                                      second_web_process):
    """The member is removed and the other user deactivated through this process; their
    sockets live in the second process, and the line comes from this one, all over Redis."""
    scene = _scene(app, live_server)
    other = app.extensions["trainyard"].db.users.add(User(
        email="other@example.com", name="Other", role="member",
        password_hash=generate_password_hash(PASSWORD)))
    assert scene.admin.put(f"{scene.url}/api/v1/projects/{scene.project['id']}/members",
                           json={"email": other.email, "role": "viewer"},
                           timeout=30).status_code == 200
    far = second_web_process
    pid = scene.project["id"]
    removed = Watcher(far, pid, cookies=_cookies(_session(far, scene.user.email, PASSWORD)))
    deactivated = Watcher(far, pid, cookies=_cookies(_session(far, other.email, PASSWORD)))
    control = Watcher(far, pid, cookies=_cookies(_session(far, ADMIN["email"],
                                                          ADMIN["password"])))
    watchers = (removed, deactivated, control)
    try:
        def all_got(message):
            scene.line(message)
            return all(message in w.lines for w in watchers)
        wait_until(lambda: all_got("before"), timeout=20, message="the watchers in the room")
        assert _remove(scene).status_code == 204
        assert scene.admin.patch(f"{scene.url}/api/v1/users/{other.id}", timeout=30,
                                 json={"active": False}).status_code == 200
        wait_until(lambda: removed.errors, timeout=10, message="the refused rejoin")
        assert deactivated.gone.wait(10), "the deactivated user's socket stayed connected"
        wait_until(lambda: all_got("after") or "after" in control.lines, timeout=10,
                   message="the control's line")
        assert removed.errors == ["No such project."] and removed.sio.connected
        assert "after" not in removed.lines and "after" not in deactivated.lines
    finally:
        for watcher in watchers:
            watcher.close()
