"""The audit log records who did what: logins (failed ones too), user and role changes, project
changes, files, executions, promotions and tokens; it filters by actor, action and dates, and
only admins may read it."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from entity.base import utcnow
from tests.conftest import ADMIN
from tests.security.conftest import PASSWORD, SCHEMA, csrf_of, unique


def _call(client, method, url, **kwargs):
    headers = {"X-CSRFToken": client.csrf_token, **kwargs.pop("headers", {})}
    response = client.open(url, method=method, headers=headers, **kwargs)
    assert response.status_code < 400, (method, url, response.get_data(as_text=True)[:300])
    return response


def _events(world, **filters) -> list[dict]:
    admin = world.personas["admin"].client
    response = admin.get("/api/v1/audit", query_string={"per_page": 200, **filters})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


@pytest.fixture(scope="module")
def history(world):
    """Do one of everything that must be audited; returns who did it and to what."""
    admin, owner, editor = (world.personas[p].client for p in ("admin", "owner", "editor"))
    target = world.target()
    pid = target.id
    done = {"target": target}

    # logins, one failed
    user = world.add_user("audited")
    done["user"] = user
    client = world.app.test_client()
    client.post("/login", data={"email": user.email, "password": "wrong password!",
                                "csrf_token": csrf_of(client, "/login")},
                environ_base={"REMOTE_ADDR": "10.9.0.1"})
    client.post("/login", data={"email": user.email, "password": PASSWORD,
                                "csrf_token": csrf_of(client, "/login")},
                environ_base={"REMOTE_ADDR": "10.9.0.1"})
    # users and roles (admin)
    invited = f"{unique('audit-invite')}@example.com"
    _call(admin, "POST", "/api/v1/users", json={"email": invited, "name": "Invited",
                                                "role": "member"})
    _call(admin, "PATCH", f"/api/v1/users/{user.id}", json={"role": "admin"})
    done["invited"] = invited
    # project members (owner)
    _call(owner, "PUT", f"/api/v1/projects/{pid}/members", json={"email": user.email,
                                                                 "role": "viewer"})
    _call(owner, "DELETE", f"/api/v1/projects/{pid}/members/{user.id}")
    # project changes, files, executions, promotion (editor)
    created = _call(editor, "POST", "/api/v1/projects", json={
        "name": unique("Audited "), "problem_type": "classification", "schema": SCHEMA}).get_json()
    done["created"] = created
    _call(editor, "PATCH", f"/api/v1/projects/{pid}", json={"description": "audited"})
    _call(editor, "POST", f"/api/v1/projects/{pid}/files?path=docs/",
          data={"files": [(io.BytesIO(b"x"), "audited.txt")]}, content_type="multipart/form-data")
    _call(editor, "POST", f"/api/v1/projects/{pid}/folders", json={"path": "audited/"})
    _call(editor, "POST", f"/api/v1/projects/{pid}/files/move",
          json={"path": "docs/audited.txt", "to": "docs/", "name": "renamed.txt"})
    _call(editor, "POST", f"/api/v1/projects/{pid}/files/move",
          json={"path": "audited/", "to": "", "name": "audited-too"})
    _call(editor, "DELETE", f"/api/v1/projects/{pid}/files?path=docs/renamed.txt")
    train = _call(editor, "POST", f"/api/v1/projects/{pid}/executions",
                  json={"kind": "train"}).get_json()
    _call(editor, "POST", f"/api/v1/projects/{pid}/executions/{train['id']}/cancel")
    predict = _call(editor, "POST", f"/api/v1/projects/{pid}/executions",
                    json={"kind": "predict"}).get_json()
    _call(editor, "POST", f"/api/v1/projects/{pid}/executions/{predict['id']}/cancel")
    _call(editor, "POST", f"/api/v1/projects/{pid}/models/1/promote")
    done["executions"] = (train["id"], predict["id"])
    # tokens (editor)
    token = _call(editor, "POST", "/api/v1/tokens", json={"name": "audited", "scope": "read"})
    _call(editor, "DELETE", f"/api/v1/tokens/{token.get_json()['id']}")
    done["token_id"] = token.get_json()["id"]
    # its creator is its owner, and deletes it
    _call(editor, "DELETE", f"/api/v1/projects/{created['id']}")
    return done


def _actor(world, persona):
    return world.user(persona).email


EXPECTED = [
    # action, actor persona (None: anonymous), target key
    ("user.invite", "admin", "invited"),
    ("user.update", "admin", "user"),
    ("project.member", "owner", "target"),
    ("project.member_removed", "owner", "target"),
    ("project.create", "editor", "created"),
    ("project.update", "editor", "target"),
    ("file.upload", "editor", "target"),
    ("file.mkdir", "editor", "target"),
    ("file.move", "editor", "target"),
    ("folder.move", "editor", "target"),
    ("file.delete", "editor", "target"),
    ("execution.train", "editor", "target"),
    ("execution.predict", "editor", "target"),
    ("execution.cancel", "editor", "target"),
    ("model.promote", "editor", "target"),
    ("token.create", "editor", "token_id"),
    ("token.revoke", "editor", "token_id"),
    ("project.delete", "editor", "created"),
]


def _target_value(history, key):
    value = history[key]
    if key == "target":
        return value.slug
    if key == "created":
        return value["slug"]
    if key == "user":
        return value.email
    return value


@pytest.mark.parametrize("action, persona, key", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_action_is_audited_with_its_actor(world, history, action, persona, key):
    events = [e for e in _events(world, action=action)
              if e["target"] == _target_value(history, key)]
    assert events, f"no {action} event on {_target_value(history, key)}"
    assert {e["actor_email"] for e in events} == {_actor(world, persona)}
    assert all(e["success"] for e in events)


def test_logins_are_audited_failed_ones_without_actor(world, history):
    email = history["user"].email
    logins = [e for e in _events(world, action="login") if e["target"] == email]
    assert {(e["success"], e["actor_email"]) for e in logins} == {(False, None), (True, email)}
    assert all(e["address"] == "10.9.0.1" for e in logins)


def test_executions_are_named_in_the_details(world, history):
    train, predict = history["executions"]
    found = {e["details"].get("execution") for e in _events(world, action="execution.train")}
    assert train in found
    found = {e["details"].get("execution") for e in _events(world, action="execution.predict")}
    assert predict in found


def test_filter_by_actor(world, history):
    events = _events(world, actor=_actor(world, "owner"))
    assert events and {e["actor_email"] for e in events} == {_actor(world, "owner")}
    # case and spaces do not matter
    again = _events(world, actor=f"  {_actor(world, 'owner').upper()} ")
    assert [e["id"] for e in again] == [e["id"] for e in events]


def test_filter_by_action(world, history):
    events = _events(world, action="file.upload")
    assert events and {e["action"] for e in events} == {"file.upload"}
    assert _events(world, action="no.such.action") == []


def test_filter_by_dates(world, history):
    today = utcnow().date()
    since_today = _events(world, since=today.isoformat(), action="project.delete")
    assert since_today
    assert _events(world, until=(today - timedelta(days=1)).isoformat(),
                   action="project.delete") == []
    assert _events(world, since=(today + timedelta(days=1)).isoformat()) == []
    assert _events(world, until=today.isoformat(), action="project.delete") == since_today


def test_a_bad_date_is_a_400(world):
    admin = world.personas["admin"].client
    response = admin.get("/api/v1/audit?since=yesterday")
    assert response.status_code == 400
    assert "2026-11-22" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("persona", ["viewer", "editor", "owner", "outsider"])
def test_members_may_not_read_the_audit_log(world, persona):
    client = world.personas[persona].client
    assert client.get("/api/v1/audit").status_code == 403
    assert client.get("/admin/audit").status_code == 403
    token = world.personas[persona].read_token
    assert world.app.test_client().get(
        "/api/v1/audit", headers={"Authorization": f"Bearer {token}"}).status_code == 403


def test_the_audit_page_filters_too(world, history):
    admin = world.personas["admin"].client
    html = admin.get("/admin/audit", query_string={"actor": ADMIN["email"],
                                                    "action": "user.invite"}).get_data(
        as_text=True)
    assert history["invited"] in html
    assert history["created"]["slug"] not in html
