"""The JSON API under ``/api/v1``: every action of the pages, with HTTP status codes and one
error shape, ``{"error": {"code": ..., "message": ...}}``.

Authentication is the session cookie for now (``POST /api/v1/session``); state-changing calls
send the CSRF token that the session endpoint returns in the ``X-CSRFToken`` header.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, jsonify, request, stream_with_context
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import generate_csrf

from controllers import accounts
from controllers import operations as ops
from controllers import storage_connections as sc
from controllers.access import load_project, require_admin, require_user, visible_projects
from controllers.accounts import authenticate, create_first_admin
from controllers.services import services
from exception_layer import AccessDenied, BadRequest
from integration.credentials import masked

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PER_PAGE = 200


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object (Content-Type: application/json).")
    return data


def _paging() -> tuple[int, int]:
    try:
        page = int(request.args.get("page", 1))
        per_page = int(request.args.get("per_page", 50))
    except ValueError:
        raise BadRequest("page and per_page must be whole numbers.") from None
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise BadRequest(f"page starts at 1; per_page is from 1 to {MAX_PER_PAGE}.")
    return page, per_page


def _paged(items: list, page: int, per_page: int, total: int):
    return jsonify({"items": items, "page": page, "per_page": per_page, "total": total})


def _slice(items: list):
    page, per_page = _paging()
    start = (page - 1) * per_page
    return _paged(items[start:start + per_page], page, per_page, len(items))


# -- session -----------------------------------------------------------------------------

@bp.post("/setup")
def setup():
    """Create the first administrator (only while no account exists)."""
    data = _body()
    user = create_first_admin(data.get("email", ""), data.get("name", ""),
                              data.get("password", ""), data.get("password", ""))
    login_user(user)
    return jsonify({"user": user.to_public(), "csrf_token": generate_csrf()}), 201


@bp.post("/session")
def login():
    """Log in; answers the user and the CSRF token for later calls."""
    data = _body()
    user = authenticate(str(data.get("email", "")), str(data.get("password", "")),
                        request.remote_addr)
    login_user(user)
    return jsonify({"user": user.to_public(), "csrf_token": generate_csrf()})


@bp.get("/session")
def session_info():
    user = require_user()
    return jsonify({"user": user.to_public(), "csrf_token": generate_csrf()})


@bp.delete("/session")
def logout():
    require_user()
    logout_user()
    return "", 204


# -- projects ----------------------------------------------------------------------------

@bp.get("/projects")
def list_projects():
    return _slice([p.to_public() for p in visible_projects()])


@bp.post("/projects")
def create_project():
    project = ops.create_project(_body(), require_user())
    return jsonify(project.to_public()), 201


@bp.get("/projects/<project_id>")
def get_project(project_id):
    return jsonify(load_project(project_id=project_id).to_public())


@bp.patch("/projects/<project_id>")
def update_project(project_id):
    project = load_project(project_id=project_id, need="editor")
    return jsonify(ops.update_project(project, _body()).to_public())


@bp.delete("/projects/<project_id>")
def delete_project(project_id):
    ops.delete_project(load_project(project_id=project_id, need="owner"))
    return "", 204


@bp.post("/schema/infer")
def infer_schema():
    require_user()
    return jsonify({"schema": ops.infer_schema(request.files.get("sample"))})


# -- files -------------------------------------------------------------------------------

@bp.get("/projects/<project_id>/files")
def list_files(project_id):
    project = load_project(project_id=project_id)
    return jsonify(ops.list_folder(project, request.args.get("path", ""),
                                   request.args.get("page_token")))


@bp.post("/projects/<project_id>/files")
def upload_files(project_id):
    project = load_project(project_id=project_id, need="editor")
    stored = ops.upload_files(project, request.args.get("path", ""),
                              request.files.getlist("files"))
    return jsonify({"uploaded": stored}), 201


@bp.get("/projects/<project_id>/files/content")
def download_file(project_id):
    project = load_project(project_id=project_id)
    return ops.download_response(project, request.args.get("path", ""))


@bp.delete("/projects/<project_id>/files")
def delete_file(project_id):
    project = load_project(project_id=project_id, need="editor")
    ops.delete_path(project, request.args.get("path", ""))
    return "", 204


@bp.post("/projects/<project_id>/folders")
def make_folder(project_id):
    project = load_project(project_id=project_id, need="editor")
    path = _body().get("path")
    if not isinstance(path, str) or not path.strip():
        raise BadRequest("Give the folder's path, e.g. {\"path\": \"training_batch_files/2026/\"}.")
    return jsonify({"path": ops.make_folder(project, path.strip())}), 201


# -- executions --------------------------------------------------------------------------

@bp.post("/projects/<project_id>/executions")
def start_execution(project_id):
    project = load_project(project_id=project_id, need="editor")
    data = _body()
    kind = data.get("kind")
    if kind not in ("train", "predict", "move"):
        raise BadRequest('kind must be "train", "predict" or "move".')
    if kind == "move" and not project.has_role(current_user, "owner"):
        raise AccessDenied("Only owners may move a project to another storage.")
    execution = ops.start_execution(project, kind, current_user, data.get("version"),
                                    data.get("target_connection_id"))
    return jsonify(execution.to_public()), 202


@bp.get("/projects/<project_id>/executions")
def list_executions(project_id):
    project = load_project(project_id=project_id)
    page, per_page = _paging()
    db = services().db
    items = db.executions.list_for_project(project.id, skip=(page - 1) * per_page,
                                           limit=per_page)
    return _paged([e.to_public() for e in items], page, per_page,
                  db.executions.count_for_project(project.id))


def _execution(project_id: str, execution_id: str, need: str = "viewer"):
    project = load_project(project_id=project_id, need=need)
    return project, ops.load_execution(project, execution_id)


@bp.get("/projects/<project_id>/executions/<execution_id>")
def get_execution(project_id, execution_id):
    return jsonify(_execution(project_id, execution_id)[1].to_public())


@bp.post("/projects/<project_id>/executions/<execution_id>/cancel")
def cancel_execution(project_id, execution_id):
    project, execution = _execution(project_id, execution_id, need="editor")
    return jsonify(ops.cancel_execution(project, execution).to_public()), 202


@bp.get("/projects/<project_id>/executions/<execution_id>/logs")
def execution_logs(project_id, execution_id):
    _, execution = _execution(project_id, execution_id)
    try:
        after_seq = int(request.args.get("after_seq", 0))
        limit = int(request.args.get("limit", 1000))
    except ValueError:
        raise BadRequest("after_seq and limit must be whole numbers.") from None
    if after_seq < 0 or not 1 <= limit <= 5000:
        raise BadRequest("after_seq is 0 or more; limit is from 1 to 5000.")
    records = services().db.logs.list(execution.id, after_seq=after_seq, limit=limit)
    return jsonify({"items": [r.to_public() for r in records],
                    "last_seq": records[-1].seq if records else after_seq,
                    "status": services().db.executions.get(execution.id).status})


@bp.get("/projects/<project_id>/executions/<execution_id>/events")
def execution_events(project_id, execution_id):
    """Live log without Socket.IO: server-sent events (``log`` lines after ``after_seq``, then
    ``execution`` states) until the execution ends."""
    _, execution = _execution(project_id, execution_id)
    try:
        after_seq = max(0, int(request.args.get("after_seq", 0)))
    except ValueError:
        raise BadRequest("after_seq must be a whole number.") from None
    db = services().db

    def stream():
        last, last_state = after_seq, None
        while True:
            for record in db.logs.list(execution.id, after_seq=last, limit=500):
                last = record.seq
                yield f"id: {record.seq}\nevent: log\ndata: {json.dumps(record.to_public())}\n\n"
            current = db.executions.get(execution.id)
            state = json.dumps(current.to_public(), sort_keys=True)
            if state != last_state:
                last_state = state
                yield f"event: execution\ndata: {state}\n\n"
            if not current.is_active and not db.logs.list(execution.id, after_seq=last,
                                                           limit=1):
                return
            time.sleep(0.5)

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@bp.get("/projects/<project_id>/executions/<execution_id>/output")
def execution_output(project_id, execution_id):
    project, execution = _execution(project_id, execution_id)
    page, per_page = _paging()
    return jsonify(ops.output_page(project, execution, page, per_page))


@bp.get("/projects/<project_id>/executions/<execution_id>/output.csv")
def execution_output_csv(project_id, execution_id):
    project, execution = _execution(project_id, execution_id)
    ops.output_page(project, execution, 1, 1)  # 404 unless there is an output
    return ops.download_response(project, execution.result["output_path"])


# -- real-time prediction ------------------------------------------------------------------

@bp.post("/projects/<project_id>/predict")
def predict(project_id):
    """Predict JSON records now: {"records": [{column: value}...], "version": N (optional)}
    (a bare list of records works too). Answers the predictions, class probabilities where
    they apply, and the model version used."""
    project = load_project(project_id=project_id, need="viewer")
    data = request.get_json(silent=True)
    version = None
    if isinstance(data, dict):
        version = data.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise BadRequest("version must be a whole number.")
        data = data.get("records")
    elif not isinstance(data, list):
        raise BadRequest('The body must be {"records": [...]} or a list of records '
                         "(Content-Type: application/json).")
    return jsonify(services().model_server.predict(project, data, version))


@bp.get("/projects/<project_id>/usage")
def usage(project_id):
    """Real-time prediction counters per model version (this server process)."""
    project = load_project(project_id=project_id)
    return jsonify({"versions": {str(k): v for k, v in
                                 services().model_server.usage(project.id).items()}})


# -- model versions ----------------------------------------------------------------------

@bp.get("/projects/<project_id>/models")
def list_models(project_id):
    project = load_project(project_id=project_id)
    versions = services().db.model_versions.list_for_project(project.id)
    return _slice([v.to_public() | {"active": v.version == project.active_version}
                   for v in versions])


@bp.get("/projects/<project_id>/models/compare")
def compare_models(project_id):
    """Two versions side by side: ?a=1&b=2."""
    project = load_project(project_id=project_id)
    return jsonify(ops.compare_versions(project, request.args.get("a", ""),
                                        request.args.get("b", "")))


@bp.post("/projects/<project_id>/models/rollback")
def rollback_model(project_id):
    project = load_project(project_id=project_id, need="editor")
    return jsonify(ops.rollback_version(project).to_public() | {"active": True})


@bp.delete("/projects/<project_id>/models/<version>")
def delete_model(project_id, version):
    ops.delete_version(load_project(project_id=project_id, need="editor"), version)
    return "", 204


@bp.get("/projects/<project_id>/models/<version>")
def get_model(project_id, version):
    project = load_project(project_id=project_id)
    found = ops.load_version(project, version)
    return jsonify(found.to_public() | {"active": found.version == project.active_version})


@bp.post("/projects/<project_id>/models/<version>/promote")
def promote_model(project_id, version):
    project = load_project(project_id=project_id, need="editor")
    promoted = ops.promote_version(project, version)
    return jsonify(promoted.to_public() | {"active": True})


# -- members -------------------------------------------------------------------------------

@bp.get("/projects/<project_id>/members")
def list_members(project_id):
    return _slice(ops.list_members(load_project(project_id=project_id)))


@bp.put("/projects/<project_id>/members")
def set_member(project_id):
    project = load_project(project_id=project_id, need="owner")
    data = _body()
    return jsonify(ops.set_member(project, data.get("email", ""), data.get("role", "")))


@bp.delete("/projects/<project_id>/members/<user_id>")
def remove_member(project_id, user_id):
    ops.remove_member(load_project(project_id=project_id, need="owner"), user_id)
    return "", 204


# -- accounts and tokens ---------------------------------------------------------------------

@bp.post("/password-reset")
def forgot():
    """Mail a password-reset link (answers 202 whether or not the address exists)."""
    accounts.request_password_reset(str(_body().get("email", "")))
    return jsonify({"message": "If this address belongs to an account, a reset link is on "
                               "its way."}), 202


@bp.get("/tokens")
def list_tokens():
    user = require_user()
    return _slice([t.to_public() for t in services().db.api_tokens.list_for_user(user.id)])


@bp.post("/tokens")
def create_token():
    """Create a personal token; its value is in this answer only."""
    data = _body()
    token, clear = accounts.create_token(require_user(), str(data.get("name", "")),
                                         str(data.get("scope", "")))
    return jsonify(token.to_public() | {"token": clear}), 201


@bp.delete("/tokens/<token_id>")
def revoke_token(token_id):
    accounts.revoke_token(require_user(), token_id)
    return "", 204


@bp.get("/users")
def list_users():
    require_admin()
    return _slice([u.to_public() for u in services().db.users.list()])


@bp.post("/users")
def invite_user():
    """Invite someone by mail (admins)."""
    admin = require_admin()
    data = _body()
    user = accounts.invite_user(str(data.get("email", "")), str(data.get("name", "")),
                                str(data.get("role", "member")), admin)
    return jsonify(user.to_public()), 201


@bp.patch("/users/<user_id>")
def update_user(user_id):
    """Change a user's role or deactivate/reactivate them (admins)."""
    admin = require_admin()
    data = _body()
    role, active = data.get("role"), data.get("active")
    if active is not None and not isinstance(active, bool):
        raise BadRequest("active must be true or false.")
    user = accounts.update_user(accounts.load_user(user_id), admin, role=role, active=active)
    return jsonify(user.to_public())


@bp.get("/audit")
def audit_log():
    """The audit log, newest first; filters actor, action, since, until (YYYY-MM-DD)."""
    from datetime import timedelta

    from controllers.admin import parse_day

    require_admin()
    page, per_page = _paging()
    until = parse_day(request.args.get("until"), "until")
    events, total = services().db.audit.search(
        actor=request.args.get("actor") or None, action=request.args.get("action") or None,
        since=parse_day(request.args.get("since"), "since"),
        until=until + timedelta(days=1) if until else None,
        skip=(page - 1) * per_page, limit=per_page)
    return _paged([e.to_public() for e in events], page, per_page, total)


# -- storage connections ---------------------------------------------------------------

@bp.get("/storage-connections")
def list_storage():
    require_admin()
    return _slice(sc.list_connections())


@bp.post("/storage-connections")
def create_storage():
    """Create a connection: {name, kind, settings: {...}, secrets: {...}} (secrets masked in
    every answer)."""
    require_admin()
    connection = sc.create_connection(_body())
    return jsonify(masked(connection, services().box)), 201


@bp.get("/storage-connections/<connection_id>")
def get_storage(connection_id):
    require_admin()
    return jsonify(masked(sc.load_connection(connection_id), services().box))


@bp.patch("/storage-connections/<connection_id>")
def update_storage(connection_id):
    require_admin()
    connection = sc.update_connection(sc.load_connection(connection_id), _body())
    return jsonify(masked(connection, services().box))


@bp.delete("/storage-connections/<connection_id>")
def delete_storage(connection_id):
    require_admin()
    sc.delete_connection(sc.load_connection(connection_id))
    return "", 204


@bp.post("/storage-connections/<connection_id>/test")
def test_storage(connection_id):
    """Reach the storage: 200 with a message, or the storage error (502/503) saying what is
    wrong."""
    require_admin()
    return jsonify({"message": sc.test_connection(sc.load_connection(connection_id))})


# -- administration ----------------------------------------------------------------------

@bp.get("/outbox")
def outbox():
    require_admin()
    page, per_page = _paging()
    db = services().db
    items = db.mail.list(skip=(page - 1) * per_page, limit=per_page)
    return _paged([m.to_public() for m in items], page, per_page, db.mail.count())
