"""Issue 21, finding 3: live logs stop at once when access ends.

A real python-socketio client (websocket transport) joins a project's room on a real server and
receives its lines; then its access ends in one of the six ways. The line published right after
the HTTP call that ended access must not reach it, while a control watcher still gets it."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
import requests
import socketio
from werkzeug.security import generate_password_hash

from entity.user import User
from logging_layer.execution_logger import project_room
from tests.conftest import ADMIN, wait_until
from tests.factories import cancer_project

pytestmark = pytest.mark.slow
PASSWORD = "watcher password 2026"


class Watcher:
    """A Socket.IO client that rejoins when told its access changed, as the browser does."""

    def __init__(self, url: str, project_id: str, *, cookies: str | None = None,
                 token: str | None = None):
        self.project_id = project_id
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.changes = 0
        self.gone = threading.Event()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("log", lambda record: self.lines.append(record["message"]))
        self.sio.on("join_error", lambda error: self.errors.append(error["message"]))
        self.sio.on("access_changed", self._changed)
        self.sio.on("disconnect", lambda *reason: self.gone.set())
        self.sio.connect(url, headers={"Cookie": cookies} if cookies else {},
                         auth={"token": token} if token else None, transports=["websocket"],
                         wait_timeout=10)
        self.join()

    def join(self) -> None:
        self.sio.emit("join", {"project_id": self.project_id})

    def _changed(self, _data) -> None:
        self.changes += 1
        self.join()

    def close(self) -> None:
        # the client waits up to 3 s for the server's close frame: not in the test's time
        threading.Thread(target=self.sio.disconnect, daemon=True).start()


def _cookies(http: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def _session(url: str, email: str, password: str) -> requests.Session:
    http = requests.Session()
    response = http.post(f"{url}/api/v1/session", json={"email": email, "password": password},
                         timeout=30)
    assert response.status_code == 200, response.text
    http.headers["X-CSRFToken"] = response.json()["csrf_token"]
    return http


@dataclass
class Scene:
    url: str
    admin: requests.Session
    project: dict
    user: User
    http: requests.Session  # the watched person's own session
    token: str | None
    token_id: str | None
    publish: object

    def line(self, message: str) -> None:
        self.publish("log", {"message": message, "seq": 0, "execution_id": "x"},
                     project_room(self.project["id"]))


def _scene(app, live_server, *, admin_role: bool = False) -> Scene:
    url = live_server.url
    admin = requests.Session()
    admin.headers["X-CSRFToken"] = admin.post(f"{url}/api/v1/setup", json=ADMIN,
                                              timeout=30).json()["csrf_token"]
    project = admin.post(f"{url}/api/v1/projects", json=cancer_project(), timeout=30).json()
    services = app.extensions["trainyard"]
    user = services.db.users.add(User(email="watcher@example.com", name="Watcher",
                                      role="admin" if admin_role else "member",
                                      password_hash=generate_password_hash(PASSWORD)))
    if not admin_role:
        assert admin.put(f"{url}/api/v1/projects/{project['id']}/members", timeout=30,
                         json={"email": user.email, "role": "viewer"}).status_code == 200
    http = _session(url, user.email, PASSWORD)
    made = http.post(f"{url}/api/v1/tokens", json={"name": "live", "scope": "read"},
                     timeout=30).json()
    return Scene(url, admin, project, user, http, made["token"], made["id"],
                 services.runner.publish)


def _remove(scene):
    return scene.admin.delete(f"{scene.url}/api/v1/projects/{scene.project['id']}/members/"
                              f"{scene.user.id}", timeout=30)


def _demote(scene):  # an admin who is no member of the project becomes a member
    return scene.admin.patch(f"{scene.url}/api/v1/users/{scene.user.id}",
                             json={"role": "member"}, timeout=30)


def _logout(scene):
    return scene.http.delete(f"{scene.url}/api/v1/session", timeout=30)


def _deactivate(scene):
    return scene.admin.patch(f"{scene.url}/api/v1/users/{scene.user.id}",
                             json={"active": False}, timeout=30)


def _change_password(scene):
    csrf = scene.http.headers["X-CSRFToken"]
    return scene.http.post(f"{scene.url}/profile", allow_redirects=False, timeout=30, data={
        "action": "password", "current": PASSWORD, "password": "a brand new password 2026",
        "confirm": "a brand new password 2026", "csrf_token": csrf})


def _revoke_token(scene):
    return scene.http.delete(f"{scene.url}/api/v1/tokens/{scene.token_id}", timeout=30)


# way -> (action, expected status, the watcher opens with its token, how the socket ends)
WAYS = {
    "removed from the project": (_remove, 204, False, "rejoin refused"),
    "platform role changed": (_demote, 200, False, "rejoin refused"),
    "logged out": (_logout, 204, False, "disconnected"),
    "deactivated": (_deactivate, 200, False, "disconnected"),
    "password changed": (_change_password, 302, False, "disconnected"),
    "API token revoked": (_revoke_token, 204, True, "disconnected"),
}


@pytest.mark.parametrize("way", list(WAYS))
def test_a_socket_stops_receiving_lines_when_access_ends(app, live_server, way):
    action, status, with_token, ending = WAYS[way]
    scene = _scene(app, live_server, admin_role=way == "platform role changed")
    pid = scene.project["id"]
    watcher = Watcher(scene.url, pid, cookies=None if with_token else _cookies(scene.http),
                      token=scene.token if with_token else None)
    control = Watcher(scene.url, pid, cookies=_cookies(scene.admin))
    try:
        def both_got(message):
            scene.line(message)
            return message in watcher.lines and message in control.lines
        wait_until(lambda: both_got("before"), timeout=10, message="both watchers in the room")

        assert action(scene).status_code == status
        scene.line("after")  # published as soon as the call that ended access has answered
        scene.line("later")
        wait_until(lambda: "later" in control.lines, timeout=10, message="the control's lines")
        if ending == "disconnected":
            assert watcher.gone.wait(10), "the socket stayed connected"
        else:
            wait_until(lambda: watcher.errors, timeout=10, message="the refused rejoin")
            assert watcher.errors == ["No such project."] and watcher.changes == 1
            assert watcher.sio.connected
        scene.line("last")
        wait_until(lambda: "last" in control.lines, timeout=10, message="the control's lines")
        assert "before" in watcher.lines
        assert not {"after", "later", "last"} & set(watcher.lines), watcher.lines
        assert not control.errors and control.changes == 0
    finally:
        watcher.close()
        control.close()


def test_a_role_that_still_allows_watching_is_checked_and_rejoined(app, live_server):
    scene = _scene(app, live_server)
    watcher = Watcher(scene.url, scene.project["id"], cookies=_cookies(scene.http))
    try:
        wait_until(lambda: scene.line("before") or "before" in watcher.lines, timeout=10,
                   message="the watcher in the room")
        assert scene.admin.put(f"{scene.url}/api/v1/projects/{scene.project['id']}/members",
                               json={"email": scene.user.email, "role": "editor"},
                               timeout=30).status_code == 200
        wait_until(lambda: watcher.changes == 1, timeout=10, message="the access change")
        wait_until(lambda: scene.line("after") or "after" in watcher.lines, timeout=10,
                   message="lines after the rejoin")
        assert not watcher.errors
    finally:
        watcher.close()


# -- access through a team (issue 23) ----------------------------------------------------------

def _team_scene(app, live_server) -> tuple[Scene, str]:
    """The watcher reaches the project only through a team that holds viewer there."""
    scene = _scene(app, live_server, admin_role=True)  # no personal membership
    url, pid = scene.url, scene.project["id"]
    services = app.extensions["trainyard"]
    user = scene.user
    user.role = "member"
    services.db.users.save(user)
    team = scene.admin.post(f"{url}/api/v1/teams", json={"name": "Watchers"}, timeout=30).json()
    assert scene.admin.put(f"{url}/api/v1/teams/{team['id']}/members", timeout=30,
                           json={"email": user.email}).status_code == 200
    assert scene.admin.put(f"{url}/api/v1/projects/{pid}/teams", timeout=30,
                           json={"team": team["id"], "role": "viewer"}).status_code == 200
    return scene, team["id"]


TEAM_WAYS = {
    "removed from the team": lambda s, tid: s.admin.delete(
        f"{s.url}/api/v1/teams/{tid}/members/{s.user.id}", timeout=30),
    "team taken off the project": lambda s, tid: s.admin.delete(
        f"{s.url}/api/v1/projects/{s.project['id']}/teams/{tid}", timeout=30),
    "team deleted": lambda s, tid: s.admin.delete(f"{s.url}/api/v1/teams/{tid}", timeout=30),
}


@pytest.mark.parametrize("way, with_token", [(way, False) for way in TEAM_WAYS] +
                         [("removed from the team", True)])
def test_a_socket_that_watches_through_a_team_stops_when_the_team_access_ends(
        app, live_server, way, with_token):
    scene, team_id = _team_scene(app, live_server)
    pid = scene.project["id"]
    watcher = Watcher(scene.url, pid, cookies=None if with_token else _cookies(scene.http),
                      token=scene.token if with_token else None)
    try:
        wait_until(lambda: scene.line("before") or "before" in watcher.lines, timeout=10,
                   message="the watcher in the room through its team")
        assert TEAM_WAYS[way](scene, team_id).status_code == 204
        scene.line("after")  # published as soon as the call that ended access has answered
        wait_until(lambda: watcher.errors, timeout=10, message="the refused rejoin")
        assert watcher.errors == ["No such project."] and watcher.changes == 1
        assert "after" not in watcher.lines
        assert scene.http.get(f"{scene.url}/api/v1/projects/{pid}", timeout=30).status_code \
            == 404
        if with_token:  # the token's recently read user is forgotten with its old teams
            answer = requests.get(f"{scene.url}/api/v1/projects/{pid}", timeout=30,
                                  headers={"Authorization": f"Bearer {scene.token}"})
            assert answer.status_code == 404
    finally:
        watcher.close()
