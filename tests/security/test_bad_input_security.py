"""Hostile input: unsafe paths, oversized uploads, markup in every text field, malformed JSON,
forged and stale tokens and links, missing CSRF tokens, password guessing; and the session,
header and secret-keeping rules. Every refusal is a 4xx with a clear message and leaves the
stored state as it was."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import timedelta

import pytest
from werkzeug.security import check_password_hash

from entity.base import utcnow
from tests.conftest import ADMIN
from tests.security.conftest import (
    DOC_FILE,
    PASSWORD,
    SCHEMA,
    csrf_of,
    login_client,
    storage_listing,
    unique,
)

APP_OVERRIDES = {"MAX_UPLOAD_MB": 1, "MAX_UPLOAD_FILES": 3}
SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
IMG = "<img src=x onerror=alert(1)>"  # fits where '/' is not allowed (file names)
ESCAPED_IMG = "&lt;img src=x onerror=alert(1)&gt;"


def _address() -> dict:
    n = int(unique(""))
    return {"REMOTE_ADDR": f"10.2.{n // 250 % 250}.{n % 250}"}


def _post(client, url, **kwargs):
    headers = {"X-CSRFToken": client.csrf_token, **kwargs.pop("headers", {})}
    return client.post(url, headers=headers, environ_base=_address(), **kwargs)


def _error(response) -> dict:
    body = response.get_json()
    assert body and set(body["error"]) >= {"code", "message"}, response.get_data(as_text=True)
    assert body["error"]["message"].strip()
    return body["error"]


@pytest.fixture
def target(world):
    return world.target()


@pytest.fixture(scope="module")
def shared_target(world):
    """One project for the calls that must change nothing (a change would show anyway)."""
    return world.target()


@pytest.fixture
def editor(world):
    return world.personas["editor"].client


# -- unsafe paths on every file endpoint ---------------------------------------------------

BAD_PATHS = {
    "parent": "../escape.txt",
    "deep parent": "docs/../../../etc/passwd",
    "absolute": "/etc/passwd",
    "backslash": "docs\\..\\..\\x.txt",
    "control character": "docs/bad\x01name.txt",
    "NUL": "docs/nul\x00byte.txt",
    "dot-dot alone": "..",
    "reserved": ".trainyard-upload-x",
}
BAD_FILE_NAMES = {k: v for k, v in BAD_PATHS.items() if "/" not in v and "\\" not in v}
CLEAR = re.compile(r"not allowed|may not|must|required|no such|absolute|reserved|invalid|"
                   r"control|NUL|\.\.", re.IGNORECASE)


def _file_calls(target, path: str) -> dict:
    """Every file endpoint (page and API) with ``path`` where the path goes."""
    pid, slug = target.id, target.slug
    one = {"files": [(io.BytesIO(b"x"), "ok.txt")]}
    return {
        "api upload folder": ("POST", f"/api/v1/projects/{pid}/files",
                              {"query_string": {"path": path}, "data": one}),
        "api download": ("GET", f"/api/v1/projects/{pid}/files/content",
                         {"query_string": {"path": path}}),
        "api delete": ("DELETE", f"/api/v1/projects/{pid}/files",
                       {"query_string": {"path": path}}),
        "api mkdir": ("POST", f"/api/v1/projects/{pid}/folders", {"json": {"path": path}}),
        "api list": ("GET", f"/api/v1/projects/{pid}/files", {"query_string": {"path": path}}),
        "page upload folder": ("POST", f"/projects/{slug}/files/upload",  # as upload.js
                               {"query_string": {"path": path}, "data": one,
                                "headers": {"Accept": "application/json"}}),
        "page download": ("GET", f"/projects/{slug}/files/download",
                          {"query_string": {"path": path}}),
        "page delete": ("POST", f"/projects/{slug}/files/delete", {"data": {"path": path}}),
        "page mkdir": ("POST", f"/projects/{slug}/files/folder",
                       {"data": {"parent": "", "name": path}}),
        "page list": ("GET", f"/projects/{slug}/files", {"query_string": {"path": path}}),
    }


ENDPOINTS = sorted(_file_calls(type("T", (), {"id": "x", "slug": "x"}), "x"))


def _message_of(response) -> str:
    if response.is_json:
        return _error(response)["message"]
    return response.get_data(as_text=True)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", sorted(BAD_PATHS))
def test_unsafe_paths_are_refused_with_a_4xx_and_nothing_changes(world, shared_target, editor,
                                                                 endpoint, case):
    method, url, kwargs = _file_calls(shared_target, BAD_PATHS[case])[endpoint]
    if "data" in kwargs and "files" in kwargs["data"]:
        kwargs["content_type"] = "multipart/form-data"
    before = storage_listing(world.app)
    headers = {"X-CSRFToken": editor.csrf_token, **kwargs.pop("headers", {})}
    response = editor.open(url, method=method, headers=headers, **kwargs)
    assert 400 <= response.status_code < 500, (response.status_code,
                                               response.get_data(as_text=True)[:300])
    assert CLEAR.search(_message_of(response)), _message_of(response)[:300]
    assert storage_listing(world.app) == before


@pytest.mark.parametrize("api", [True, False], ids=["api", "page"])
@pytest.mark.parametrize("case", sorted(BAD_FILE_NAMES))
def test_unsafe_upload_file_names_are_refused(world, shared_target, editor, api, case):
    target = shared_target
    url = (f"/api/v1/projects/{target.id}/files" if api else
           f"/projects/{target.slug}/files/upload")
    before = storage_listing(world.app)
    response = _post(editor, url + "?path=docs/", content_type="multipart/form-data",
                     data={"files": [(io.BytesIO(b"x"), BAD_FILE_NAMES[case])]},
                     headers={"Accept": "application/json"})
    assert response.status_code in (400, 422), response.get_data(as_text=True)[:300]
    assert CLEAR.search(_error(response)["message"])
    assert storage_listing(world.app) == before


# -- upload limits -------------------------------------------------------------------------

@pytest.mark.parametrize("api", [True, False], ids=["api", "page"])
def test_an_oversized_upload_gets_413_naming_the_limit(world, target, editor, api):
    url = (f"/api/v1/projects/{target.id}/files" if api else
           f"/projects/{target.slug}/files/upload")
    before = storage_listing(world.app)
    big = io.BytesIO(b"x" * (1024 * 1024 + 10))
    response = _post(editor, url + "?path=docs/", content_type="multipart/form-data",
                     data={"files": [(big, "big.txt")]},
                     headers={"Accept": "application/json"})
    assert response.status_code == 413
    error = _error(response)
    assert error["code"] == "payload_too_large"
    assert "1 MB" in error["message"]
    assert storage_listing(world.app) == before


def _chattr(folder, flag: str) -> bool:
    import subprocess

    return subprocess.run(["chattr", flag, str(folder)], capture_output=True).returncode == 0


@pytest.mark.parametrize("how", ["multipart", "put", "page"])
def test_an_unwritable_folder_during_an_upload_is_a_json_503_and_leaves_nothing(
        world, target, editor, how):
    """Issue 21, items 7 and 8: a 500 with a traceback before."""
    folder = world.services.resolver.files(target.project).local_path(DOC_FILE).parent
    if not _chattr(folder, "+i"):  # unwritable even for root
        pytest.skip("chattr +i is not available here")
    try:
        if how == "put":
            response = editor.put(f"/api/v1/projects/{target.id}/files/content?path=docs/a.txt",
                                  data=b"hello", headers={"X-CSRFToken": editor.csrf_token},
                                  environ_base=_address())
        else:
            url = (f"/api/v1/projects/{target.id}/files" if how == "multipart" else
                   f"/projects/{target.slug}/files/upload")
            response = _post(editor, url + "?path=docs/", content_type="multipart/form-data",
                             data={"files": [(io.BytesIO(b"hello"), "a.txt")]},
                             headers={"Accept": "application/json"})
    finally:
        _chattr(folder, "-i")
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    error = _error(response)
    assert error["code"] == "storage_unavailable" and "docs/a.txt" in error["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".trainyard-")]


def test_a_full_disk_during_an_upload_is_a_json_507(world, target, editor, monkeypatch):
    import errno
    import os

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fdatasync", full)
    response = editor.put(f"/api/v1/projects/{target.id}/files/content?path=docs/b.txt",
                          data=b"hello", headers={"X-CSRFToken": editor.csrf_token},
                          environ_base=_address())
    monkeypatch.undo()
    assert response.status_code == 507
    error = _error(response)
    assert error["code"] == "storage_full" and "no room left for docs/b.txt" in error["message"]
    assert not world.exists(target, "docs/b.txt")


@pytest.mark.parametrize("api", [True, False], ids=["api", "page"])
def test_too_many_files_get_413(world, target, editor, api):
    url = (f"/api/v1/projects/{target.id}/files" if api else
           f"/projects/{target.slug}/files/upload")
    before = storage_listing(world.app)
    files = [(io.BytesIO(b"x"), f"f{n}.txt") for n in range(4)]
    response = _post(editor, url + "?path=docs/", content_type="multipart/form-data",
                     data={"files": files}, headers={"Accept": "application/json"})
    assert response.status_code == 413
    assert "At most 3 files" in _error(response)["message"]
    assert storage_listing(world.app) == before


# -- markup in every text field ---------------------------------------------------------------

def test_markup_in_text_fields_is_stored_and_rendered_escaped(world):
    admin = world.personas["admin"].client
    schema = {**SCHEMA, "columns": [*SCHEMA["columns"], {"name": SCRIPT, "type": "float"}]}
    name = f"Evil {unique('')} {SCRIPT}"
    response = _post(admin, "/api/v1/projects", json={
        "name": name, "description": f"About {SCRIPT}", "problem_type": "classification",
        "recipients": ["team@example.com"], "schema": schema})
    assert response.status_code == 201, response.get_json()
    project = response.get_json()
    assert project["name"] == name and SCRIPT in project["description"]
    assert project["schema"]["columns"][-1]["name"] == SCRIPT
    upload = _post(admin, f"/api/v1/projects/{project['id']}/files?path=docs/",
                   content_type="multipart/form-data",
                   data={"files": [(io.BytesIO(b"x"), f"{IMG}.txt")]})
    assert upload.status_code == 201, upload.get_json()
    invited = _post(admin, "/api/v1/users", json={
        "email": f"{unique('evil')}@example.com", "name": f"Eve {SCRIPT}", "role": "member"})
    assert invited.status_code == 201
    token = _post(admin, "/api/v1/tokens", json={"name": f"CI {SCRIPT}", "scope": "read"})
    assert token.status_code == 201
    slug = project["slug"]
    pages = ["/", f"/projects/{slug}", f"/projects/{slug}/settings",
             f"/projects/{slug}/files?path=docs/", "/admin/users", "/profile", "/admin/audit",
             f"/projects/{slug}/models/1"]
    for page in pages:
        response = admin.get(page)
        html = response.get_data(as_text=True)
        assert SCRIPT not in html and IMG not in html, f"raw markup on {page}"
    seen = "".join(admin.get(p).get_data(as_text=True) for p in pages)
    assert ESCAPED_SCRIPT in seen and ESCAPED_IMG in seen
    for where in ("/", f"/projects/{slug}"):  # name and description, escaped
        assert ESCAPED_SCRIPT in admin.get(where).get_data(as_text=True), where
    assert ESCAPED_IMG in admin.get(f"/projects/{slug}/files?path=docs/").get_data(as_text=True)
    users_page = admin.get("/admin/users").get_data(as_text=True)
    assert f"Eve {ESCAPED_SCRIPT}" in users_page
    assert f"CI {ESCAPED_SCRIPT}" in admin.get("/profile").get_data(as_text=True)


def test_markup_in_refused_recipients_is_echoed_escaped(world):
    admin = world.personas["admin"].client
    form = {"name": unique("Recipients "), "problem_type": "classification",
            "description": "", "recipients": f"ok@example.com, {SCRIPT}",
            "filename_pattern": SCHEMA["filename_pattern"], "schema_json": json.dumps(SCHEMA)}
    response = _post(admin, "/projects/new", data=form)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert SCRIPT not in html
    assert "Not an e-mail address" in html


# -- malformed JSON and wrong types --------------------------------------------------------

def _json_endpoints(world, target) -> dict:
    victim = world.add_user("typed", password=None)
    return {
        "POST /setup": ("POST", "/api/v1/setup"),
        "POST /session": ("POST", "/api/v1/session"),
        "POST /password-reset": ("POST", "/api/v1/password-reset"),
        "POST /projects": ("POST", "/api/v1/projects"),
        "PATCH /projects/<id>": ("PATCH", f"/api/v1/projects/{target.id}"),
        "POST /folders": ("POST", f"/api/v1/projects/{target.id}/folders"),
        "POST /executions": ("POST", f"/api/v1/projects/{target.id}/executions"),
        "PUT /members": ("PUT", f"/api/v1/projects/{target.id}/members"),
        "POST /tokens": ("POST", "/api/v1/tokens"),
        "POST /users": ("POST", "/api/v1/users"),
        "PATCH /users/<id>": ("PATCH", f"/api/v1/users/{victim.id}"),
        "POST /storage-connections": ("POST", "/api/v1/storage-connections"),
    }


JSON_ENDPOINTS = ["POST /setup", "POST /session", "POST /password-reset", "POST /projects",
                  "PATCH /projects/<id>", "POST /folders", "POST /executions", "PUT /members",
                  "POST /tokens", "POST /users", "PATCH /users/<id>",
                  "POST /storage-connections"]
MALFORMED = {"broken JSON": ("{not json", "application/json"),
             "a list": ("[1, 2]", "application/json"),
             "a string": ('"hello"', "application/json"),
             "null": ("null", "application/json"),
             "form encoded": ("a=1", "application/x-www-form-urlencoded")}


@pytest.mark.parametrize("body", sorted(MALFORMED))
@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
def test_malformed_json_bodies_get_400(world, shared_target, endpoint, body):
    target = shared_target
    method, url = _json_endpoints(world, target)[endpoint]
    admin = world.personas["admin"].client
    data, content_type = MALFORMED[body]
    def state():
        files = world.services.resolver.files(target.project)
        return (sorted(o.key for o in files.list_files("")),
                world.db.projects.get(target.id).to_document(), len(world.db.users.list()),
                len(world.db.api_tokens.list_for_user(world.user("admin").id)))
    before = state()
    response = admin.open(url, method=method, data=data, content_type=content_type,
                          headers={"X-CSRFToken": admin.csrf_token}, environ_base=_address())
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert _error(response)["code"] == "bad_request"
    assert "JSON" in _error(response)["message"]
    assert state() == before


WRONG_TYPES = {
    "POST /session": {"email": ["a@example.com"], "password": {"x": 1}},
    "POST /password-reset": {"email": 12},
    "POST /projects": {"name": 5, "problem_type": ["classification"], "schema": "columns",
                       "recipients": {"a": 1}, "description": 7},
    "PATCH /projects/<id>": {"time_budget_seconds": "soon", "metric": 3, "schema": [1]},
    "POST /folders": {"path": 5},
    "POST /executions": {"kind": 5},
    "PUT /members": {"email": ["x@example.com"], "role": 3},
    "POST /tokens": {"name": ["n"], "scope": True},
    "POST /users": {"email": 5, "name": None, "role": ["admin"]},
    "PATCH /users/<id>": {"active": "no"},
    "POST /storage-connections": {"name": 1, "kind": "local", "settings": "x"},
}


@pytest.mark.parametrize("endpoint", sorted(WRONG_TYPES))
def test_wrong_types_are_refused_with_the_error_shape(world, shared_target, endpoint):
    target = shared_target
    method, url = _json_endpoints(world, target)[endpoint]
    admin = world.personas["admin"].client
    before = world.db.projects.get(target.id).to_document()
    response = admin.open(url, method=method, json=WRONG_TYPES[endpoint],
                          headers={"X-CSRFToken": admin.csrf_token}, environ_base=_address())
    assert response.status_code in (400, 401, 422), (response.status_code,
                                                     response.get_data(as_text=True)[:300])
    _error(response)
    assert world.db.projects.get(target.id).to_document() == before


# -- invitation and reset links --------------------------------------------------------------

LINK_MESSAGE = "invalid, expired or already used"


@pytest.mark.parametrize("kind", ["reset", "invite"])
def test_expired_link_is_refused_and_changes_nothing(world, kind):
    user = world.add_user(kind)
    secret = world.db.one_time_tokens.issue(kind, user.id, utcnow() - timedelta(minutes=1))
    client = world.app.test_client()
    page = client.get(f"/{kind}/{secret}")
    assert page.status_code == 400 and LINK_MESSAGE in page.get_data(as_text=True)
    response = client.post(f"/{kind}/{secret}", data={
        "password": "brand new password 1", "confirm": "brand new password 1",
        "csrf_token": csrf_of(client, "/login")})
    assert response.status_code == 400 and LINK_MESSAGE in response.get_data(as_text=True)
    stored = world.db.users.get(user.id)
    assert stored.password_hash == user.password_hash
    assert stored.session_version == user.session_version
    assert client.get("/").status_code == 302  # not logged in


@pytest.mark.parametrize("kind", ["reset", "invite"])
def test_a_link_works_once(world, kind):
    user = world.add_user(kind)
    secret = world.db.one_time_tokens.issue(kind, user.id, utcnow() + timedelta(hours=1))
    first = world.app.test_client()
    form = {"password": "first new password", "confirm": "first new password",
            "csrf_token": csrf_of(first, "/login")}
    assert first.post(f"/{kind}/{secret}", data=form).status_code == 302
    second = world.app.test_client()
    again = second.post(f"/{kind}/{secret}", data={
        "password": "second new password", "confirm": "second new password",
        "csrf_token": csrf_of(second, "/login")})
    assert again.status_code == 400 and LINK_MESSAGE in again.get_data(as_text=True)
    stored = world.db.users.get(user.id)
    assert check_password_hash(stored.password_hash, "first new password")


@pytest.mark.parametrize("secret", ["forged-secret", "", "a" * 43, "../../etc/passwd"])
def test_forged_links_are_refused(world, secret):
    client = world.app.test_client()
    response = client.get(f"/reset/{secret}")
    assert response.status_code in (400, 404)
    if response.status_code == 400:
        assert LINK_MESSAGE in response.get_data(as_text=True)


def test_without_smtp_the_outbox_keeps_the_link_for_an_admin_to_pass_on(world):
    """No MAIL_SERVER here: the outbox is how the link reaches its owner, so it keeps it (with
    SMTP, the record leaves it out: tests/integration/test_mail.py)."""
    client = world.app.test_client()
    form = {"email": (user := world.add_user("forgot")).email,
            "csrf_token": csrf_of(client, "/forgot")}
    assert client.post("/forgot", data=form).status_code == 302
    kept = [m for m in world.db.mail.list() if user.email in m.recipients]
    assert len(kept) == 1 and kept[0].status == "kept"
    link = re.search(r"/reset/\S+", kept[0].body_text).group(0)
    assert world.app.test_client().get(link).status_code == 200


def test_a_reset_link_of_one_kind_does_not_open_the_other(world):
    user = world.add_user("kinds")
    secret = world.db.one_time_tokens.issue("reset", user.id, utcnow() + timedelta(hours=1))
    assert world.app.test_client().get(f"/invite/{secret}").status_code == 400


# -- API tokens ----------------------------------------------------------------------------

def _bearer(world, value: str):
    return world.app.test_client().get("/api/v1/projects",
                                       headers={"Authorization": f"Bearer {value}"})


def test_revoked_token_gets_401(world):
    user = world.add_user("revoked")
    token, clear = world.issue_token(user)
    assert _bearer(world, clear).status_code == 200
    world.db.api_tokens.revoke(token.id)
    response = _bearer(world, clear)
    assert response.status_code == 401 and "revoked" in _error(response)["message"]


@pytest.mark.parametrize("value", ["garbage", "ty_", "ty__", "ty_abc", "ty_abc_def",
                                   "Bearer", "ty_" + "x" * 5000, "\u00e9\u00e9"])
def test_malformed_tokens_get_401(world, value):
    response = _bearer(world, value)
    assert response.status_code == 401
    assert _error(response)["code"] == "unauthenticated"


def test_wrong_scheme_gets_401(world):
    _, clear = world.issue_token(world.user("viewer"))
    response = world.app.test_client().get("/api/v1/projects",
                                           headers={"Authorization": f"Basic {clear}"})
    assert response.status_code == 401


def test_a_token_id_with_another_users_secret_gets_401(world):
    mine, _ = world.issue_token(world.user("viewer"))
    _, theirs = world.issue_token(world.user("editor"))
    forged = f"ty_{mine.id}_{theirs.split('_', 2)[2]}"
    assert _bearer(world, forged).status_code == 401


def test_another_users_token_cannot_be_revoked(world):
    token, clear = world.issue_token(world.user("editor"))
    viewer = world.personas["viewer"].client
    response = viewer.delete(f"/api/v1/tokens/{token.id}",
                             headers={"X-CSRFToken": viewer.csrf_token})
    assert response.status_code == 404
    assert _bearer(world, clear).status_code == 200


def test_deactivated_users_token_gets_401(world):
    user = world.add_user("inactive")
    token, clear = world.issue_token(user)
    user.active = False  # directly, so that the token itself stays unrevoked
    world.db.users.save(user)
    assert world.db.api_tokens.get(token.id).revoked_at is None
    assert _bearer(world, clear).status_code == 401


# -- CSRF ----------------------------------------------------------------------------------

def test_page_posts_without_csrf_are_refused_and_change_nothing(world):
    target = world.target()
    owner = world.personas["owner"].client
    newcomer = world.add_user("csrf")
    posts = {f"/projects/{target.slug}/delete": {},
             f"/projects/{target.slug}/files/delete": {"path": DOC_FILE},
             f"/projects/{target.slug}/members": {"email": newcomer.email, "role": "owner"},
             f"/projects/{target.slug}/train": {},
             f"/projects/{target.slug}/settings": {"description": "csrf"},
             "/profile": {"action": "create_token", "name": "csrf", "scope": "write"}}
    before = (world.db.projects.get(target.id).to_document(), storage_listing(world.app),
              world.db.executions.count_for_project(target.id),
              len(world.db.api_tokens.list_for_user(world.user("owner").id)))
    for url, data in posts.items():
        for token in (None, "forged-token", world.personas["viewer"].client.csrf_token):
            form = dict(data, **({"csrf_token": token} if token else {}))
            response = owner.post(url, data=form, headers={"Accept": "application/json"})
            assert response.status_code == 400, (url, token, response.status_code)
            assert _error(response)["code"] == "csrf_failed"
            assert "CSRF" in _error(response)["message"]
    after = (world.db.projects.get(target.id).to_document(), storage_listing(world.app),
             world.db.executions.count_for_project(target.id),
             len(world.db.api_tokens.list_for_user(world.user("owner").id)))
    assert after == before


def test_cookie_session_api_calls_without_csrf_are_refused(world):
    target = world.target()
    owner = world.personas["owner"].client
    admin = world.personas["admin"].client
    victim = world.add_user("csrfvictim")
    calls = [(owner, "DELETE", f"/api/v1/projects/{target.id}", None),
             (owner, "PATCH", f"/api/v1/projects/{target.id}", {"description": "x"}),
             (owner, "POST", "/api/v1/tokens", {"name": "x", "scope": "write"}),
             (admin, "PATCH", f"/api/v1/users/{victim.id}", {"active": False}),
             (owner, "DELETE", "/api/v1/session", None)]
    for client, method, url, body in calls:
        response = client.open(url, method=method, json=body)
        assert response.status_code == 400, (url, response.status_code)
        assert _error(response)["code"] == "csrf_failed"
    assert world.db.projects.get(target.id).description == "original description"
    assert world.db.users.get(victim.id).active
    assert owner.get("/api/v1/session").status_code == 200  # still logged in


def test_a_bearer_request_sets_no_session_cookie(world):
    client = world.app.test_client()
    response = client.get("/api/v1/session", headers={
        "Authorization": f"Bearer {world.personas['viewer'].write_token}"})
    assert response.status_code == 200
    assert client.get_cookie("session") is None or client.get("/api/v1/session").status_code \
        == 401


# -- login throttling ----------------------------------------------------------------------

def _page_login(world, email, password, address):
    client = world.app.test_client()
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": csrf_of(client, "/login")},
                       environ_base={"REMOTE_ADDR": address})


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(world):
    """TRUSTED_PROXY_HOPS=0 (the default): a client cannot pick its address by a header, so
    forged X-Forwarded-For values neither spread its failures nor blame someone else."""
    address = "10.5.5.5"
    for n in range(3):
        response = world.app.test_client().post(
            "/api/v1/session", json={"email": f"spoof{n}@example.com", "password": "wrong pw!"},
            headers={"X-Forwarded-For": f"198.51.100.{n}"}, environ_base={"REMOTE_ADDR": address})
        assert response.status_code == 401
    failures = world.db.login_failures
    since = utcnow() - timedelta(minutes=1)
    assert failures.count_since(f"address:{address}", since) == 3
    assert failures.count_since("address:198.51.100.0", since) == 0


# -- passwords and sessions ----------------------------------------------------------------

@pytest.mark.parametrize("password, confirm, reason", [
    ("short1", "short1", "at least 10"),
    ("aaaaaaaaaaaa", "aaaaaaaaaaaa", "too easy"),
    ("x" * 1001 + "abc", "x" * 1001 + "abc", "at most 1000"),
    ("a good new password", "a different one", "differ"),
    ("SELF", "SELF", "e-mail"),
])
def test_password_rules(world, password, confirm, reason):
    user = world.add_user("rules")
    if password == "SELF":
        password = confirm = user.email
    client = login_client(world.app, user.email)
    response = client.post("/profile", data={
        "action": "password", "current": PASSWORD, "password": password, "confirm": confirm,
        "csrf_token": client.csrf_token})
    assert response.status_code == 422
    assert reason in response.get_data(as_text=True)
    assert check_password_hash(world.db.users.get(user.id).password_hash, PASSWORD)


def test_logout_ends_the_session(world):
    user = world.add_user("leaving")
    client = login_client(world.app, user.email)
    assert client.post("/logout", data={"csrf_token": client.csrf_token}).status_code == 302
    assert client.get("/").status_code == 302
    assert client.get("/api/v1/session").status_code == 401


def test_password_change_ends_the_other_sessions(world):
    user = world.add_user("changer")
    here, elsewhere = login_client(world.app, user.email), login_client(world.app, user.email)
    response = here.post("/profile", data={
        "action": "password", "current": PASSWORD, "password": "a brand new password",
        "confirm": "a brand new password", "csrf_token": here.csrf_token})
    assert response.status_code == 302
    assert here.get("/api/v1/session").status_code == 200
    assert elsewhere.get("/api/v1/session").status_code == 401
    assert elsewhere.get("/").status_code == 302


def test_deactivation_ends_sessions_and_tokens(world):
    user = world.add_user("deactivated")
    client = login_client(world.app, user.email)
    _, clear = world.issue_token(user)
    assert _bearer(world, clear).status_code == 200
    admin = world.personas["admin"].client
    response = admin.patch(f"/api/v1/users/{user.id}", json={"active": False},
                           headers={"X-CSRFToken": admin.csrf_token})
    assert response.status_code == 200
    assert client.get("/api/v1/session").status_code == 401
    assert _bearer(world, clear).status_code == 401
    assert _page_login(world, user.email, PASSWORD, "10.5.0.1").status_code == 401


# -- headers and cookies -------------------------------------------------------------------

@pytest.mark.parametrize("path, persona", [
    ("/login", "anonymous"), ("/", "viewer"), ("/api/v1/session", "viewer"),
    ("/api/v1/projects", "anonymous"), ("/no-such-page", "viewer"),
    ("/api/v1/no-such-endpoint", "viewer"), ("/healthz", "anonymous")])
def test_security_headers(world, path, persona):
    response = world.personas[persona].client.get(path)
    _assert_security_headers(response)


def test_security_headers_on_token_calls_without_a_cookie(world):
    """API calls with a bearer token and no cookie skip the cookie session's work
    (app.CookieSessions); they get the same headers, and no cookie."""
    _, clear = world.issue_token(world.add_user("headers"))
    response = _bearer(world, clear)
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    _assert_security_headers(response)


def _assert_security_headers(response):
    csp = response.headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_session_cookie_is_httponly_and_samesite_lax(world):
    client = world.app.test_client()
    response = client.post("/login", data={"email": ADMIN["email"],
                                           "password": ADMIN["password"],
                                           "csrf_token": csrf_of(client, "/login")},
                           environ_base=_address())
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


# -- secrets stay secret -------------------------------------------------------------------

def test_no_secret_reaches_logs_audit_or_later_answers(world, caplog):
    caplog.set_level(logging.DEBUG)
    user = world.add_user("secretive")
    client = world.app.test_client()
    # a failed and a good login, a token, a password change, a reset request
    wrong = "wrong password but secret"
    client.post("/api/v1/session", json={"email": user.email, "password": wrong},
                environ_base=_address())
    login = client.post("/api/v1/session", json={"email": user.email, "password": PASSWORD},
                        environ_base=_address())
    csrf = login.get_json()["csrf_token"]
    created = client.post("/api/v1/tokens", json={"name": "secret", "scope": "write"},
                          headers={"X-CSRFToken": csrf})
    token = created.get_json()["token"]
    assert client.get("/api/v1/projects",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/api/v1/projects",
                      headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    new_password = "another secret password"
    profile_csrf = csrf_of(client, "/")
    assert client.post("/profile", data={
        "action": "password", "current": PASSWORD, "password": new_password,
        "confirm": new_password, "csrf_token": profile_csrf}).status_code == 302
    client.post("/api/v1/password-reset", json={"email": user.email})
    secrets = [PASSWORD, wrong, new_password, token, token.split("_", 2)[2],
               world.app.config["SECRET_KEY"]]
    admin = world.personas["admin"].client
    audit = json.dumps(admin.get("/api/v1/audit?per_page=200").get_json())
    later = "".join(json.dumps(r.get_json()) for r in (
        client.get("/api/v1/tokens"), client.get("/api/v1/session"),
        admin.get("/api/v1/users?per_page=200")))
    for secret in secrets:
        assert secret not in caplog.text, "a secret in the server log"
        assert secret not in audit, "a secret in the audit log"
        assert secret not in later, "a secret in an API answer"
    assert "password_hash" not in later and "token_hash" not in later
