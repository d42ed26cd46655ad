"""Who may call what: every route of the app and the Socket.IO ``join`` event, tried by every
persona (anonymous, viewer, editor, owner, admin, an outsider who is a member of another
project only, a teammate who reaches the target projects as an editor through a team only, and
a non-member who is in a team without a role there), through cookie sessions with CSRF tokens
and through API bearer tokens.

The table ``ROUTES`` names every (method, rule) of ``app.url_map``; a route missing from it fails
``test_every_route_is_in_the_table``, so a new route cannot ship without its expectations.
Refused writes must leave the state as it was (the file, the project, the member list...).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import socketio

from tests.conftest import ADMIN, wait_until
from tests.security.conftest import (
    DOC_FILE,
    PERSONAS,
    SCHEMA,
    TEAM_ROLE,
    Persona,
    World,
    anonymous_client,
    login_client,
    sample_csv,
    unique,
)

START_RULE = "/projects/<slug>/<execution_kind:kind>"
RANK = {"viewer": 1, "editor": 2, "owner": 3}
LOGGED_IN = ("viewer", "editor", "owner", "admin", "outsider", "teammate", "non_member")
#: personas with no role on the target projects, who find them absent
STRANGERS = ("outsider", "non_member")
#: the project role each persona holds on the target projects (the teammate's through a team)
PROJECT_ROLE = {"viewer": "viewer", "editor": "editor", "owner": "owner",
                "teammate": TEAM_ROLE}


@dataclass
class Call:
    """What one attempt sends: the URL and the body, and how to see its effect."""

    url: str
    kwargs: dict
    probe: Callable[[], object] | None = None  # state that a refused call must not change


@dataclass
class Route:
    method: str
    rule: str
    access: str  # public | login | viewer | editor | owner | admin | lead (admins, team leads)
    ok: int  # status of an allowed call
    build: Callable[[World, object, str], Call]  # (world, target, persona) -> Call
    variant: str = ""
    active: bool = False  # the target project needs a queued execution
    fresh_client: bool = False  # the call ends or changes the session: use a new login
    changes: bool = True  # an allowed call changes what ``probe`` sees
    #: what an anonymous caller gets when refused, if not the login's 401 (or redirect): a
    #: catalog route open to anonymous callers answers 404 for a listing they may not see
    anonymous_refused: int | None = None

    @property
    def api(self) -> bool:
        return self.rule.startswith("/api/")

    @property
    def project(self) -> bool:
        return self.access in RANK

    @property
    def key(self) -> str:
        return f"{self.method} {self.rule}" + (f" [{self.variant}]" if self.variant else "")


def _get(url: str) -> Callable:
    return lambda world, target, persona: Call(url.format(t=target), {})


def _project_probe(world: World, target) -> Callable:
    return lambda: world.project(target) is not None


def _file_probe(world: World, target, path: str) -> Callable:
    return lambda: world.exists(target, path)


def _folder_probe(world: World, target, path: str) -> Callable:
    return lambda: world.services.resolver.files(target.project).folder_exists(path)


def _executions_probe(world: World, target) -> Callable:
    return lambda: world.db.executions.count_for_project(target.id)


def _fresh_record(world: World, target) -> str:
    """A new unlabeled prediction record of the target project; answers its id."""
    from entity.base import to_iso, utcnow
    from entity.prediction_record import new_prediction_id, new_record

    prediction_id = new_prediction_id()
    world.db.prediction_records.add_many([new_record(
        prediction_id, target.id, 1, "realtime", to_iso(utcnow()), {"a": 1, "b": 2}, "x")])
    return prediction_id


def _feedback_call(world: World, target, persona) -> Call:
    prediction_id = _fresh_record(world, target)
    return Call(f"/api/v1/projects/{target.id}/feedback",
                {"json": {"prediction_id": prediction_id, "actual": "y"}},
                lambda: world.db.prediction_records.get(prediction_id)["labeled_at"])


def _members_probe(world: World, target) -> Callable:
    return lambda: world.project(target).members


def _status_probe(world: World, execution_id: str) -> Callable:
    return lambda: world.db.executions.get(execution_id).status


def _active_version_probe(world: World, target) -> Callable:
    return lambda: world.project(target).active_version


def _version_probe(world: World, target, number: int) -> Callable:
    return lambda: world.db.model_versions.get(target.id, number) is not None


def _description_probe(world: World, target) -> Callable:
    return lambda: world.project(target).description


def _new_project_call(url: str, *, api: bool) -> Callable:
    def build(world, target, persona):
        name = unique("Created ")
        body = {"name": name, "problem_type": "classification", "description": "",
                "recipients": ""}
        kwargs = ({"json": {**body, "schema": SCHEMA}} if api else
                  {"data": {**body, "schema_json": json.dumps(SCHEMA)}})
        slug = name.lower().replace(" ", "-")
        return Call(url, kwargs, lambda: world.db.projects.get_by_slug(slug) is not None)
    return build


def _upload(url: str) -> Callable:
    def build(world, target, persona):
        name = unique("notes") + ".txt"
        return Call(url.format(t=target),
                    {"data": {"files": [(io.BytesIO(b"hello"), name)]},
                     "content_type": "multipart/form-data"},
                    _file_probe(world, target, name))
    return build


def _import_call(url: str) -> Callable:
    """A skops file of a real (tiny) scikit-learn model: an allowed call queues its import."""
    def build(world, target, persona):
        import skops.io as sio
        from sklearn.linear_model import LogisticRegression

        model = sio.dumps(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
        return Call(url.format(t=target),
                    {"data": {"model": (io.BytesIO(model), "model.skops")},
                     "content_type": "multipart/form-data"},
                    _executions_probe(world, target))
    return build


def _infer(url: str) -> Callable:
    return lambda world, target, persona: Call(url, {"data": sample_csv(),
                                                     "content_type": "multipart/form-data"})


def _fresh_user_probe(world: World, holder: dict) -> Callable:
    return lambda: world.db.users.get(holder["user"].id).active


def _deactivate_call(url: str, *, api: bool) -> Callable:
    def build(world, target, persona):
        victim = world.add_user("victim", password=None)
        holder = {"user": victim}
        if api:
            return Call(url.format(uid=victim.id), {"json": {"active": False}},
                        _fresh_user_probe(world, holder))
        return Call(url, {"data": {"action": "deactivate", "user_id": victim.id}},
                    _fresh_user_probe(world, holder))
    return build


def _unlock_call(world, target, persona):
    """Unlock the login of a fresh user whose failures started a back-off."""
    from entity.login_throttle import LoginThrottle

    victim = world.add_user("locked")
    throttle = LoginThrottle(world.db.login_failures)
    for _ in range(throttle.policy.free_failures + 1):
        throttle.failed(victim.email, "10.9.9.9")
    return Call(f"/api/v1/users/{victim.id}/unlock", {},
                lambda: throttle.locked_until(victim.email) is None)


def _invite_call(world, target, persona):
    email = f"{unique('invitee')}@example.com"
    return Call("/api/v1/users", {"json": {"email": email, "name": "Invitee", "role": "member"}},
                lambda: world.db.users.get_by_email(email) is not None)


def _revoke_own_token(world, target, persona):
    owner = world.user(persona) if persona != "anonymous" else world.user("viewer")
    token, _ = world.issue_token(owner)
    return Call(f"/api/v1/tokens/{token.id}", {},
                lambda: world.db.api_tokens.get(token.id).revoked_at is not None)


def _create_token(world, target, persona):
    user = world.user(persona) if persona != "anonymous" else None
    count = (lambda: len(world.db.api_tokens.list_for_user(user.id))) if user else None
    return Call("/api/v1/tokens", {"json": {"name": "matrix", "scope": "read"}}, count)


def _profile_post(world, target, persona):
    user = world.user(persona) if persona != "anonymous" else None
    count = (lambda: len(world.db.api_tokens.list_for_user(user.id))) if user else None
    return Call("/profile", {"data": {"action": "create_token", "name": "matrix",
                                      "scope": "read"}}, count)


def _login_call(url: str, *, api: bool) -> Callable:
    """Log in as a dedicated probe user (on a fresh client, so no persona's session moves)."""
    def build(world, target, persona):
        user = world.personas["prober"].user
        body = {"email": user.email, "password": PROBE_PASSWORD}
        return Call(url, {"json": body} if api else {"data": body})
    return build


PROBE_PASSWORD = "matrix password 2026"


def _set_member(url: str, *, api: bool) -> Callable:
    def build(world, target, persona):
        newcomer = world.personas["newcomer"].user
        body = {"email": newcomer.email, "role": "editor"}
        return Call(url.format(t=target), {"json": body} if api else {"data": body},
                    _members_probe(world, target))
    return build


def _remove_member(world, target, persona):
    uid = world.personas["bystander"].user.id
    return Call(f"/api/v1/projects/{target.id}/members/{uid}", {},
                _members_probe(world, target))


def _connection(world: World, *, granted_to: str | None = None,
                available_to_all: bool = False, team=None):
    """A fresh local-disk storage connection (made directly, no route involved), granted to
    the persona ``granted_to`` (if any) and to ``team`` (if any)."""
    from entity.storage_connection import StorageConnection, team_principal, user_principal

    folder = Path(world.app.config["DATA_DIR"]) / unique("elsewhere")
    folder.mkdir(parents=True)
    user = world.personas[granted_to].user if granted_to else None
    return world.db.storage_connections.add(StorageConnection(
        name=unique("Disk "), kind="local", settings={"directory": str(folder)},
        secrets=world.services.box.encrypt({}), available_to_all=available_to_all,
        grants=([user_principal(user.id)] if user else []) +
        ([team_principal(team.id)] if team else [])))


def _connection_call(url: str, body_key: str | None = None, body: dict | None = None,
                     probe: str = "exists") -> Callable:
    """A call on a fresh connection; ``probe``: whether it exists, or its name."""
    def build(world, target, persona):
        connection = _connection(world)

        def state():
            found = world.db.storage_connections.get(connection.id)
            return found is not None if probe == "exists" else found and found.name
        # a "name": None in the body gets a fresh name (names are unique)
        fields = {k: unique("Renamed ") if v is None else v for k, v in (body or {}).items()}
        kwargs = {body_key: fields} if body_key else {}
        return Call(url.format(cid=connection.id), kwargs,
                    state if probe != "none" else None)
    return build


def _new_connection_call(url: str, *, api: bool) -> Callable:
    def build(world, target, persona):
        name = unique("New disk ")
        folder = str(Path(world.app.config["DATA_DIR"]) / unique("new-disk"))
        body = {"name": name, "kind": "local", "directory": folder}
        if api:
            body = {"name": name, "kind": "local", "settings": {"directory": folder}}
        return Call(url, {"json": body} if api else {"data": body},
                    lambda: any(c.name == name for c in world.db.storage_connections.list()))
    return build


def _team_probe(world: World, team_id: str, what: str = "exists") -> Callable:
    def state():
        team = world.db.teams.get(team_id)
        if what == "exists" or team is None:
            return team is not None
        if what == "name":
            return team.name
        return sorted((m.user_id, m.role) for m in world.db.teams.members(team_id))
    return state


def _team_call(url: str, *, body_key: str | None = None, body: dict | None = None,
               probe: str | None = "exists", path_of=lambda team: team.id) -> Callable:
    """A call on a fresh team led by the teammate, with the bystander and the viewer as plain
    members; ``body`` may name ``"@newcomer"`` (the newcomer's e-mail) or ``None`` (a fresh
    name); ``url`` may name ``{tid}`` (the team's id, or what ``path_of`` gives) and
    ``{uid}`` (the bystander's id)."""
    def build(world, target, persona):
        team = world.new_team(lead=world.user("teammate"),
                              members=(world.personas["bystander"].user, world.user("viewer")))
        fields = {k: (unique("Renamed ") if v is None else
                      world.personas["newcomer"].user.email if v == "@newcomer" else v)
                  for k, v in (body or {}).items()}
        kwargs = {body_key: fields} if body_key else {}
        return Call(url.format(tid=path_of(team), uid=world.personas["bystander"].user.id),
                    kwargs, _team_probe(world, team.id, probe) if probe else None)
    return build


def _new_team_call(url: str, *, api: bool) -> Callable:
    def build(world, target, persona):
        name = unique("New team ")
        body = {"name": name, "description": "made by the matrix"}
        return Call(url, {"json": body} if api else {"data": body},
                    lambda: any(t.name == name for t in world.db.teams.list()))
    return build


def _project_teams_probe(world: World, target) -> Callable:
    return lambda: world.project(target).teams


def _set_project_team(world, target, persona):
    team = world.new_team()
    return Call(f"/api/v1/projects/{target.id}/teams",
                {"json": {"team": team.slug, "role": "viewer"}},
                _project_teams_probe(world, target))


def _remove_project_team(world, target, persona):
    return Call(f"/api/v1/projects/{target.id}/teams/{world.team.id}", {},
                _project_teams_probe(world, target))


def _signed_download(world, target, persona):
    """A link made by the project's viewer through the service GET .../files/link calls
    (public routes get no target project: it makes one)."""
    from services.context import Context
    from services.files import share_link

    target = target or world.target()
    link = share_link(Context(world.services, world.user("viewer")), target.project, DOC_FILE,
                      600)
    return Call(f"/api/v1/download/{link['token']}", {})


def _raw_upload(world, target, persona):
    name = unique("notes") + ".txt"
    return Call(f"/api/v1/projects/{target.id}/files/content?path=notes/{name}",
                {"data": b"hello"}, _file_probe(world, target, f"notes/{name}"))


def _move_call(url: str, *, api: bool) -> Callable:
    def build(world, target, persona):
        # granted to whoever tries: the project role alone decides here (grants: below)
        body = {"kind": "move", "target_connection_id": _connection(
            world, granted_to=persona if persona != "anonymous" else None).id}
        return Call(url.format(t=target), {"json": body} if api else {"data": body},
                    _executions_probe(world, target))
    return build


# -- retraining schedules and challengers --------------------------------------------------

def _new_schedule(world: World, target):
    from entity.base import utcnow
    from entity.retraining_schedule import RetrainingSchedule

    schedule = RetrainingSchedule(project_id=target.id, cron="0 3 * * *")
    schedule.reset_slots(utcnow())
    return world.db.retraining_schedules.add(schedule)


def _schedules_probe(world: World, target) -> Callable:
    return lambda: len(world.db.retraining_schedules.list_for_project(target.id))


def _schedule_call(url: str, body: dict | None = None, *, api: bool = True,
                   probe: str = "cron") -> Callable:
    """A call on a fresh schedule of the target; ``probe``: its cron, or whether it exists."""
    def build(world, target, persona):
        schedule = _new_schedule(world, target)

        def state():
            found = world.db.retraining_schedules.get(schedule.id)
            return found is not None if probe == "exists" else found and found.cron
        kwargs = {} if body is None else ({"json": body} if api else {"data": body})
        return Call(url.format(t=target, sid=schedule.id), kwargs, state)
    return build


def _create_schedule_call(url: str, *, api: bool) -> Callable:
    def build(world, target, persona):
        body = {"cron": "15 4 * * 1", "timezone": "Europe/Paris"}
        return Call(url.format(t=target), {"json": body} if api else {"data": body},
                    _schedules_probe(world, target))
    return build


def _challenger_call(url: str, *, probe: str) -> Callable:
    """A decision on v1 of the target made a waiting challenger of the active v2 (v1 has its
    files, so approving it passes the checks); ``probe``: the active version, or v1's
    challenge status."""
    def build(world, target, persona):
        world.db.model_versions.set_challenge(target.id, 1, {
            "status": "pending", "champion_version": 2, "reason": "waiting"})

        def state():
            if probe == "active":
                return world.project(target).active_version
            return world.db.model_versions.get(target.id, 1).challenge_status
        return Call(url.format(t=target), {}, state)
    return build


SCHEDULE_ROUTES: list[Route] = [
    Route("GET", "/api/v1/projects/<project_id>/challengers", "viewer", 200,
          _get("/api/v1/projects/{t.id}/challengers?status=pending")),
    Route("POST", "/api/v1/projects/<project_id>/models/<version>/approve", "editor", 200,
          _challenger_call("/api/v1/projects/{t.id}/models/1/approve", probe="active")),
    Route("POST", "/api/v1/projects/<project_id>/models/<version>/reject", "editor", 200,
          _challenger_call("/api/v1/projects/{t.id}/models/1/reject", probe="status")),
    Route("POST", "/projects/<slug>/models/<version>/approve", "editor", 303,
          _challenger_call("/projects/{t.slug}/models/1/approve", probe="active")),
    Route("POST", "/projects/<slug>/models/<version>/reject", "editor", 303,
          _challenger_call("/projects/{t.slug}/models/1/reject", probe="status")),
    Route("GET", "/projects/<slug>/retraining", "viewer", 200,
          _get("/projects/{t.slug}/retraining")),
    Route("POST", "/projects/<slug>/schedules", "editor", 303,
          _create_schedule_call("/projects/{t.slug}/schedules", api=False)),
    Route("POST", "/projects/<slug>/schedules/<schedule_id>", "editor", 303,
          _schedule_call("/projects/{t.slug}/schedules/{sid}", {"cron": "5 5 * * *"},
                         api=False)),
    Route("POST", "/projects/<slug>/schedules/<schedule_id>/delete", "editor", 303,
          _schedule_call("/projects/{t.slug}/schedules/{sid}/delete", probe="exists")),
    Route("GET", "/api/v1/projects/<project_id>/schedules", "viewer", 200,
          _get("/api/v1/projects/{t.id}/schedules")),
    Route("POST", "/api/v1/projects/<project_id>/schedules", "editor", 201,
          _create_schedule_call("/api/v1/projects/{t.id}/schedules", api=True)),
    Route("GET", "/api/v1/projects/<project_id>/schedules/<schedule_id>", "viewer", 200,
          _schedule_call("/api/v1/projects/{t.id}/schedules/{sid}"), changes=False),
    Route("PATCH", "/api/v1/projects/<project_id>/schedules/<schedule_id>", "editor", 200,
          _schedule_call("/api/v1/projects/{t.id}/schedules/{sid}", {"cron": "5 5 * * *"})),
    Route("DELETE", "/api/v1/projects/<project_id>/schedules/<schedule_id>", "editor", 204,
          _schedule_call("/api/v1/projects/{t.id}/schedules/{sid}", probe="exists")),
]


# -- live monitoring, alert rules, incidents, webhook (issue 22) ---------------------------------

def _rule_of(world: World, target):
    from entity.monitoring import AlertRule

    return world.db.alert_rules.add(AlertRule(project_id=target.id, kind="feature_drift",
                                              threshold=0.3))


def _rules_probe(world: World, target) -> Callable:
    return lambda: sorted((r.id, r.threshold) for r in world.db.alert_rules.for_project(
        target.id))


def _rule_call(method: str):
    def build(world, target, persona):
        rule = _rule_of(world, target)
        kwargs = {"json": {"threshold": 0.4}} if method == "PATCH" else {}
        return Call(f"/api/v1/projects/{target.id}/alert-rules/{rule.id}", kwargs,
                    _rules_probe(world, target))
    return build


def _incident_call(world, target, persona):
    from entity.monitoring import Incident

    incident = world.db.incidents.add(Incident(project_id=target.id, rule_id="r", version=1,
                                               kind="feature_drift", summary="Drift of a"))
    return Call(f"/api/v1/projects/{target.id}/incidents/{incident.id}", {})


def _webhook_of(world: World, target):
    from entity.webhook import Webhook

    world.db.webhooks.put(Webhook(project_id=target.id, url="https://hooks.example.com/old",
                                  secret=world.services.box.encrypt({"secret": "s"})))


def _webhook_probe(world: World, target) -> Callable:
    return lambda: (lambda w: w and w.url)(world.db.webhooks.get(target.id))


def _webhook_call(method: str):
    def build(world, target, persona):
        _webhook_of(world, target)
        kwargs = ({"json": {"url": "https://hooks.example.com/" + unique("new")}}
                  if method == "PUT" else {})
        return Call(f"/api/v1/projects/{target.id}/webhook", kwargs,
                    _webhook_probe(world, target) if method != "GET" else None)
    return build


MONITORING_ROUTES: list[Route] = [
    Route("GET", "/projects/<slug>/monitoring", "viewer", 200,
          _get("/projects/{t.slug}/monitoring")),
    Route("GET", "/api/v1/projects/<project_id>/monitoring", "viewer", 200,
          _get("/api/v1/projects/{t.id}/monitoring?granularity=window")),
    Route("GET", "/api/v1/projects/<project_id>/alert-rules", "viewer", 200,
          _get("/api/v1/projects/{t.id}/alert-rules")),
    Route("POST", "/api/v1/projects/<project_id>/alert-rules", "editor", 201,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/alert-rules",
                               {"json": {"kind": "error_rate", "threshold": 0.2}},
                               _rules_probe(w, t))),
    Route("PATCH", "/api/v1/projects/<project_id>/alert-rules/<rule_id>", "editor", 200,
          _rule_call("PATCH")),
    Route("DELETE", "/api/v1/projects/<project_id>/alert-rules/<rule_id>", "editor", 204,
          _rule_call("DELETE")),
    Route("GET", "/api/v1/projects/<project_id>/incidents", "viewer", 200,
          _get("/api/v1/projects/{t.id}/incidents")),
    Route("GET", "/api/v1/projects/<project_id>/incidents/<incident_id>", "viewer", 200,
          _incident_call),
    Route("GET", "/api/v1/projects/<project_id>/webhook", "viewer", 200, _webhook_call("GET")),
    Route("PUT", "/api/v1/projects/<project_id>/webhook", "owner", 200, _webhook_call("PUT")),
    Route("DELETE", "/api/v1/projects/<project_id>/webhook", "owner", 204,
          _webhook_call("DELETE")),
    Route("GET", "/api/v1/projects/<project_id>/webhook/deliveries", "viewer", 200,
          _get("/api/v1/projects/{t.id}/webhook/deliveries")),
]


def _limits_call(world, target, persona):
    """Site administrators only (a project's owner included is refused): no target is given
    to admin routes, so it makes one."""
    target = target or world.target()
    return Call(f"/api/v1/projects/{target.id}/limits", {"json": {"memory_mb": 1024}},
                lambda: world.db.execution_limits.get(target.id))


ROUTES: list[Route] = [
    # -- public ------------------------------------------------------------------------------
    Route("GET", "/login", "public", 200, _get("/login")),
    Route("POST", "/login", "public", 302, _login_call("/login", api=False),
          fresh_client=True, changes=False),
    Route("GET", "/setup", "public", 302, _get("/setup")),
    Route("POST", "/setup", "public", 302,
          lambda w, t, p: Call("/setup", {"data": {"email": "late@example.com", "name": "Late",
                                                   "password": "x" * 12, "confirm": "x" * 12}},
                               lambda: w.db.users.get_by_email("late@example.com")),
          changes=False),
    Route("GET", "/register", "public", 302, _get("/register")),
    Route("POST", "/register", "public", 302,
          lambda w, t, p: Call("/register", {"data": {"email": "reg@example.com", "name": "R",
                                                      "password": "y" * 12,
                                                      "confirm": "y" * 12}},
                               lambda: w.db.users.get_by_email("reg@example.com")),
          changes=False),
    Route("GET", "/forgot", "public", 200, _get("/forgot")),
    Route("POST", "/forgot", "public", 302,
          lambda w, t, p: Call("/forgot", {"data": {"email": "nobody@example.com"}})),
    Route("GET", "/invite/<secret>", "public", 400, _get("/invite/not-a-real-secret")),
    Route("POST", "/invite/<secret>", "public", 400,
          lambda w, t, p: Call("/invite/not-a-real-secret",
                               {"data": {"password": "z" * 12 + "abc", "confirm": "z" * 12 +
                                         "abc"}})),
    Route("GET", "/reset/<secret>", "public", 400, _get("/reset/not-a-real-secret")),
    Route("POST", "/reset/<secret>", "public", 400,
          lambda w, t, p: Call("/reset/not-a-real-secret",
                               {"data": {"password": "z" * 12 + "abc", "confirm": "z" * 12 +
                                         "abc"}})),
    Route("GET", "/healthz", "public", 200, _get("/healthz")),
    # single sign-on is not configured in the matrix's app (tests/controllers/
    # test_single_sign_on.py drives it against a real provider)
    Route("GET", "/login/sso", "public", 404, _get("/login/sso")),
    Route("GET", "/login/sso/callback", "public", 404,
          _get("/login/sso/callback?code=x&state=y")),
    Route("GET", "/static/<path:filename>", "public", 200, _get("/static/js/csrf.js")),
    Route("POST", "/api/v1/session", "public", 200, _login_call("/api/v1/session", api=True),
          fresh_client=True, changes=False),
    Route("POST", "/api/v1/setup", "public", 409,
          lambda w, t, p: Call("/api/v1/setup", {"json": {"email": "late@example.com",
                                                          "name": "Late",
                                                          "password": "x" * 12 + "abcd"}},
                               lambda: w.db.users.get_by_email("late@example.com")),
          changes=False),
    Route("GET", "/api/v1/openapi.json", "public", 200, _get("/api/v1/openapi.json")),
    Route("GET", "/api/v1/docs", "public", 200, _get("/api/v1/docs")),
    Route("POST", "/api/v1/password-reset", "public", 202,
          lambda w, t, p: Call("/api/v1/password-reset", {"json": {"email": "x@example.com"}})),
    # -- any logged-in user --------------------------------------------------------------------
    Route("GET", "/", "login", 200, _get("/")),
    Route("POST", "/logout", "login", 302, _get("/logout"), fresh_client=True),
    Route("GET", "/profile", "login", 200, _get("/profile")),
    Route("POST", "/profile", "login", 200, _profile_post),
    Route("GET", "/projects/new", "login", 200, _get("/projects/new")),
    Route("POST", "/projects/new", "login", 302, _new_project_call("/projects/new", api=False)),
    Route("GET", "/api/v1/session", "login", 200, _get("/api/v1/session")),
    Route("DELETE", "/api/v1/session", "login", 204, _get("/api/v1/session"),
          fresh_client=True),
    Route("GET", "/api/v1/projects", "login", 200, _get("/api/v1/projects")),
    Route("POST", "/api/v1/projects", "login", 201,
          _new_project_call("/api/v1/projects", api=True)),
    Route("POST", "/api/v1/schema/infer", "login", 200, _infer("/api/v1/schema/infer")),
    Route("GET", "/api/v1/tokens", "login", 200, _get("/api/v1/tokens")),
    Route("POST", "/api/v1/tokens", "login", 201, _create_token),
    Route("DELETE", "/api/v1/tokens/<token_id>", "login", 204, _revoke_own_token),
    # -- administrators ------------------------------------------------------------------------
    Route("GET", "/admin/users", "admin", 200, _get("/admin/users")),
    Route("POST", "/admin/users", "admin", 303, _deactivate_call("/admin/users", api=False)),
    Route("GET", "/admin/audit", "admin", 200, _get("/admin/audit")),
    Route("GET", "/admin/outbox", "admin", 200, _get("/admin/outbox")),
    # -- the sandbox and execution limits (thread_layer/sandbox.py) ----------------------------
    Route("GET", "/admin/sandbox", "admin", 200, _get("/admin/sandbox")),
    Route("GET", "/api/v1/projects/<project_id>/limits", "viewer", 200,
          _get("/api/v1/projects/{t.id}/limits")),
    Route("PUT", "/api/v1/projects/<project_id>/limits", "admin", 200, _limits_call),
    Route("GET", "/api/v1/users", "admin", 200, _get("/api/v1/users")),
    Route("POST", "/api/v1/users", "admin", 201, _invite_call),
    Route("PATCH", "/api/v1/users/<user_id>", "admin", 200,
          _deactivate_call("/api/v1/users/{uid}", api=True)),
    Route("POST", "/api/v1/users/<user_id>/unlock", "admin", 204, _unlock_call),
    Route("GET", "/api/v1/audit", "admin", 200, _get("/api/v1/audit")),
    Route("GET", "/api/v1/outbox", "admin", 200, _get("/api/v1/outbox")),
    Route("GET", "/admin/storage", "admin", 200, _get("/admin/storage")),
    Route("GET", "/admin/storage/new", "admin", 200, _get("/admin/storage/new?kind=local")),
    Route("POST", "/admin/storage/new", "admin", 303,
          _new_connection_call("/admin/storage/new", api=False)),
    Route("GET", "/admin/storage/<connection_id>", "admin", 200,
          _connection_call("/admin/storage/{cid}", probe="none")),
    Route("POST", "/admin/storage/<connection_id>", "admin", 303,
          _connection_call("/admin/storage/{cid}", "data", {"name": None}, probe="name")),
    Route("POST", "/admin/storage/<connection_id>/test", "admin", 303,
          _connection_call("/admin/storage/{cid}/test", probe="none")),
    Route("POST", "/admin/storage/<connection_id>/delete", "admin", 303,
          _connection_call("/admin/storage/{cid}/delete")),
    Route("GET", "/api/v1/storage-connections", "admin", 200,
          _get("/api/v1/storage-connections")),
    Route("POST", "/api/v1/storage-connections", "admin", 201,
          _new_connection_call("/api/v1/storage-connections", api=True)),
    Route("GET", "/api/v1/storage-connections/<connection_id>", "admin", 200,
          _connection_call("/api/v1/storage-connections/{cid}", probe="none")),
    Route("PATCH", "/api/v1/storage-connections/<connection_id>", "admin", 200,
          _connection_call("/api/v1/storage-connections/{cid}", "json", {"name": None},
                           probe="name")),
    Route("DELETE", "/api/v1/storage-connections/<connection_id>", "admin", 204,
          _connection_call("/api/v1/storage-connections/{cid}")),
    Route("POST", "/api/v1/storage-connections/<connection_id>/test", "admin", 200,
          _connection_call("/api/v1/storage-connections/{cid}/test", probe="none")),
    # -- project pages ---------------------------------------------------------------------
    Route("GET", "/projects/<slug>", "viewer", 200, _get("/projects/{t.slug}")),
    Route("GET", "/projects/<slug>/files", "viewer", 200, _get("/projects/{t.slug}/files")),
    Route("GET", "/projects/<slug>/files/download", "viewer", 200,
          _get("/projects/{t.slug}/files/download?path=" + DOC_FILE)),
    Route("GET", "/projects/<slug>/executions/<execution_id>", "viewer", 200,
          _get("/projects/{t.slug}/executions/{t.predict_id}")),
    Route("GET", "/projects/<slug>/executions/<execution_id>/output.csv", "viewer", 200,
          _get("/projects/{t.slug}/executions/{t.predict_id}/output.csv")),
    Route("GET", "/projects/<slug>/models/<version>", "viewer", 200,
          _get("/projects/{t.slug}/models/1")),
    Route("GET", "/projects/<slug>/settings", "editor", 200, _get("/projects/{t.slug}/settings")),
    Route("POST", "/projects/<slug>/settings", "editor", 302,
          lambda w, t, p: Call(f"/projects/{t.slug}/settings",
                               {"data": {"description": "changed"}}, _description_probe(w, t))),
    Route("POST", "/projects/<slug>/files/upload", "editor", 201,
          _upload("/projects/{t.slug}/files/upload?path=")),
    Route("POST", "/projects/<slug>/files/delete", "editor", 303,
          lambda w, t, p: Call(f"/projects/{t.slug}/files/delete", {"data": {"path": DOC_FILE}},
                               _file_probe(w, t, DOC_FILE))),
    Route("POST", "/projects/<slug>/files/move", "editor", 303,
          lambda w, t, p: Call(f"/projects/{t.slug}/files/move",
                               {"data": {"path": DOC_FILE, "to": "moved/"}},
                               _file_probe(w, t, DOC_FILE))),
    Route("POST", "/projects/<slug>/files/folder", "editor", 303,
          lambda w, t, p: Call(f"/projects/{t.slug}/files/folder",
                               {"data": {"parent": "", "name": "fresh"}},
                               _folder_probe(w, t, "fresh/"))),
    Route("POST", START_RULE, "editor", 303,
          lambda w, t, p: Call(f"/projects/{t.slug}/train", {}, _executions_probe(w, t)),
          variant="train"),
    Route("POST", START_RULE, "editor", 303,
          lambda w, t, p: Call(f"/projects/{t.slug}/predict", {}, _executions_probe(w, t)),
          variant="predict"),
    Route("POST", START_RULE, "owner", 303, _move_call("/projects/{t.slug}/move", api=False),
          variant="move"),
    Route("POST", "/projects/<slug>/executions/<execution_id>/cancel", "editor", 303,
          lambda w, t, p: Call(f"/projects/{t.slug}/executions/{t.queued_id}/cancel", {},
                               _status_probe(w, t.queued_id)), active=True),
    Route("POST", "/projects/<slug>/models/<version>/promote", "editor", 303,
          lambda w, t, p: Call(f"/projects/{t.slug}/models/1/promote", {},
                               _active_version_probe(w, t))),
    Route("GET", "/projects/<slug>/models/compare", "viewer", 200,
          _get("/projects/{t.slug}/models/compare?a=1&b=2")),
    Route("GET", "/projects/<slug>/records", "viewer", 200,
          _get("/projects/{t.slug}/records?labeled=false")),
    Route("GET", "/projects/<slug>/records/export", "viewer", 200,
          _get("/projects/{t.slug}/records/export?format=csv")),
    Route("POST", "/projects/<slug>/models/import", "editor", 303,
          _import_call("/projects/{t.slug}/models/import")),
    Route("POST", "/projects/<slug>/models/rollback", "editor", 303,
          lambda w, t, p: Call(f"/projects/{t.slug}/models/rollback", {},
                               _active_version_probe(w, t))),
    Route("POST", "/projects/<slug>/models/<version>/delete", "editor", 303,
          lambda w, t, p: Call(f"/projects/{t.slug}/models/1/delete", {},
                               _version_probe(w, t, 1))),
    Route("POST", "/projects/<slug>/members", "owner", 303,
          _set_member("/projects/{t.slug}/members", api=False)),
    Route("POST", "/projects/<slug>/delete", "owner", 302,
          lambda w, t, p: Call(f"/projects/{t.slug}/delete", {}, _project_probe(w, t))),
    # -- project API ---------------------------------------------------------------------------
    Route("GET", "/api/v1/projects/<project_id>", "viewer", 200, _get("/api/v1/projects/{t.id}")),
    Route("GET", "/api/v1/projects/<project_id>/files", "viewer", 200,
          _get("/api/v1/projects/{t.id}/files")),
    Route("GET", "/api/v1/projects/<project_id>/files/content", "viewer", 200,
          _get("/api/v1/projects/{t.id}/files/content?path=" + DOC_FILE)),
    Route("GET", "/api/v1/projects/<project_id>/executions", "viewer", 200,
          _get("/api/v1/projects/{t.id}/executions")),
    Route("GET", "/api/v1/projects/<project_id>/executions/<execution_id>", "viewer", 200,
          _get("/api/v1/projects/{t.id}/executions/{t.predict_id}")),
    Route("GET", "/api/v1/projects/<project_id>/executions/<execution_id>/logs", "viewer", 200,
          _get("/api/v1/projects/{t.id}/executions/{t.predict_id}/logs")),
    Route("GET", "/api/v1/projects/<project_id>/executions/<execution_id>/output", "viewer", 200,
          _get("/api/v1/projects/{t.id}/executions/{t.predict_id}/output")),
    Route("GET", "/api/v1/projects/<project_id>/executions/<execution_id>/output.csv", "viewer",
          200, _get("/api/v1/projects/{t.id}/executions/{t.predict_id}/output.csv")),
    Route("GET", "/api/v1/projects/<project_id>/models", "viewer", 200,
          _get("/api/v1/projects/{t.id}/models")),
    Route("GET", "/api/v1/projects/<project_id>/models/<version>", "viewer", 200,
          _get("/api/v1/projects/{t.id}/models/1")),
    Route("GET", "/api/v1/projects/<project_id>/usage", "viewer", 200,
          _get("/api/v1/projects/{t.id}/usage")),
    # prediction records: everyone on the project reads them; editors (who may predict) label
    Route("GET", "/api/v1/projects/<project_id>/records", "viewer", 200,
          _get("/api/v1/projects/{t.id}/records")),
    Route("GET", "/api/v1/projects/<project_id>/records/export", "viewer", 200,
          _get("/api/v1/projects/{t.id}/records/export?format=jsonl")),
    Route("GET", "/api/v1/projects/<project_id>/records/<prediction_id>", "viewer", 200,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/records/{_fresh_record(w, t)}", {})),
    Route("POST", "/api/v1/projects/<project_id>/feedback", "editor", 200, _feedback_call),
    Route("GET", "/api/v1/projects/<project_id>/files/link", "viewer", 200,
          _get("/api/v1/projects/{t.id}/files/link?path=" + DOC_FILE)),
    Route("GET", "/api/v1/projects/<project_id>/executions/<execution_id>/events", "viewer", 200,
          _get("/api/v1/projects/{t.id}/executions/{t.predict_id}/events")),
    Route("GET", "/api/v1/download/<token>", "public", 200, _signed_download),
    Route("PUT", "/api/v1/projects/<project_id>/files/content", "editor", 201, _raw_upload),
    # The matrix's model versions have no files, so an allowed call gets as far as loading
    # the model and is refused there (409: the artifact does not match the registry).
    Route("POST", "/api/v1/projects/<project_id>/predict", "editor", 409,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/predict",
                               {"json": {"records": [{"a": 1, "b": 2}]}}), changes=False),
    Route("GET", "/api/v1/projects/<project_id>/members", "viewer", 200,
          _get("/api/v1/projects/{t.id}/members")),
    Route("PATCH", "/api/v1/projects/<project_id>", "editor", 200,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}", {"json": {"description": "changed"}},
                               _description_probe(w, t))),
    Route("POST", "/api/v1/projects/<project_id>/files", "editor", 201,
          _upload("/api/v1/projects/{t.id}/files?path=")),
    Route("DELETE", "/api/v1/projects/<project_id>/files", "editor", 204,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/files?path={DOC_FILE}", {},
                               _file_probe(w, t, DOC_FILE))),
    Route("POST", "/api/v1/projects/<project_id>/files/move", "editor", 200,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/files/move",
                               {"json": {"path": DOC_FILE, "to": "moved/"}},
                               _file_probe(w, t, DOC_FILE))),
    Route("POST", "/api/v1/projects/<project_id>/folders", "editor", 201,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/folders", {"json": {"path": "fresh/"}},
                               _folder_probe(w, t, "fresh/"))),
    Route("POST", "/api/v1/projects/<project_id>/executions", "editor", 202,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/executions", {"json": {"kind": "train"}},
                               _executions_probe(w, t)), variant="train"),
    Route("POST", "/api/v1/projects/<project_id>/executions", "editor", 202,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/executions",
                               {"json": {"kind": "predict"}}, _executions_probe(w, t)),
          variant="predict"),
    Route("POST", "/api/v1/projects/<project_id>/executions", "owner", 202,
          _move_call("/api/v1/projects/{t.id}/executions", api=True), variant="move"),
    Route("POST", "/api/v1/projects/<project_id>/executions/<execution_id>/cancel", "editor", 202,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/executions/{t.queued_id}/cancel", {},
                               _status_probe(w, t.queued_id)), active=True),
    Route("POST", "/api/v1/projects/<project_id>/models/<version>/promote", "editor", 200,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/models/1/promote", {},
                               _active_version_probe(w, t))),
    Route("GET", "/api/v1/projects/<project_id>/models/compare", "viewer", 200,
          _get("/api/v1/projects/{t.id}/models/compare?a=1&b=2")),
    Route("POST", "/api/v1/projects/<project_id>/models/import", "editor", 202,
          _import_call("/api/v1/projects/{t.id}/models/import")),
    Route("POST", "/api/v1/projects/<project_id>/models/rollback", "editor", 200,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/models/rollback", {},
                               _active_version_probe(w, t))),
    Route("DELETE", "/api/v1/projects/<project_id>/models/<version>", "editor", 204,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/models/1", {},
                               _version_probe(w, t, 1))),
    Route("PUT", "/api/v1/projects/<project_id>/members", "owner", 200,
          _set_member("/api/v1/projects/{t.id}/members", api=True)),
    Route("DELETE", "/api/v1/projects/<project_id>/members/<user_id>", "owner", 204,
          _remove_member),
    Route("DELETE", "/api/v1/projects/<project_id>", "owner", 204,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}", {}, _project_probe(w, t))),
    # -- teams -----------------------------------------------------------------------------
    Route("GET", "/teams", "login", 200, _get("/teams")),
    Route("POST", "/teams", "admin", 303, _new_team_call("/teams", api=False)),
    Route("GET", "/teams/<slug>", "login", 200,
          _team_call("/teams/{tid}", probe=None, path_of=lambda team: team.slug)),
    Route("POST", "/teams/<slug>", "lead", 303,
          _team_call("/teams/{tid}", body_key="data", body={"email": "@newcomer"},
                     probe="members", path_of=lambda team: team.slug)),
    Route("POST", "/teams/<slug>/delete", "admin", 303,
          _team_call("/teams/{tid}/delete", path_of=lambda team: team.slug)),
    Route("GET", "/api/v1/teams", "login", 200, _get("/api/v1/teams")),
    Route("POST", "/api/v1/teams", "admin", 201, _new_team_call("/api/v1/teams", api=True)),
    Route("GET", "/api/v1/teams/<team_id>", "login", 200,
          _team_call("/api/v1/teams/{tid}", probe=None)),
    Route("PATCH", "/api/v1/teams/<team_id>", "admin", 200,
          _team_call("/api/v1/teams/{tid}", body_key="json", body={"name": None},
                     probe="name")),
    Route("DELETE", "/api/v1/teams/<team_id>", "admin", 204,
          _team_call("/api/v1/teams/{tid}")),
    Route("GET", "/api/v1/teams/<team_id>/members", "login", 200,
          _team_call("/api/v1/teams/{tid}/members", probe=None)),
    Route("PUT", "/api/v1/teams/<team_id>/members", "lead", 200,
          _team_call("/api/v1/teams/{tid}/members", body_key="json",
                     body={"email": "@newcomer", "role": "member"}, probe="members")),
    Route("DELETE", "/api/v1/teams/<team_id>/members/<user_id>", "lead", 204,
          _team_call("/api/v1/teams/{tid}/members/{uid}", probe="members")),
    Route("PUT", "/api/v1/projects/<project_id>/teams", "owner", 200, _set_project_team),
    Route("DELETE", "/api/v1/projects/<project_id>/teams/<team_id>", "owner", 204,
          _remove_project_team),
]
ROUTES += SCHEDULE_ROUTES
ROUTES += MONITORING_ROUTES


# -- the catalog (issue 23): a listing on the target project, seen by its people only -----------

def _listing_of(world: World, target, *, template: bool = False):
    """A listing of the target project made directly, visible to the project's people alone
    (visibility "teams" naming no team), so that roles decide as on the project."""
    from entity.catalog import Listing, refresh_listings

    target = target or world.target()  # public routes get no target: one is made
    listing = world.db.listings.add(Listing(
        project_id=target.id, owner_id=target.project.owner_id, title=unique("Listing "),
        visibility="teams", teams=[], template=template))
    refresh_listings(world.db, target.id)
    return world.db.listings.get(listing.id)


def _subscription_of(world: World, listing):
    """A subscription of the bystander (a viewer of the target project) to ``listing``."""
    from entity.catalog import Subscription

    sub, _ = Subscription.issue(listing.id, world.personas["bystander"].user.id, 5, 50)
    return world.db.subscriptions.add(sub)


def _on_listing(path: str, method_body: dict | None = None, probe=None, *,
                template: bool = False) -> Callable:
    def build(world, target, persona):
        listing = _listing_of(world, target, template=template)
        body = dict(method_body or {})
        if "name" in body:
            body["name"] = unique("From template ")
        state = probe(world, listing) if probe else None
        return Call(path.format(lid=listing.id, t=target), {"json": body} if method_body
                    is not None else {}, state)
    return build


def _on_subscription(path: str, body: dict | None, probe) -> Callable:
    def build(world, target, persona):
        listing = _listing_of(world, target)
        sub = _subscription_of(world, listing)
        return Call(path.format(lid=listing.id, sid=sub.id),
                    {"json": body} if body is not None else {}, probe(world, sub))
    return build


def _listing_probe(world, listing):
    return lambda: (lambda found: found and (found.title, found.status))(
        world.db.listings.get(listing.id))


def _subscriptions_probe(world, listing):
    return lambda: len(world.db.subscriptions.for_listing(listing.id))


def _template_probe(world, listing):
    return lambda: len(world.db.projects.list())


def _quota_probe(world, sub):
    return lambda: world.db.subscriptions.get(sub.id).per_minute


def _sub_status_probe(world, sub):
    return lambda: world.db.subscriptions.get(sub.id).status


def _project_listings_probe(world, target):
    return lambda: len(world.db.listings.for_project(target.id))


CATALOG_ROUTES: list[Route] = [
    Route("GET", "/api/v1/catalog", "public", 200, _get("/api/v1/catalog?q=listing")),
    Route("GET", "/catalog", "public", 200, _get("/catalog?q=listing")),
    Route("GET", "/api/v1/openapi-consumer.json", "public", 200,
          _get("/api/v1/openapi-consumer.json")),
    # without a consumer key, the consumer routes answer 401 to everyone (a login is no key;
    # what a consumer key reaches is tested route by route in tests/controllers/test_catalog)
    Route("GET", "/api/v1/consume/<listing_id>", "public", 401,
          _on_listing("/api/v1/consume/{lid}")),
    Route("POST", "/api/v1/consume/<listing_id>/predict", "public", 401,
          _on_listing("/api/v1/consume/{lid}/predict", {"records": [{"a": 1, "b": 2}]})),
    Route("POST", "/api/v1/consume/<listing_id>/score", "public", 401,
          _on_listing("/api/v1/consume/{lid}/score", {"records": [{"a": 1, "b": 2, "y": "x"}]})),
    Route("GET", "/api/v1/subscriptions", "login", 200, _get("/api/v1/subscriptions")),
    Route("PUT", "/api/v1/projects/<project_id>/tags", "editor", 200,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/tags", {"json": {"tags": [unique("t")]}},
                               lambda: w.project(t).settings.get("tags"))),
    Route("PUT", "/api/v1/projects/<project_id>/models/<version>/tags", "editor", 200,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/models/1/tags",
                               {"json": {"tags": [unique("t")]}},
                               lambda: w.db.model_versions.get(t.id, 1).tags)),
    Route("GET", "/api/v1/projects/<project_id>/listings", "owner", 200,
          _get("/api/v1/projects/{t.id}/listings")),
    Route("POST", "/api/v1/projects/<project_id>/listings", "owner", 201,
          lambda w, t, p: Call(f"/api/v1/projects/{t.id}/listings",
                               {"json": {"title": unique("Published ")}},
                               _project_listings_probe(w, t))),
    Route("GET", "/api/v1/catalog/<listing_id>", "viewer", 200,
          _on_listing("/api/v1/catalog/{lid}"), anonymous_refused=404),
    Route("GET", "/api/v1/catalog/<listing_id>/card", "viewer", 200,
          _on_listing("/api/v1/catalog/{lid}/card"), anonymous_refused=404),
    Route("GET", "/catalog/<listing_id>", "viewer", 200, _on_listing("/catalog/{lid}"),
          anonymous_refused=404),
    Route("PATCH", "/api/v1/catalog/<listing_id>", "owner", 200,
          _on_listing("/api/v1/catalog/{lid}", {"status": "unpublished"}, _listing_probe)),
    Route("DELETE", "/api/v1/catalog/<listing_id>", "owner", 204,
          _on_listing("/api/v1/catalog/{lid}", None, _listing_probe)),
    Route("GET", "/api/v1/catalog/<listing_id>/consumers", "owner", 200,
          _on_listing("/api/v1/catalog/{lid}/consumers")),
    Route("PATCH", "/api/v1/catalog/<listing_id>/consumers/<subscription_id>", "owner", 200,
          _on_subscription("/api/v1/catalog/{lid}/consumers/{sid}", {"per_minute": 3},
                           _quota_probe)),
    Route("DELETE", "/api/v1/catalog/<listing_id>/consumers/<subscription_id>", "owner", 204,
          _on_subscription("/api/v1/catalog/{lid}/consumers/{sid}", None, _sub_status_probe)),
    Route("POST", "/api/v1/catalog/<listing_id>/subscriptions", "viewer", 201,
          _on_listing("/api/v1/catalog/{lid}/subscriptions", {}, _subscriptions_probe)),
    Route("POST", "/api/v1/catalog/<listing_id>/template", "viewer", 201,
          _on_listing("/api/v1/catalog/{lid}/template", {"name": None}, _template_probe,
                      template=True)),
]
ROUTES.extend(CATALOG_ROUTES)


def allowed(route: Route, persona: str) -> bool:
    """Whether the table lets ``persona`` call ``route``."""
    if route.access == "public":
        return True
    if persona == "anonymous":
        return False
    if route.access == "login" or persona == "admin":
        return True
    if route.access == "lead":  # the team a lead route acts on is led by the teammate
        return persona == "teammate"
    if route.access == "admin" or persona in STRANGERS:
        return False
    return RANK[PROJECT_ROLE[persona]] >= RANK[route.access]


def expected_status(route: Route, persona: str) -> int:
    """The table's verdict for ``persona`` calling ``route`` with a cookie session."""
    if allowed(route, persona):
        return route.ok
    if persona == "anonymous":
        if route.anonymous_refused is not None:
            return route.anonymous_refused
        return 401 if route.api else 302  # to the login page
    if persona in STRANGERS and route.project:
        return 404  # a project you have no role on looks absent
    return 403


def _cases(personas, routes, token: str | None = None):
    return [pytest.param(route, persona, id=f"{route.key} | {persona}" +
                         (f" | {token} token" if token else ""))
            for route in routes for persona in personas]


@pytest.fixture(scope="module", autouse=True)
def _prober(world):
    """Users that routes act upon: a login probe and a future project member."""
    world.personas["prober"] = Persona("prober", world.add_user("prober",
                                                                password=PROBE_PASSWORD), None)
    world.personas["newcomer"] = Persona("newcomer", world.add_user("newcomer", password=None),
                                         None)


def _client_for(world: World, route: Route, persona: str):
    if not route.fresh_client:
        return world.personas[persona].client
    if persona == "anonymous":
        return anonymous_client(world.app)
    if persona == "admin":
        return login_client(world.app, ADMIN["email"], ADMIN["password"])
    return login_client(world.app, world.user(persona).email)


def _send(client, method: str, call: Call, headers: dict):
    # Each request comes from its own address, so that the failed logins of the matrix never
    # add up to the per-address limit.
    n = int(unique(""))
    environ = {"REMOTE_ADDR": f"10.1.{n // 250 % 250}.{n % 250}"}
    return client.open(call.url, method=method, headers=headers, environ_base=environ,
                       **call.kwargs)


def _check(world: World, route: Route, persona: str, response, expected: int, before, call,
           permitted: bool):
    assert response.status_code == expected, (
        f"{route.key} as {persona}: expected {expected}, got {response.status_code}: "
        f"{response.get_data(as_text=True)[:300]}")
    if expected in (401, 403, 404) or response.status_code >= 400:
        if route.api or response.is_json:
            error = response.get_json()["error"]
            assert error["code"] and error["message"]
    if persona == "anonymous" and route.access != "public" and not route.api and \
            route.anonymous_refused is None:
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login", response.headers["Location"]
    if call.probe is None:
        return
    after = call.probe()
    if permitted and route.changes:
        assert after != before, f"{route.key} as {persona} was allowed but changed nothing"
    elif not permitted:
        assert after == before, f"{route.key} as {persona} was refused but changed the state"


def _target_for(world: World, route: Route):
    return world.target(active=route.active) if route.project else None


# -- the table covers the app --------------------------------------------------------------

def test_every_route_is_in_the_table(world):
    in_app = {f"{method} {rule.rule}" for rule in world.app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    in_table = {f"{r.method} {r.rule}" for r in ROUTES}
    assert not in_app - in_table, f"routes without expectations: {sorted(in_app - in_table)}"
    assert not in_table - in_app, f"the table names routes that are gone: " \
                                  f"{sorted(in_table - in_app)}"


# -- cookie sessions -----------------------------------------------------------------------

@pytest.mark.slow  # every route x persona: `make test-fast` leaves the matrix out
@pytest.mark.parametrize("route, persona", _cases(PERSONAS, ROUTES))
def test_cookie_session(world, route, persona):
    target = _target_for(world, route)
    call = route.build(world, target, persona)
    client = _client_for(world, route, persona)
    before = call.probe() if call.probe else None
    headers = {} if route.method == "GET" else {"X-CSRFToken": client.csrf_token}
    response = _send(client, route.method, call, headers)
    _check(world, route, persona, response, expected_status(route, persona), before, call,
           allowed(route, persona))


# -- API bearer tokens ---------------------------------------------------------------------

API_ROUTES = [r for r in ROUTES if r.api]
WRITE_ROUTES = [r for r in API_ROUTES if r.method != "GET"]


@pytest.mark.slow  # every route x persona: `make test-fast` leaves the matrix out
@pytest.mark.parametrize("route, persona", _cases(LOGGED_IN, API_ROUTES, "write"))
def test_write_token(world, route, persona):
    target = _target_for(world, route)
    call = route.build(world, target, persona)
    before = call.probe() if call.probe else None
    client = world.app.test_client()  # no cookie: the token alone authenticates
    headers = {"Authorization": f"Bearer {world.personas[persona].write_token}"}
    response = _send(client, route.method, call, headers)
    _check(world, route, persona, response, expected_status(route, persona), before, call,
           allowed(route, persona))


@pytest.mark.slow  # every route x persona: `make test-fast` leaves the matrix out
@pytest.mark.parametrize("route, persona", _cases(LOGGED_IN, API_ROUTES, "read"))
def test_read_token(world, route, persona):
    """A read-only token reads what its user may read, and changes nothing anywhere."""
    target = _target_for(world, route)
    call = route.build(world, target, persona)
    before = call.probe() if call.probe else None
    client = world.app.test_client()
    headers = {"Authorization": f"Bearer {world.personas[persona].read_token}"}
    response = _send(client, route.method, call, headers)
    expected = expected_status(route, persona) if route.method == "GET" else 403
    _check(world, route, persona, response, expected, before, call,
           allowed(route, persona) and route.method == "GET")
    if route.method != "GET":
        assert "read-only" in response.get_json()["error"]["message"]


# -- listings ------------------------------------------------------------------------------

@pytest.mark.parametrize("persona", LOGGED_IN)
def test_listings_show_exactly_the_visible_projects(world, persona):
    target = world.target()
    client = world.personas[persona].client
    html = client.get("/").get_data(as_text=True)
    listed, page = set(), 1
    while True:
        body = client.get(f"/api/v1/projects?per_page=200&page={page}").get_json()
        listed |= {p["id"] for p in body["items"]}
        if page * 200 >= body["total"]:
            break
        page += 1
    sees = persona not in STRANGERS
    assert (target.project.name in html) is sees
    assert (target.id in listed) is sees
    own = world.outsider_project
    assert (own.id in listed) is (persona in ("outsider", "admin"))


# -- model version folders -------------------------------------------------------------------
# Everyone who may read the project reads models/v1/, and nobody, admins included, changes it
# through the file manager: a version is deleted whole, through the registry (which also
# verifies a version's files before promoting it).

MODEL_FILE = "models/v1/model.joblib"
MODEL_FOLDER_CHANGES = {
    "API delete file": ("DELETE", "/api/v1/projects/{t.id}/files?path=" + MODEL_FILE, {}),
    "API delete version folder": ("DELETE", "/api/v1/projects/{t.id}/files?path=models/v1/",
                                  {}),
    "API move out": ("POST", "/api/v1/projects/{t.id}/files/move",
                     {"json": {"path": MODEL_FILE, "to": "notes/"}}),
    "API rename": ("POST", "/api/v1/projects/{t.id}/files/move",
                   {"json": {"path": MODEL_FILE, "to": "models/v1/", "name": "other.joblib"}}),
    "API move in": ("POST", "/api/v1/projects/{t.id}/files/move",
                    {"json": {"path": DOC_FILE, "to": "models/v1/"}}),
    "API upload": ("POST", "/api/v1/projects/{t.id}/files?path=models/v1/",
                   {"data": {"files": "model.joblib"}, "content_type": "multipart/form-data"}),
    "API put": ("PUT", "/api/v1/projects/{t.id}/files/content?path=" + MODEL_FILE,
                {"data": b"poisoned"}),
    "API new folder": ("POST", "/api/v1/projects/{t.id}/folders",
                       {"json": {"path": "models/v1/extra/"}}),
    "page delete": ("POST", "/projects/{t.slug}/files/delete", {"data": {"path": MODEL_FILE}}),
    "page move": ("POST", "/projects/{t.slug}/files/move",
                  {"data": {"path": MODEL_FILE, "to": "notes/"}}),
    "page upload": ("POST", "/projects/{t.slug}/files/upload?path=models/v1/",
                    {"data": {"files": "model.joblib"}, "content_type": "multipart/form-data"}),
    "page new folder": ("POST", "/projects/{t.slug}/files/folder",
                        {"data": {"parent": "models/v1/", "name": "extra"}}),
}


@pytest.fixture(scope="module")
def model_target(world):
    return world.target()


def _model_folder_state(world: World, target) -> tuple:
    files = world.services.resolver.files(target.project)
    return (files.sha256(MODEL_FILE), sorted(o.key for o in files.list_files("models/v1/")),
            files.exists(DOC_FILE))


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("change", sorted(MODEL_FOLDER_CHANGES))
def test_model_version_folders_are_read_only_for_everyone(world, model_target, persona,
                                                          change):
    method, url, kwargs = MODEL_FOLDER_CHANGES[change]
    if isinstance(kwargs.get("data"), dict) and "files" in kwargs["data"]:  # a fresh stream
        kwargs = {**kwargs, "data": {"files": [(io.BytesIO(b"x"), kwargs["data"]["files"])]}}
    before = _model_folder_state(world, model_target)
    client = world.personas[persona].client
    headers = {"X-CSRFToken": client.csrf_token}
    page = not url.startswith("/api/")
    if page and persona != "anonymous":
        headers["Accept"] = "application/json"
    response = _send(client, method, Call(url.format(t=model_target), kwargs), headers)
    if persona == "anonymous":
        assert response.status_code == (302 if page else 401)
    elif persona in STRANGERS:
        assert response.status_code == 404
    else:
        assert response.status_code == 403, response.get_data(as_text=True)[:300]
        if persona in ("editor", "owner", "admin", "teammate"):
            error = response.get_json()["error"]
            assert error["code"] == "read_only_folder", error
            assert "deleted whole, through the model registry" in error["message"]
    assert _model_folder_state(world, model_target) == before


@pytest.mark.parametrize("persona", PERSONAS)
def test_model_version_folders_are_readable_by_the_project(world, model_target, persona):
    client = world.personas[persona].client
    response = client.get(f"/api/v1/projects/{model_target.id}/files/content?path={MODEL_FILE}")
    expected = {"anonymous": 401, "outsider": 404, "non_member": 404}.get(persona, 200)
    assert response.status_code == expected


# -- storage connections, granted and not --------------------------------------------------

GRANTS = ("granted", "not granted", "available to all", "granted to the teammate's team")


@pytest.mark.parametrize("grant", GRANTS)
@pytest.mark.parametrize("persona", LOGGED_IN)
def test_storage_connections_are_usable_and_shown_only_where_granted(world, persona, grant):
    """The connection shows on /projects/new, takes a new project (page and API) and is a
    move target exactly for admins, the users it is granted to (themselves or through a
    team), and everyone when it is available to all projects; to the others it looks
    absent."""
    to_team = grant == "granted to the teammate's team"
    disk = _connection(world, granted_to=persona if grant == "granted" else None,
                       available_to_all=grant == "available to all",
                       team=world.team if to_team else None)
    usable = (grant not in ("not granted", "granted to the teammate's team")
              or persona == "admin" or (to_team and persona == "teammate"))
    client = world.personas[persona].client
    headers = {"X-CSRFToken": client.csrf_token}
    page = client.get("/projects/new").get_data(as_text=True)
    assert (disk.id in page) is usable and (disk.name in page) is usable

    name = unique("On disk ")
    created = client.post("/api/v1/projects", headers=headers, json={
        "name": name, "problem_type": "classification", "schema": SCHEMA,
        "storage_connection_id": disk.id})
    assert created.status_code == (201 if usable else 422), created.get_json()
    if not usable:
        assert created.get_json()["error"]["details"] == {
            "storage_connection_id": "No such storage connection."}
    on_page = client.post("/projects/new", data={
        "csrf_token": client.csrf_token, "name": unique("Paged "), "problem_type":
        "classification", "schema_json": json.dumps(SCHEMA), "storage_connection_id": disk.id})
    assert on_page.status_code == (302 if usable else 422)
    on_disk = [p.name for p in world.db.projects.list() if p.storage_connection_id == disk.id]
    assert (name in on_disk) is usable and len(on_disk) == (2 if usable else 0)

    if persona in ("owner", "admin") and not to_team:  # the roles that may move a project
        target = world.target()
        moved = client.post(f"/api/v1/projects/{target.id}/executions", headers=headers,
                            json={"kind": "move", "target_connection_id": disk.id})
        assert moved.status_code == (202 if usable else 422), moved.get_json()
        if usable:
            world.services.runner.cancel(world.db.executions.get(moved.get_json()["id"]))


# -- Socket.IO -----------------------------------------------------------------------------

class Watcher:
    def __init__(self, url: str, *, cookie: str | None = None, token: str | None = None):
        self.events: dict[str, list] = {"log": [], "execution": [], "join_error": []}
        self.sio = socketio.Client(reconnection=False)
        for name, items in self.events.items():
            self.sio.on(name, items.append)
        self.sio.connect(url, headers={"Cookie": cookie} if cookie else {},
                         auth={"token": token} if token else None,
                         transports=["websocket"], wait_timeout=10)

    def join(self, target) -> None:
        self.sio.emit("join", {"project_id": target.id, "execution_id": target.predict_id,
                               "after_seq": 0})

    def close(self) -> None:
        self.sio.disconnect()


def _cookie(world: World, persona: str) -> str:
    return f"session={world.personas[persona].client.get_cookie('session').value}"


BAD_SOCKET_TOKENS = {"unknown token": "ty_nope_nope", "garbage token": "garbage"}


def _socket_session(url: str, target, *, cookie: str | None = None,
                    token: str | None = None) -> dict:
    """Connect, join the target's room, and report what arrived (or that the connection was
    refused)."""
    try:
        watcher = Watcher(url, cookie=cookie, token=token)
    except socketio.exceptions.ConnectionError as exc:
        return {"refused": str(exc)}
    try:
        watcher.join(target)
        wait_until(lambda: watcher.events["execution"] or watcher.events["join_error"],
                   timeout=10, message="an answer to join")
        return {"refused": None, **watcher.events}
    finally:
        watcher.close()


@pytest.fixture(scope="module")
def socket_sessions(world, live) -> dict:
    """Every Socket.IO scenario at once: the client library waits up to 3 s for the server's
    close frame on each disconnect, so one after the other they would take half a minute."""
    target = world.target()
    scenarios = {persona: {"cookie": _cookie(world, persona)} for persona in LOGGED_IN}
    scenarios["anonymous"] = {}
    scenarios["viewer's read token"] = {"token": world.personas["viewer"].read_token}
    scenarios["outsider's write token"] = {"token": world.personas["outsider"].write_token}
    scenarios.update({name: {"token": value} for name, value in BAD_SOCKET_TOKENS.items()})
    with ThreadPoolExecutor(len(scenarios)) as pool:
        futures = {name: pool.submit(_socket_session, live.url, target, **kwargs)
                   for name, kwargs in scenarios.items()}
        return {name: future.result() | {"target": target} for name, future in futures.items()}


def _assert_replayed(result: dict) -> None:
    assert result["refused"] is None, result["refused"]
    assert not result["join_error"]
    assert [r["message"] for r in result["log"]] == ["Prediction queued.", "Predicting.",
                                                     "Done."]
    assert result["execution"][0]["id"] == result["target"].predict_id


@pytest.mark.parametrize("persona", PERSONAS)
def test_socketio_join(socket_sessions, persona):
    result = socket_sessions[persona]
    if persona == "anonymous":
        assert result["refused"], "an anonymous socket was accepted"
    elif persona in STRANGERS:
        assert result["refused"] is None
        assert [e["message"] for e in result["join_error"]] == ["No such project."]
        assert not result["log"] and not result["execution"]
    else:
        _assert_replayed(result)


def test_socketio_bearer_token_in_auth_connects_and_joins(socket_sessions):
    _assert_replayed(socket_sessions["viewer's read token"])
    outsider = socket_sessions["outsider's write token"]
    assert [e["message"] for e in outsider["join_error"]] == ["No such project."]


@pytest.mark.parametrize("name", sorted(BAD_SOCKET_TOKENS))
def test_socketio_bad_token_is_refused(socket_sessions, name):
    assert socket_sessions[name]["refused"]


# -- Socket.IO: access that ends takes the socket out at once --------------------------------

def _ended_by(world: World, way: str, user, client, token_id: str) -> int:
    """End ``user``'s access to the world's target ``way``; returns the HTTP status."""
    admin, owner = world.personas["admin"].client, world.personas["owner"].client
    own = {"X-CSRFToken": client.csrf_token}
    if way == "removed from the project":
        return owner.delete(f"/api/v1/projects/{world.revoked_target.id}/members/{user.id}",
                            headers={"X-CSRFToken": owner.csrf_token}).status_code
    if way in ("platform role changed", "deactivated"):
        body = {"role": "member"} if way == "platform role changed" else {"active": False}
        return admin.patch(f"/api/v1/users/{user.id}", json=body,
                           headers={"X-CSRFToken": admin.csrf_token}).status_code
    if way == "logged out":
        return client.delete("/api/v1/session", headers=own).status_code
    if way == "password changed":
        return client.post("/profile", data={
            "action": "password", "current": PROBE_PASSWORD, "password": "another one 2026!",
            "confirm": "another one 2026!", "csrf_token": client.csrf_token}).status_code
    return client.delete(f"/api/v1/tokens/{token_id}", headers=own).status_code


REVOCATIONS = {  # way -> (status, the socket opens with a token, it is disconnected)
    "removed from the project": (204, False, False),
    "platform role changed": (200, False, False),
    "logged out": (204, False, True),
    "deactivated": (200, False, True),
    "password changed": (302, False, True),
    "API token revoked": (204, True, True),
}


@pytest.mark.parametrize("way", list(REVOCATIONS))
def test_socketio_access_ending_takes_the_socket_out(world, live, way):
    status, with_token, disconnected = REVOCATIONS[way]
    user = world.add_user("watcher", role="admin" if way == "platform role changed"
                          else "member")
    target = world.new_project(owner=world.user("owner"), members={} if user.is_admin
                               else {user.id: "viewer"})
    world.revoked_target = target
    client = login_client(world.app, user.email)
    token, clear = world.issue_token(user, "read")
    watcher = Watcher(live.url, token=clear) if with_token else Watcher(
        live.url, cookie=f"session={client.get_cookie('session').value}")
    gone = []
    watcher.sio.on("disconnect", lambda *reason: gone.append(True))
    watcher.sio.on("access_changed", lambda data: watcher.join(target))
    publish = world.services.runner.publish
    try:
        watcher.join(target)
        wait_until(lambda: watcher.events["execution"], timeout=10, message="the join")
        assert _ended_by(world, way, user, client, token.id) == status
        publish("log", {"message": "after"}, f"project:{target.id}")
        if disconnected:
            wait_until(lambda: gone, timeout=10, message="the server's disconnect")
        else:
            wait_until(lambda: watcher.events["join_error"], timeout=10,
                       message="the refused rejoin")
            assert [e["message"] for e in watcher.events["join_error"]] == ["No such project."]
        assert [r["message"] for r in watcher.events["log"]] == [
            "Prediction queued.", "Predicting.", "Done."]  # the replay only
    finally:
        threading.Thread(target=watcher.close, daemon=True).start()


# -- share links: a link stands for its maker's access ---------------------------------------

#: the ways a user's access to a project's files ends -> the status of the change itself
LINK_ENDINGS = {"removed from the project": 204, "platform role changed": 200, "deactivated": 200}


@pytest.mark.parametrize("way", list(LINK_ENDINGS))
@pytest.mark.parametrize("role", ["viewer", "editor", "owner"])
def test_a_share_link_stops_when_its_maker_loses_access(world, way, role):
    admin_maker = way == "platform role changed"
    user = world.add_user("sharer", role="admin" if admin_maker else "member")
    target = world.new_project(owner=world.user("owner"),
                               members={} if admin_maker else {user.id: role})
    world.revoked_target = target
    client = login_client(world.app, user.email)
    made = client.get(f"/api/v1/projects/{target.id}/files/link?path={DOC_FILE}&expires=3600")
    assert made.status_code == 200
    anonymous = world.app.test_client()
    link = made.get_json()["url"].removeprefix("http://localhost")
    assert anonymous.get(link).data == b"hello"
    assert _ended_by(world, way, user, client, "") == LINK_ENDINGS[way]
    refused = anonymous.get(link)
    assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "not_found"
    assert anonymous.get(link).data != b"hello"
