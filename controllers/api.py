"""The JSON API under ``/api/v1``: every action of the pages, with HTTP status codes and one
error shape, ``{"error": {"code": ..., "message": ...}}``.

Authentication is a personal token (``Authorization: Bearer ty_...``) or the session cookie
(``POST /api/v1/session``), with whose state-changing calls the CSRF token that the session
endpoint returns goes in the ``X-CSRFToken`` header.

Each view declares its body and answers with :func:`controllers.openapi.spec`; the OpenAPI
document at ``/api/v1/openapi.json`` (and the page ``/api/v1/docs``) is generated from them.
"""

from __future__ import annotations

import json
import time

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    render_template,
    request,
    stream_with_context,
)
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from controllers.access import load_project, require_admin, require_user, visible_projects
from controllers.openapi import (
    BINARY,
    EVENT_STREAM,
    FILE,
    NO_CONTENT,
    PAGING,
    Body,
    build_document,
    multipart,
    page_of,
    query,
    ref,
    spec,
)
from controllers.quotas import consumer_limits
from controllers.rendering import file_response, overwrite_asked, uploads
from controllers.services import context
from controllers.sessions import sign_in, sign_out
from controllers.spliced_body import spliceable, write_all
from exception_layer import (
    AccessDenied,
    BadRequest,
    PayloadTooLarge,
    Unauthenticated,
    ValidationFailed,
)
from services import (
    accounts,
    administration,
    catalog,
    challengers,
    executions,
    files,
    limits,
    members,
    models,
    monitoring,
    prediction_records,
    predictions,
    projects,
    resources,
    schedules,
    teams,
)
from services import storage_connections as sc
from services.files import MAX_LINK_SECONDS
from thread_layer.kinds import find_kind, names_in_words

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PER_PAGE = 200
MAX_PAGE = 10**9
#: sequence numbers are 64-bit integers in the databases
MAX_SEQ = 2**62

# Request and answer bodies used by one route each (the shared ones are in controllers.openapi).
_TEXT = {"type": "string"}
DAY = {"type": "string", "format": "date"}
AFTER_SEQ = query("after_seq", {"type": "integer", "minimum": 0, "maximum": MAX_SEQ,
                                "default": 0},
                  "the sequence number of the last line already read")
FOLDER = query("path", description="a folder, ending with '/' (empty: the project's root)")
FILE_PATH = query("path", required=True, description="a file; a folder when it ends with '/'")
OVERWRITE = query("overwrite", {"type": "boolean", "default": False},
                  "replace files that exist already (else 409 naming them)")
#: the largest JSON body taken (real-time predictions have their own, larger, limit)
MAX_JSON_BYTES = 1024 * 1024
#: the answer of a route that answers a resource without its own component
SCHEMA_ANSWER = {"type": "object", "required": ["schema", "target_proposals"],
                 "properties": {"schema": ref("BatchSchema"), "target_proposals": {
                     "type": "array", "description": "the columns that could be the target, "
                     "most likely first; the schema's target is null until the user chooses",
                     "items": {"type": "object", "required": ["column", "problem_type",
                                                              "reasons"],
                               "properties": {"column": {"type": "string"},
                                              "problem_type": {"type": "string"},
                                              "reasons": {"type": "array",
                                                          "items": {"type": "string"}}}}}}}


def _json(limit: int | None = MAX_JSON_BYTES):
    """The request's JSON body, read within ``limit`` bytes and refused when it nests too
    deeply (before anything walks it); None when it is not JSON."""
    if limit is not None and (request.content_length or 0) > limit:
        raise PayloadTooLarge(f"A JSON body takes at most {limit // 1024} KB.")
    if not request.is_json:
        return None
    data = request.get_data(cache=True)
    if limit is not None and len(data) > limit:
        raise PayloadTooLarge(f"A JSON body takes at most {limit // 1024} KB.")
    return resources.load_json(data, max_depth=None if limit is None else resources.MAX_DEPTH)


def _body(model: type[resources.Body] | None = None) -> dict:
    """The JSON object of the request, its fields' types checked against ``model`` (the
    values' rules are the services')."""
    data = _json()
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object (Content-Type: application/json).")
    if model is not None:
        resources.check_shape(model, data)
    return data


def _show(model: type[resources.Resource], data: dict) -> dict:
    """``data`` as the resource ``model`` shows it."""
    return resources.dump(model, data)


def _whole_number(name: str, default: int, low: int, high: int) -> int:
    """The query parameter ``name`` as a whole number from ``low`` to ``high``."""
    try:
        value = int(request.args.get(name, default))
    except ValueError:
        raise BadRequest(f"{name} must be a whole number.") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} is from {low} to {high}.")
    return value


def _paging() -> tuple[int, int]:
    # The bound keeps page * per_page within what every database accepts as an offset.
    return (_whole_number("page", 1, 1, MAX_PAGE),
            _whole_number("per_page", 50, 1, MAX_PER_PAGE))


def _paged(items: list, page: int, per_page: int, total: int):
    return jsonify({"items": items, "page": page, "per_page": per_page, "total": total})


def _slice(items: list):
    page, per_page = _paging()
    start = (page - 1) * per_page
    return _paged(items[start:start + per_page], page, per_page, len(items))


# -- session -----------------------------------------------------------------------------

@bp.post("/setup")
@spec("Session", request="SetupInput", responses={201: "Session"}, errors=(409, 422), public=True)
def setup():
    """Create the first administrator (only while no account exists)."""
    data = _body(resources.SetupInput)
    user = accounts.create_first_admin(context(), data.get("email", ""), data.get("name", ""),
                                       data.get("password", ""), data.get("password", ""))
    sign_in(user)
    return jsonify(_show(resources.Session, {"user": user.to_public(),
                                             "csrf_token": generate_csrf()})), 201


@bp.post("/session")
@spec("Session", request="Credentials", responses={200: "Session"}, errors=(401, 429), public=True)
def login():
    """Log in; answers the user and the CSRF token for later calls."""
    data = _body(resources.Credentials)
    user = accounts.authenticate(context(), str(data.get("email", "")),
                                 str(data.get("password", "")))
    sign_in(user)
    return jsonify(_show(resources.Session, {"user": user.to_public(),
                                             "csrf_token": generate_csrf()}))


@bp.get("/session")
@spec("Session", responses={200: "Session"})
def session_info():
    """Who am I: the logged-in user and a fresh CSRF token."""
    user = require_user()
    return jsonify(_show(resources.Session, {"user": user.to_public(),
                                             "csrf_token": generate_csrf()}))


@bp.delete("/session")
@spec("Session", responses={204: NO_CONTENT})
def logout():
    """Log out (ends the session cookie; a bearer token stays valid)."""
    require_user()
    sign_out()
    return "", 204


# -- projects ----------------------------------------------------------------------------

@bp.get("/projects")
@spec("Projects", query=PAGING, responses={200: page_of("Project")})
def list_projects():
    """The projects the caller may see."""
    return _slice([_show(resources.Project, p.to_public()) for p in visible_projects()])


@bp.post("/projects")
@spec("Projects", request="ProjectInput", responses={201: "Project"}, errors=(422,))
def create_project():
    """Create a project owned by the caller, with its folders."""
    project = projects.create(context(), _body())
    return jsonify(_show(resources.Project, project.to_public())), 201


@bp.get("/projects/<project_id>")
@spec("Projects", responses={200: "Project"})
def get_project(project_id):
    """Read a project."""
    return jsonify(_show(resources.Project, load_project(project_id=project_id).to_public()))


@bp.patch("/projects/<project_id>")
@spec("Projects", request="ProjectInput", responses={200: "Project"}, errors=(409, 422))
def update_project(project_id):
    """Change a project's settings (its name and folder stay; editors)."""
    project = load_project(project_id=project_id, need="editor")
    changed = projects.update(context(), project, _body())
    return jsonify(_show(resources.Project, changed.to_public()))


# -- execution limits (thread_layer/sandbox.py) ---------------------------------------------

@bp.get("/projects/<project_id>/limits")
@spec("Projects", responses={200: "ExecutionLimits"})
def get_project_limits(project_id):
    """The limits a project's executions run under (its members)."""
    return jsonify(_show(resources.ExecutionLimits, limits.project_limits(context(), project_id)))


@bp.put("/projects/<project_id>/limits")
@spec("Projects", request="ExecutionLimitsInput", responses={200: "ExecutionLimits"},
      errors=(422,))
def set_project_limits(project_id):
    """Raise or lower a project's execution limits, up to the install's ceiling (site
    administrators only)."""
    changed = limits.set_project_limits(context(), project_id,
                                        _body(resources.ExecutionLimitsInput))
    return jsonify(_show(resources.ExecutionLimits, changed))


@bp.delete("/projects/<project_id>")
@spec("Projects", responses={204: NO_CONTENT}, errors=(409,))
def delete_project(project_id):
    """Delete a project with its files, executions, logs and model versions (owners)."""
    projects.delete(context(), load_project(project_id=project_id, need="owner"))
    return "", 204


@bp.post("/schema/infer")
@spec("Projects", request=multipart(sample=FILE), responses={200: SCHEMA_ANSWER}, errors=(413, 422))
def infer_schema():
    """Infer a batch-file schema from sample CSVs (multipart field ``sample``, once per file;
    every row of every file decides the types) with a ranked proposal of targets."""
    require_user()
    return jsonify(projects.infer_schema(
        [(sample.stream, sample.filename) for sample in request.files.getlist("sample")]))


# -- files -------------------------------------------------------------------------------

@bp.get("/projects/<project_id>/files")
@spec("Files", query=(FOLDER, query("page_token", description="next_token of the previous page")),
      responses={200: "FolderListing"}, errors=(502, 503))
def list_files(project_id):
    """List a folder of the project (``path`` ending with '/'; empty: the root)."""
    project = load_project(project_id=project_id)
    return jsonify(_show(resources.FolderListing, files.list_folder(
        context(), project, request.args.get("path", ""), request.args.get("page_token"))))


@bp.post("/projects/<project_id>/files")
@spec("Files", query=(FOLDER, OVERWRITE),
      request=multipart(files={"type": "array", "items": FILE}),
      responses={201: "Uploaded"}, errors=(409, 413, 422, 502, 503))
def upload_files(project_id):
    """Upload files into a folder: all of them or none; existing files are replaced only with
    ``overwrite=true``.

    Files going into the batch folders are checked against the project's schema first.
    """
    project = load_project(project_id=project_id, need="editor")
    stored = files.upload(context(), project, request.args.get("path", ""),
                          uploads(request.files.getlist("files")),
                          overwrite=overwrite_asked(request.args))
    return jsonify(_show(resources.Uploaded, {"uploaded": stored})), 201


@bp.get("/projects/<project_id>/files/content")
@spec("Files", query=(FILE_PATH,), responses={200: BINARY}, errors=(502, 503))
def download_file(project_id):
    """Download a file."""
    project = load_project(project_id=project_id)
    return file_response(files.download(context(), project, request.args.get("path", "")))


@bp.delete("/projects/<project_id>/files")
@spec("Files", query=(FILE_PATH,), responses={204: NO_CONTENT}, errors=(409, 502, 503))
def delete_file(project_id):
    """Delete a file, or a folder when ``path`` ends with '/' (editors)."""
    project = load_project(project_id=project_id, need="editor")
    files.delete(context(), project, request.args.get("path", ""))
    return "", 204


@bp.post("/projects/<project_id>/files/move")
@spec("Files", request=resources.MoveInput, responses={200: resources.Moved},
      errors=(409, 422, 502, 503))
def move_file(project_id):
    """Move or rename a file, or a folder with everything in it (editors). Files going into a
    batch folder are checked against the schema first, and nothing moves unless all pass; an
    existing file or folder of the new name is never replaced."""
    project = load_project(project_id=project_id, need="editor")
    body = _body()
    path, to, name = body.get("path"), body.get("to"), body.get("name")
    if not isinstance(path, str) or not isinstance(to, str) \
            or not isinstance(name, str | None):
        raise BadRequest('Give the file or folder and where it goes, e.g. {"path": '
                         '"notes/a.csv", "to": "training_batch_files/"}, and "name" to '
                         'rename it.')
    return jsonify(_show(resources.Moved, files.move(context(), project, path.strip(), to,
                                                     name)))


@bp.post("/projects/<project_id>/folders")
@spec("Files", request=resources.FolderInput, responses={201: resources.Folder}, errors=(502, 503))
def make_folder(project_id):
    """Create a folder (editors)."""
    project = load_project(project_id=project_id, need="editor")
    path = _body().get("path")
    if not isinstance(path, str) or not path.strip():
        raise BadRequest("Give the folder's path, e.g. {\"path\": \"training_batch_files/2026/\"}.")
    created = files.make_folder(context(), project, path.strip())
    return jsonify(_show(resources.Folder, {"path": created})), 201


# -- executions --------------------------------------------------------------------------

@bp.post("/projects/<project_id>/executions")
@spec("Executions", request="ExecutionInput", responses={202: "Execution"}, errors=(409, 422))
def start_execution(project_id):
    """Start a training, a prediction or a storage move (202; 409 names the running one)."""
    project = load_project(project_id=project_id, need="editor")
    data = _body()
    kind = find_kind(data.get("kind") if isinstance(data.get("kind"), str) else None)
    if kind is None:
        raise BadRequest(f"kind must be {names_in_words()}.")
    if not project.has_role(current_user, kind.role):
        raise AccessDenied(kind.denied_message or
                           f"You need the {kind.role} role on this project to do this.")
    # The CLI names itself in its User-Agent; what it says is only shown, never trusted.
    via = "cli" if request.user_agent.string.startswith("trainyard-cli/") else "api"
    execution = executions.start(context(), project, kind.name, data, via=via)
    return jsonify(_show(resources.Execution, execution.to_public())), 202


@bp.get("/projects/<project_id>/executions")
@spec("Executions", query=PAGING, responses={200: page_of("Execution")})
def list_executions(project_id):
    """The project's executions, newest first."""
    project = load_project(project_id=project_id)
    page, per_page = _paging()
    items, total = executions.list_page(context(), project, page, per_page)
    return _paged([_show(resources.Execution, e.to_public()) for e in items], page, per_page,
                  total)


def _execution(project_id: str, execution_id: str, need: str = "viewer"):
    project = load_project(project_id=project_id, need=need)
    return project, executions.load(context(), project, execution_id)


@bp.get("/projects/<project_id>/executions/<execution_id>")
@spec("Executions", responses={200: "Execution"})
def get_execution(project_id, execution_id):
    """Read an execution: status, stage, progress, error, result."""
    return jsonify(_show(resources.Execution, _execution(project_id, execution_id)[1].to_public()))


@bp.post("/projects/<project_id>/executions/<execution_id>/cancel")
@spec("Executions", responses={202: "Execution"}, errors=(409,))
def cancel_execution(project_id, execution_id):
    """Ask a running execution to stop (editors)."""
    project, execution = _execution(project_id, execution_id, need="editor")
    cancelled = executions.cancel(context(), project, execution)
    return jsonify(_show(resources.Execution, cancelled.to_public())), 202


@bp.get("/projects/<project_id>/executions/<execution_id>/logs")
@spec("Executions",
      query=(AFTER_SEQ, query("limit", {"type": "integer", "minimum": 1, "maximum": 5000,
                                         "default": 1000})),
      responses={200: "LogPage"})
def execution_logs(project_id, execution_id):
    """Log lines after the sequence number ``after_seq``."""
    _, execution = _execution(project_id, execution_id)
    after_seq = _whole_number("after_seq", 0, 0, MAX_SEQ)
    limit = _whole_number("limit", 1000, 1, 5000)
    ctx = context()
    records = executions.logs(ctx, execution, after_seq, limit)
    return jsonify(_show(resources.LogPage, {
        "items": [r.to_public() for r in records],
        "last_seq": records[-1].seq if records else after_seq,
        "status": executions.reload(ctx, execution).status}))


@bp.get("/projects/<project_id>/executions/<execution_id>/events")
@spec("Executions", query=(AFTER_SEQ,), responses={200: EVENT_STREAM})
def execution_events(project_id, execution_id):
    """Live log without Socket.IO: server-sent events (``log`` lines after ``after_seq``, then
    ``execution`` states) until the execution ends."""
    _, execution = _execution(project_id, execution_id)
    after_seq = _whole_number("after_seq", 0, 0, MAX_SEQ)
    ctx = context()

    def stream():
        for event, payload, seq in executions.follow(ctx, execution, after_seq):
            if event == "log":
                yield f"id: {seq}\nevent: log\ndata: {json.dumps(payload)}\n\n"
            else:
                yield f"event: execution\ndata: {json.dumps(payload, sort_keys=True)}\n\n"

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@bp.get("/projects/<project_id>/executions/<execution_id>/output")
@spec("Executions", query=PAGING, responses={200: "OutputPage"}, errors=(422, 502, 503))
def execution_output(project_id, execution_id):
    """One page of a prediction's output table."""
    project, execution = _execution(project_id, execution_id)
    page, per_page = _paging()
    return jsonify(_show(resources.OutputPage, executions.output_page(context(), project,
                                                                      execution, page, per_page)))


@bp.get("/projects/<project_id>/executions/<execution_id>/output.csv")
@spec("Executions", responses={200: BINARY}, errors=(502, 503))
def execution_output_csv(project_id, execution_id):
    """Download a prediction's output CSV."""
    project, execution = _execution(project_id, execution_id)
    ctx = context()
    return file_response(files.download(ctx, project,
                                        executions.output_path(ctx, project, execution)))


# -- real-time prediction ------------------------------------------------------------------

@bp.post("/projects/<project_id>/predict")
@spec("Prediction", request="PredictionRequest", responses={200: "Prediction"}, errors=(409, 422))
def predict(project_id):
    """Predict JSON records now: {"records": [{column: value}...], "version": N (optional)}
    (a bare list of records works too). Answers the predictions, class probabilities where
    they apply, and the model version used."""
    received_at = time.perf_counter()
    project = load_project(project_id=project_id, need="editor")
    request.get_data(cache=True)  # the body is read before the turn: a slow client waits alone
    ctx = context()
    with predictions.turn(ctx, request.content_length):  # small requests: in arrival order
        return jsonify(predictions.predict(ctx, project, _json(limit=None), received_at))


@bp.get("/projects/<project_id>/usage")
@spec("Prediction", responses={200: "Usage"})
def usage(project_id):
    """Real-time prediction counters per model version, from every web process (latency
    percentiles over the last 24 hours)."""
    project = load_project(project_id=project_id)
    return jsonify({"versions": predictions.usage(context(), project)})


# -- prediction records and feedback (issue 22) -------------------------------------------

RECORD_FILTERS = (
    query("version", {"type": "integer", "minimum": 1}, "only this model version"),
    query("source", {"enum": ["realtime", "batch"]}, "only real-time or batch predictions"),
    query("since", {"type": "string", "format": "date-time"}, "created at or after (ISO 8601)"),
    query("until", {"type": "string", "format": "date-time"}, "created before (ISO 8601)"),
    query("labeled", {"type": "boolean"}, "only records with (true) or without (false) a label"))
RECORDS_EXPORT = Body("application/octet-stream", FILE,
                      "CSV (text/csv) or JSON lines (application/x-ndjson), streamed.")


@bp.get("/projects/<project_id>/records")
@spec("Prediction", query=(*PAGING, *RECORD_FILTERS), responses={
    200: page_of("PredictionRecord")}, errors=(422,))
def list_records(project_id):
    """The project's prediction records, newest first, filtered by version, source, time
    range and label (anyone with a role on the project)."""
    project = load_project(project_id=project_id)
    filters = prediction_records.parse_filters(request.args)
    page, per_page = _paging()
    items, total = prediction_records.list_page(context(), project, filters, page, per_page)
    return _paged([_show(resources.PredictionRecord, item) for item in items], page, per_page,
                  total)


@bp.get("/projects/<project_id>/records/export")
@spec("Prediction", query=(query("format", {"enum": ["csv", "jsonl"], "default": "csv"},
                                 "csv or jsonl"), *RECORD_FILTERS),
      responses={200: RECORDS_EXPORT}, errors=(422,))
def export_records(project_id):
    """Every matching prediction record, oldest first, as CSV or JSON lines (streamed)."""
    project = load_project(project_id=project_id)
    filters = prediction_records.parse_filters(request.args)
    fmt = request.args.get("format", "csv")
    mimetype, body = prediction_records.export(context(), project, filters, fmt)
    name = f"{project.slug}-prediction-records.{fmt}"
    return Response(stream_with_context(body), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/projects/<project_id>/records/<prediction_id>")
@spec("Prediction", responses={200: "PredictionRecord"})
def get_record(project_id, prediction_id):
    """One prediction record, by the id its prediction answered."""
    project = load_project(project_id=project_id)
    return jsonify(_show(resources.PredictionRecord,
                         prediction_records.get(context(), project, prediction_id)))


@bp.post("/projects/<project_id>/feedback")
@spec("Prediction", request="FeedbackInput", responses={200: "FeedbackResult"},
      errors=(413, 422))
def send_feedback(project_id):
    """Ground truth for past predictions: {"labels": [{"prediction_id", "actual"}, ...]} or
    one {"prediction_id", "actual"} (editors). Every good label is kept; the answer counts
    them and gives each refused one's row and reason (422 when none was kept)."""
    project = load_project(project_id=project_id, need="editor")
    result = prediction_records.submit_feedback(context(), project, _json())
    return jsonify(_show(resources.FeedbackResult, result))


# -- model versions ----------------------------------------------------------------------

@bp.get("/projects/<project_id>/models")
@spec("Models", query=PAGING, responses={200: page_of("ModelVersion")})
def list_models(project_id):
    """The project's model versions, newest first."""
    project = load_project(project_id=project_id)
    versions = models.list_for_project(context(), project)
    return _slice([_show(resources.ModelVersion,
                         v.to_public() | {"active": v.version == project.active_version})
                   for v in versions])


@bp.get("/projects/<project_id>/models/compare")
@spec("Models", query=(query("a", required=True), query("b", required=True)),
      responses={200: "ModelComparison"})
def compare_models(project_id):
    """Two versions side by side: ?a=1&b=2."""
    project = load_project(project_id=project_id)
    return jsonify(_show(resources.ModelComparison, models.compare(
        context(), project, request.args.get("a", ""), request.args.get("b", ""))))


@bp.post("/projects/<project_id>/models/import")
@spec("Models", request=Body("multipart/form-data", {
    "type": "object", "required": ["model"],
    "properties": {"model": {**FILE, "description": "a skops file (skops.io.dump)"},
                   "sample": {**FILE, "description": "a batch file to check it on (default: "
                                                     "the training batch files)"}}}),
      responses={202: "Execution"}, errors=(409, 413, 422))
def import_model(project_id):
    """Import a model trained elsewhere, as a skops file (editors): refused at once (422, with
    ``details.untrusted_types``) when it names types that are not trusted; otherwise an
    ``import`` execution checks it on the sample and makes it a model version (202)."""
    project = load_project(project_id=project_id, need="editor")
    sent = {name: (uploads([request.files.get(name)]) or [None])[0]
            for name in ("model", "sample")}
    execution = models.import_model(context(), project, sent["model"], sent["sample"])
    return jsonify(_show(resources.Execution, execution.to_public())), 202


@bp.post("/projects/<project_id>/models/rollback")
@spec("Models", responses={200: "ModelVersion"}, errors=(409,))
def rollback_model(project_id):
    """Make the newest version older than the active one active again (editors)."""
    project = load_project(project_id=project_id, need="editor")
    target = models.rollback(context(), project)
    return jsonify(_show(resources.ModelVersion, target.to_public() | {"active": True}))


@bp.delete("/projects/<project_id>/models/<version>")
@spec("Models", responses={204: NO_CONTENT}, errors=(409, 502, 503))
def delete_model(project_id, version):
    """Delete a model version and its files; not the active one (editors)."""
    models.delete(context(), load_project(project_id=project_id, need="editor"), version)
    return "", 204


@bp.get("/projects/<project_id>/models/<version>")
@spec("Models", responses={200: "ModelVersion"})
def get_model(project_id, version):
    """Read a model version (``version``: 3 or v3)."""
    project = load_project(project_id=project_id)
    found = models.load(context(), project, version)
    return jsonify(_show(resources.ModelVersion, found.to_public()
                         | {"active": found.version == project.active_version}))


@bp.post("/projects/<project_id>/models/<version>/promote")
@spec("Models", responses={200: "ModelVersion"})
def promote_model(project_id, version):
    """Make a version the one predictions use (editors)."""
    project = load_project(project_id=project_id, need="editor")
    promoted = models.promote(context(), project, version)
    return jsonify(_show(resources.ModelVersion, promoted.to_public() | {"active": True}))


# -- retraining schedules and challengers ----------------------------------------------------

@bp.get("/projects/<project_id>/schedules")
@spec("Retraining", responses={200: "ScheduleList"})
def list_schedules(project_id):
    """The project's retraining schedules with their next run and last outcome."""
    project = load_project(project_id=project_id)
    return jsonify(_show(resources.ScheduleList, {"items": [
        s.to_public() for s in schedules.list_for_project(context(), project)]}))


@bp.post("/projects/<project_id>/schedules")
@spec("Retraining", request="ScheduleInput", responses={201: "Schedule"}, errors=(409, 422))
def create_schedule(project_id):
    """Add a schedule: {"cron": "0 3 * * *", "timezone": "Europe/Paris"} (editors; 422 names
    an invalid cron expression or unknown time zone)."""
    project = load_project(project_id=project_id, need="editor")
    schedule = schedules.create(context(), project, _body(resources.ScheduleInput))
    return jsonify(_show(resources.Schedule, schedule.to_public())), 201


@bp.get("/projects/<project_id>/schedules/<schedule_id>")
@spec("Retraining", responses={200: "Schedule"})
def get_schedule(project_id, schedule_id):
    """Read a schedule."""
    project = load_project(project_id=project_id)
    return jsonify(_show(resources.Schedule,
                         schedules.load(context(), project, schedule_id).to_public()))


@bp.patch("/projects/<project_id>/schedules/<schedule_id>")
@spec("Retraining", request="ScheduleInput", responses={200: "Schedule"}, errors=(422,))
def update_schedule(project_id, schedule_id):
    """Change a schedule (a new cron or zone recomputes its next run; editors)."""
    project = load_project(project_id=project_id, need="editor")
    ctx = context()
    schedule = schedules.load(ctx, project, schedule_id)
    changed = schedules.update(ctx, project, schedule, _body(resources.ScheduleInput))
    return jsonify(_show(resources.Schedule, changed.to_public()))


@bp.delete("/projects/<project_id>/schedules/<schedule_id>")
@spec("Retraining", responses={204: NO_CONTENT})
def delete_schedule(project_id, schedule_id):
    """Delete a schedule (editors)."""
    project = load_project(project_id=project_id, need="editor")
    ctx = context()
    schedules.delete(ctx, project, schedules.load(ctx, project, schedule_id))
    return "", 204


@bp.get("/projects/<project_id>/challengers")
@spec("Retraining", query=(query("status", {"type": "string", "enum": [
    "pending", "promoted", "refused", "approved", "rejected"]},
    "only the challengers with this outcome"),), responses={200: "ChallengerList"})
def list_challengers(project_id):
    """Model versions trained while another was active, with their comparison and outcome
    (``?status=pending``: those waiting for approval)."""
    project = load_project(project_id=project_id)
    status = request.args.get("status") or None
    if status is not None and status not in ("pending", "promoted", "refused", "approved",
                                             "rejected"):
        raise BadRequest("status must be pending, promoted, refused, approved or rejected.")
    return jsonify(_show(resources.ChallengerList, {"items": [
        v.to_public() | {"active": v.version == project.active_version}
        for v in challengers.list_for_project(context(), project, status)]}))


@bp.post("/projects/<project_id>/models/<version>/approve")
@spec("Retraining", responses={200: "ModelVersion"}, errors=(409,))
def approve_challenger(project_id, version):
    """Promote a challenger waiting for approval (editors; 409 when it is not waiting)."""
    project = load_project(project_id=project_id, need="editor")
    approved = challengers.approve(context(), project, version)
    return jsonify(_show(resources.ModelVersion, approved.to_public() | {"active": True}))


@bp.post("/projects/<project_id>/models/<version>/reject")
@spec("Retraining", responses={200: "ModelVersion"}, errors=(409,))
def reject_challenger(project_id, version):
    """Reject a challenger waiting for approval; the active model stays (editors)."""
    project = load_project(project_id=project_id, need="editor")
    rejected = challengers.reject(context(), project, version)
    return jsonify(_show(resources.ModelVersion, rejected.to_public() | {"active": False}))


# -- live monitoring, alert rules, incidents, webhook (issue 22) ------------------------------

MONITORING_QUERY = (
    query("version", {"type": "integer", "minimum": 1}, "one model version (default: all)"),
    query("from", {"type": "string"}, "ISO date or time: points ending after it (default: "
                                      "30 days ago)"),
    query("to", {"type": "string"}, "ISO date or time: points starting before it"),
    query("granularity", {"type": "string", "enum": ["day", "window"], "default": "day"},
          "per UTC day, or per run of the rolling window"))


@bp.get("/projects/<project_id>/monitoring")
@spec("Monitoring", query=MONITORING_QUERY, responses={200: "Monitoring"})
def get_monitoring(project_id):
    """Live monitors per model version: volume, latency, error rate, metrics on labeled
    feedback and drift, computed in the background per UTC day and per rolling window."""
    project = load_project(project_id=project_id)
    return jsonify(_show(resources.Monitoring, monitoring.monitoring(
        context(), project, version=request.args.get("version"),
        since=request.args.get("from"), until=request.args.get("to"),
        granularity=request.args.get("granularity"))))


@bp.get("/projects/<project_id>/alert-rules")
@spec("Monitoring", query=PAGING, responses={200: page_of("AlertRule")})
def list_alert_rules(project_id):
    """The project's alert rules (the defaults until changed)."""
    project = load_project(project_id=project_id)
    return _slice([_show(resources.AlertRule, r.to_public())
                   for r in monitoring.list_rules(context(), project)])


@bp.post("/projects/<project_id>/alert-rules")
@spec("Monitoring", request=resources.AlertRuleInput, responses={201: "AlertRule"},
      errors=(422,))
def create_alert_rule(project_id):
    """Add an alert rule (editors)."""
    project = load_project(project_id=project_id, need="editor")
    rule = monitoring.create_rule(context(), project, _body(resources.AlertRuleInput))
    return jsonify(_show(resources.AlertRule, rule.to_public())), 201


@bp.patch("/projects/<project_id>/alert-rules/<rule_id>")
@spec("Monitoring", request=resources.AlertRuleInput, responses={200: "AlertRule"},
      errors=(422,))
def update_alert_rule(project_id, rule_id):
    """Change an alert rule's fields (editors)."""
    project = load_project(project_id=project_id, need="editor")
    rule = monitoring.update_rule(context(), project, rule_id,
                                  _body(resources.AlertRuleInput))
    return jsonify(_show(resources.AlertRule, rule.to_public()))


@bp.delete("/projects/<project_id>/alert-rules/<rule_id>")
@spec("Monitoring", responses={204: NO_CONTENT})
def delete_alert_rule(project_id, rule_id):
    """Delete an alert rule (editors); its incidents stay."""
    monitoring.delete_rule(context(), load_project(project_id=project_id, need="editor"),
                           rule_id)
    return "", 204


@bp.get("/projects/<project_id>/incidents")
@spec("Monitoring", query=(*PAGING, query("status", {"type": "string",
                                                    "enum": ["open", "closed"]})),
      responses={200: page_of("Incident")})
def list_incidents(project_id):
    """The project's incidents, newest first (``status``: open or closed)."""
    project = load_project(project_id=project_id)
    page, per_page = _paging()
    items, total = monitoring.list_incidents(context(), project,
                                             status=request.args.get("status"), page=page,
                                             per_page=per_page)
    return _paged([_show(resources.Incident, i.to_public()) for i in items], page, per_page,
                  total)


@bp.get("/projects/<project_id>/incidents/<incident_id>")
@spec("Monitoring", responses={200: "Incident"})
def get_incident(project_id, incident_id):
    """Read an incident."""
    project = load_project(project_id=project_id)
    return jsonify(_show(resources.Incident, monitoring.get_incident(
        context(), project, incident_id).to_public()))


@bp.get("/projects/<project_id>/webhook")
@spec("Monitoring", responses={200: "Webhook"})
def get_webhook(project_id):
    """The project's webhook (its secret is never shown again)."""
    project = load_project(project_id=project_id)
    return jsonify(_show(resources.Webhook,
                         monitoring.get_webhook(context(), project).to_public()))


@bp.put("/projects/<project_id>/webhook")
@spec("Monitoring", request=resources.WebhookInput,
      responses={200: "CreatedWebhook"}, errors=(422,))
def put_webhook(project_id):
    """Create or change the project's webhook (owners). The signing secret is answered when
    it is made: on creation, or with ``new_secret``."""
    project = load_project(project_id=project_id, need="owner")
    webhook, secret = monitoring.set_webhook(context(), project,
                                             _body(resources.WebhookInput))
    shown = webhook.to_public() | ({"secret": secret} if secret else {})
    return jsonify(_show(resources.CreatedWebhook if secret else resources.Webhook, shown))


@bp.delete("/projects/<project_id>/webhook")
@spec("Monitoring", responses={204: NO_CONTENT})
def delete_webhook(project_id):
    """Remove the project's webhook (owners)."""
    monitoring.delete_webhook(context(), load_project(project_id=project_id, need="owner"))
    return "", 204


@bp.get("/projects/<project_id>/webhook/deliveries")
@spec("Monitoring", query=PAGING, responses={200: page_of("WebhookDelivery")})
def list_webhook_deliveries(project_id):
    """The webhook's delivery log: each event with every attempt's status code and time."""
    project = load_project(project_id=project_id)
    page, per_page = _paging()
    items, total = monitoring.list_deliveries(context(), project, page=page,
                                              per_page=per_page)
    return _paged([_show(resources.WebhookDelivery, d.to_public()) for d in items], page,
                  per_page, total)


# -- members -------------------------------------------------------------------------------

@bp.get("/projects/<project_id>/members")
@spec("Members", query=PAGING, responses={200: page_of("Member")})
def list_members(project_id):
    """The project's owner and members with their roles."""
    return _slice([_show(resources.Member, member) for member in
                   members.list_members(context(), load_project(project_id=project_id))])


@bp.put("/projects/<project_id>/members")
@spec("Members", request=resources.MemberInput, responses={200: "Member"}, errors=(409, 422))
def set_member(project_id):
    """Give the person with ``email`` a role on the project (owners)."""
    project = load_project(project_id=project_id, need="owner")
    data = _body(resources.MemberInput)
    return jsonify(_show(resources.Member, members.set_member(
        context(), project, data.get("email", ""), data.get("role", ""))))


@bp.delete("/projects/<project_id>/members/<user_id>")
@spec("Members", responses={204: NO_CONTENT})
def remove_member(project_id, user_id):
    """Take a member off the project (owners)."""
    members.remove_member(context(), load_project(project_id=project_id, need="owner"),
                          user_id)
    return "", 204


# -- teams ---------------------------------------------------------------------------------

def _team_answer(team, *, with_members: bool = False) -> dict:
    return _show(resources.Team, teams.to_public(context(), team, with_members=with_members))


@bp.get("/teams")
@spec("Teams", query=PAGING, responses={200: page_of("Team")})
def list_teams():
    """Every team, by name (any logged-in user)."""
    ctx = context()
    return _slice([_show(resources.Team, teams.to_public(ctx, t)) for t in teams.list_teams(ctx)])


@bp.post("/teams")
@spec("Teams", request=resources.TeamInput, responses={201: "Team"}, errors=(422,))
def create_team():
    """Create a team (admins)."""
    require_admin()
    data = _body(resources.TeamInput)
    team = teams.create_team(context(), data.get("name"), data.get("description"))
    return jsonify(_team_answer(team, with_members=True)), 201


@bp.get("/teams/<team_id>")
@spec("Teams", responses={200: "Team"})
def get_team(team_id):
    """A team with its members (any logged-in user; ``team_id``: its id or slug)."""
    return jsonify(_team_answer(teams.load_team(context(), team_id), with_members=True))


@bp.patch("/teams/<team_id>")
@spec("Teams", request=resources.TeamUpdate, responses={200: "Team"}, errors=(422,))
def update_team(team_id):
    """Rename a team or change its description (admins)."""
    require_admin()
    data = _body(resources.TeamUpdate)
    ctx = context()
    team = teams.update_team(ctx, teams.load_team(ctx, team_id), name=data.get("name"),
                             description=data.get("description"))
    return jsonify(_team_answer(team, with_members=True))


@bp.delete("/teams/<team_id>")
@spec("Teams", responses={204: NO_CONTENT})
def delete_team(team_id):
    """Delete a team (admins): its members lose what it gave them at once."""
    require_admin()
    ctx = context()
    teams.delete_team(ctx, teams.load_team(ctx, team_id))
    return "", 204


@bp.get("/teams/<team_id>/members")
@spec("Teams", query=PAGING, responses={200: page_of("TeamMember")})
def list_team_members(team_id):
    """The team's members with their roles, leads first (any logged-in user)."""
    ctx = context()
    return _slice([_show(resources.TeamMember, m)
                   for m in teams.list_members(ctx, teams.load_team(ctx, team_id))])


@bp.put("/teams/<team_id>/members")
@spec("Teams", request=resources.TeamMemberInput, responses={200: "TeamMember"},
      errors=(422,))
def set_team_member(team_id):
    """Add someone to the team or change their role (admins and the team's leads; only
    admins name leads)."""
    ctx = context()
    team = teams.load_team(ctx, team_id)
    if not teams.may_manage(ctx, team):
        raise AccessDenied("Only administrators and the team's leads manage its members.")
    data = _body(resources.TeamMemberInput)
    return jsonify(_show(resources.TeamMember, teams.set_member(
        ctx, team, data.get("email", ""), data.get("role", "member"))))


@bp.delete("/teams/<team_id>/members/<user_id>")
@spec("Teams", responses={204: NO_CONTENT})
def remove_team_member(team_id, user_id):
    """Take someone out of the team (admins and the team's leads); what the team gave them
    ends at once."""
    ctx = context()
    teams.remove_member(ctx, teams.load_team(ctx, team_id), user_id)
    return "", 204


@bp.put("/projects/<project_id>/teams")
@spec("Members", request=resources.ProjectTeamInput, responses={200: "ProjectTeam"},
      errors=(422,))
def set_project_team(project_id):
    """Give every member of a team a role on the project (owners)."""
    project = load_project(project_id=project_id, need="owner")
    data = _body(resources.ProjectTeamInput)
    return jsonify(_show(resources.ProjectTeam, members.set_team(
        context(), project, data.get("team", ""), data.get("role", ""))))


@bp.delete("/projects/<project_id>/teams/<team_id>")
@spec("Members", responses={204: NO_CONTENT})
def remove_project_team(project_id, team_id):
    """Take a team's role off the project (owners)."""
    members.remove_team(context(), load_project(project_id=project_id, need="owner"), team_id)
    return "", 204


# -- streamed transfers: raw-body uploads and signed download links ------------------

HEAD_BYTES = 64 * 1024


class _HeadThenRest:
    """A readable stream: bytes already read (the head), then the rest of ``stream``, with a
    hard cap on the total size."""

    def __init__(self, head: bytes, stream, limit: int):
        self.head, self.stream, self.limit, self.read_so_far = head, stream, limit, 0
        if hasattr(stream, "drain_into"):  # a body the kernel can move into a file
            self.drain_into = self._drain_into

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size is None or size < 0 or size >= len(self.head):
                chunk, self.head = self.head, b""
            else:
                chunk, self.head = self.head[:size], self.head[size:]
        else:
            chunk = self.stream.read(size if size and size > 0 else 1024 * 1024)
        self._count(len(chunk))
        return chunk

    def _count(self, count: int) -> None:
        self.read_so_far += count
        if self.read_so_far > self.limit:
            raise PayloadTooLarge(f"The upload is larger than the "
                                  f"{self.limit // (1024 * 1024)} MB allowed.")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        """``read`` into the caller's buffer: the cloud backends fill each part this way, and a
        body read from the socket (``SplicedBody``) then lands there with no copy in between."""
        readinto = getattr(self.stream, "readinto", None)
        if self.head or readinto is None:
            data = self.read(len(buffer))
            buffer[:len(data)] = data
            return len(data)
        count = readinto(buffer) or 0
        self._count(count)
        return count

    def _drain_into(self, fd: int) -> int:
        """Write the head, then let the body move the rest into ``fd``."""
        moved = write_all(fd, self.head)
        self.head = b""
        moved += self.stream.drain_into(fd)
        self._count(moved)  # the body's Content-Length was checked already
        return moved


@bp.put("/projects/<project_id>/files/content")
@spec("Files", query=(query("path", required=True, description="the file's path"), OVERWRITE),
      request=Body("application/octet-stream", FILE, "The file's bytes."),
      responses={201: resources.StoredFile}, errors=(409, 413, 422, 502, 503))
def put_file(project_id):
    """Upload one file as the raw request body (streamed into the storage, never held whole
    in memory): ``PUT ...?path=training_batch_files/name.csv``. Batch files are checked against
    the schema from their first bytes; a refused or interrupted upload stores nothing."""
    project = load_project(project_id=project_id, need="editor")
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The upload is larger than the {limit // (1024 * 1024)} MB "
                              "allowed.")
    # Under gunicorn, the body can go from the socket to a local-disk file inside the kernel.
    stream = spliceable(request.environ, request.stream)
    head = stream.read(HEAD_BYTES)
    stored = files.put(context(), project, request.args.get("path", ""), head,
                       _HeadThenRest(head, stream, limit), size=request.content_length,
                       content_type=request.mimetype, overwrite=overwrite_asked(request.args))
    return jsonify(_show(resources.StoredFile, stored)), 201


@bp.get("/projects/<project_id>/files/link")
@spec("Files", query=(query("path", required=True, description="the file's path"),
                      query("expires", {"type": "integer", "minimum": 60,
                                        "maximum": MAX_LINK_SECONDS, "default": 3600},
                            "seconds the link stays valid (at most the setting "
                            "SHARE_LINK_MAX_SECONDS)")),
      responses={200: resources.Link}, errors=(502, 503))
def file_link(project_id):
    """A signed link to download one file without logging in, valid ``expires`` seconds
    (default 3600) while its maker keeps access to the project and the file is not replaced."""
    project = load_project(project_id=project_id)
    try:
        expires = int(request.args.get("expires", 3600))
    except ValueError:
        raise BadRequest("expires must be a whole number of seconds.") from None
    link = files.share_link(context(), project, request.args.get("path", ""), expires)
    url = f"{request.host_url.rstrip('/')}/api/v1/download/{link['token']}"
    return jsonify(_show(resources.Link, {"url": url, "expires_at": link["expires_at"]}))


@bp.get("/download/<token>")
@spec("Files", responses={200: BINARY}, errors=(502, 503), public=True)
def signed_download(token):
    """Download through an app-signed link (no login: the link stands for its maker's access,
    checked now; a large file on a cloud redirects to a signed URL valid for minutes)."""
    ctx = context()
    project, path = files.follow_link(ctx, token)
    return file_response(files.download(ctx, project, path))


# -- accounts and tokens ---------------------------------------------------------------------

@bp.post("/password-reset")
@spec("Session", request=resources.EmailInput, responses={202: "Message"}, public=True)
def forgot():
    """Mail a password-reset link (answers 202 whether or not the address exists)."""
    email = _body(resources.EmailInput).get("email", "")
    if not isinstance(email, str):
        raise BadRequest("email must be text.")
    accounts.request_password_reset(context(), email)
    return jsonify({"message": "If this address belongs to an account, a reset link is on "
                               "its way."}), 202


@bp.get("/tokens")
@spec("Tokens", query=PAGING, responses={200: page_of("Token")})
def list_tokens():
    """The caller's personal API tokens (never their values)."""
    user = require_user()
    return _slice([_show(resources.Token, t.to_public())
                   for t in accounts.list_tokens(context(), user)])


@bp.post("/tokens")
@spec("Tokens", request=resources.TokenInput, responses={201: "CreatedToken"}, errors=(422,))
def create_token():
    """Create a personal token; its value is in this answer only."""
    data = _body(resources.TokenInput)
    token, clear = accounts.create_token(context(), require_user(), data.get("name", ""),
                                         data.get("scope", ""))
    return jsonify(_show(resources.CreatedToken, token.to_public() | {"token": clear})), 201


@bp.delete("/tokens/<token_id>")
@spec("Tokens", responses={204: NO_CONTENT}, errors=(409,))
def revoke_token(token_id):
    """Revoke a personal token (yours; admins: anyone's)."""
    accounts.revoke_token(context(), require_user(), token_id)
    return "", 204


@bp.get("/users")
@spec("Administration", query=PAGING, responses={200: page_of("User")})
def list_users():
    """Every account (admins)."""
    require_admin()
    return _slice([_show(resources.User, u.to_public()) for u in accounts.list_users(context())])


@bp.post("/users")
@spec("Administration", request=resources.InviteInput, responses={201: "User"}, errors=(422,))
def invite_user():
    """Invite someone by mail (admins)."""
    require_admin()
    data = _body(resources.InviteInput)
    user = accounts.invite_user(context(), data.get("email", ""), data.get("name", ""),
                                data.get("role", "member"))
    return jsonify(_show(resources.User, user.to_public())), 201


@bp.patch("/users/<user_id>")
@spec("Administration", request=resources.UserInput, responses={200: "User"}, errors=(409, 422))
def update_user(user_id):
    """Change a user's role or deactivate/reactivate them (admins)."""
    require_admin()
    data = _body(resources.UserInput)
    role, active = data.get("role"), data.get("active")
    if active is not None and not isinstance(active, bool):
        raise BadRequest("active must be true or false.")
    ctx = context()
    user = accounts.update_user(ctx, accounts.load_user(ctx, user_id), role=role, active=active)
    return jsonify(_show(resources.User, user.to_public()))


@bp.post("/users/<user_id>/unlock")
@spec("Administration", responses={204: NO_CONTENT})
def unlock_user_login(user_id):
    """End the login back-off of a user's account at once (admins); audited."""
    require_admin()
    ctx = context()
    accounts.unlock_login(ctx, accounts.load_user(ctx, user_id))
    return "", 204


@bp.get("/audit")
@spec("Administration",
      query=(*PAGING, query("actor", description="an e-mail address"),
             query("action", description="e.g. project.create"),
             query("since", DAY, "YYYY-MM-DD"), query("until", DAY, "YYYY-MM-DD")),
      responses={200: page_of("AuditEvent")})
def audit_log():
    """The audit log, newest first; filters actor, action, since, until (YYYY-MM-DD)."""
    from controllers.admin import parse_day

    require_admin()
    page, per_page = _paging()
    until = parse_day(request.args.get("until"), "until")
    events, total = administration.search_audit(
        context(), actor=request.args.get("actor"), action=request.args.get("action"),
        since=parse_day(request.args.get("since"), "since"), until=until,
        skip=(page - 1) * per_page, limit=per_page)
    return _paged([_show(resources.AuditEvent, e.to_public()) for e in events], page, per_page,
                  total)


# -- storage connections ---------------------------------------------------------------

@bp.get("/storage-connections")
@spec("Storage connections", query=PAGING, responses={200: page_of("StorageConnection")})
def list_storage():
    """The storage connections, secrets masked (admins)."""
    require_admin()
    return _slice(sc.list_connections(context()))


@bp.post("/storage-connections")
@spec("Storage connections", request="StorageConnectionInput", responses={201: "StorageConnection"},
      errors=(422,))
def create_storage():
    """Create a connection: {name, kind, settings: {...}, secrets: {...}} (secrets masked in
    every answer)."""
    require_admin()
    ctx = context()
    return jsonify(sc.shown(ctx, sc.create_connection(ctx, _body()))), 201


@bp.get("/storage-connections/<connection_id>")
@spec("Storage connections", responses={200: "StorageConnection"})
def get_storage(connection_id):
    """Read a storage connection, secrets masked (admins)."""
    require_admin()
    ctx = context()
    return jsonify(sc.shown(ctx, sc.load_connection(ctx, connection_id)))


@bp.patch("/storage-connections/<connection_id>")
@spec("Storage connections", request="StorageConnectionInput", responses={200: "StorageConnection"},
      errors=(409, 422))
def update_storage(connection_id):
    """Change a connection; a secret left empty or masked keeps its value (admins)."""
    require_admin()
    ctx = context()
    connection = sc.update_connection(ctx, sc.load_connection(ctx, connection_id), _body())
    return jsonify(sc.shown(ctx, connection))


@bp.delete("/storage-connections/<connection_id>")
@spec("Storage connections", responses={204: NO_CONTENT}, errors=(409,))
def delete_storage(connection_id):
    """Delete a connection no project uses (admins)."""
    require_admin()
    ctx = context()
    sc.delete_connection(ctx, sc.load_connection(ctx, connection_id))
    return "", 204


@bp.post("/storage-connections/<connection_id>/test")
@spec("Storage connections", responses={200: "Message"}, errors=(422, 502, 503))
def test_storage(connection_id):
    """Reach the storage: 200 with a message, or the storage error (502/503) saying what is
    wrong."""
    require_admin()
    ctx = context()
    return jsonify({"message": sc.test_connection(ctx, sc.load_connection(ctx, connection_id))})


# -- administration ----------------------------------------------------------------------

@bp.get("/outbox")
@spec("Administration", query=PAGING, responses={200: page_of("MailMessage")})
def outbox():
    """The mails Trainyard sent or kept, newest first (admins)."""
    require_admin()
    page, per_page = _paging()
    items, total = administration.outbox(context(), skip=(page - 1) * per_page, limit=per_page)
    return _paged([_show(resources.MailMessage, m.to_public()) for m in items], page, per_page,
                  total)


# -- the model catalog: tags, listings, cards, search, consumers (issue 23) -----------------

TAG_FILTER = query("tag", description="a tag the listing carries (repeat for several: all)")
CATALOG_QUERY = (
    query("q", description="free text over title, summary, card, project name, columns, tags"),
    TAG_FILTER,
    query("problem", {"enum": ["classification", "regression"]}),
    query("metric", description="a metric range such as f1>=0.9 or rmse<3 (repeat: all)"),
    query("column", description="an input column the model takes (repeat: all)"),
    query("owner", description="the owner's e-mail or id"),
    query("team", description="a team of the owner (slug or id)"),
    query("fresh_days", {"type": "integer", "minimum": 1, "maximum": 3650},
          "trained in the last N days"),
    query("sort", description="relevance, fresh, title, or a metric name (best first)"),
    query("page", {"type": "integer", "minimum": 1, "maximum": 10**6, "default": 1}),
    query("per_page", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}))
CONSUMER_SECURITY = {"security": [{"consumerKey": []}]}


def _listing(listing) -> dict:
    return _show(resources.Listing, catalog.public(context(), listing))


@bp.put("/projects/<project_id>/tags")
@spec("Catalog", request=resources.TagsInput, responses={200: "Tags"}, errors=(422,))
def set_project_tags(project_id):
    """Replace the project's tags (editors): trimmed, lower-cased, spaces as '-'."""
    project = load_project(project_id=project_id, need="editor")
    data = _body(resources.TagsInput)
    return jsonify({"tags": catalog.set_project_tags(context(), project, data.get("tags"))})


@bp.put("/projects/<project_id>/models/<version>/tags")
@spec("Catalog", request=resources.TagsInput, responses={200: "Tags"}, errors=(422,))
def set_model_tags(project_id, version):
    """Replace a model version's tags (editors)."""
    project = load_project(project_id=project_id, need="editor")
    data = _body(resources.TagsInput)
    return jsonify({"tags": catalog.set_version_tags(context(), project, version,
                                                     data.get("tags"))})


@bp.get("/projects/<project_id>/listings")
@spec("Catalog", query=PAGING, responses={200: page_of("Listing")})
def project_listings(project_id):
    """The project's catalog listings, published or not (its owner)."""
    project = load_project(project_id=project_id, need="owner")
    return _slice([_listing(item) for item in catalog.listings_of_project(context(), project)])


@bp.post("/projects/<project_id>/listings")
@spec("Catalog", request=resources.ListingInput, responses={201: "Listing"}, errors=(409, 422))
def publish(project_id):
    """Publish the project's model to the catalog (its owner): visible to the organisation,
    chosen teams, or also anonymously (the card only); following the active version or
    pinning one."""
    project = load_project(project_id=project_id, need="owner")
    data = _body(resources.ListingInput)
    return jsonify(_listing(catalog.publish(context(), project, data))), 201


def _catalog_args() -> dict:
    args = request.args
    fresh = args.get("fresh_days")
    try:
        fresh_days = int(fresh) if fresh not in (None, "") else None
    except ValueError:
        raise ValidationFailed("The search is not valid.", details={
            "fresh_days": "A whole number of days from 1 to 3650."}) from None
    if fresh_days is not None and not 1 <= fresh_days <= 3650:
        raise ValidationFailed("The search is not valid.", details={
            "fresh_days": "A whole number of days from 1 to 3650."})
    return {"q": args.get("q", ""), "tags": args.getlist("tag"),
            "problem": args.get("problem") or None, "metrics": args.getlist("metric"),
            "columns": args.getlist("column"), "owner": args.get("owner") or None,
            "team": args.get("team") or None, "fresh_days": fresh_days,
            "sort": args.get("sort") or None,
            "page": _whole_number("page", 1, 1, 10**6),
            "per_page": _whole_number("per_page", 20, 1, 100)}


@bp.get("/catalog")
@spec("Catalog", query=CATALOG_QUERY, responses={200: page_of("Listing")}, errors=(422,),
      public=True)
def search_catalog():
    """Search the catalog: every published listing the caller may see (anonymous callers:
    the public ones) matching every filter, sorted and paginated. A malformed metric range
    is 422; an unknown tag, owner or team is an empty page."""
    args = _catalog_args()
    items, total = catalog.search(context(), **args)
    return _paged([_show(resources.Listing, item) for item in items], args["page"],
                  args["per_page"], total)


@bp.get("/catalog/<listing_id>")
@spec("Catalog", responses={200: "Listing"}, public=True)
def get_listing(listing_id):
    """A listing the caller may see."""
    return jsonify(_listing(catalog.load_listing(context(), listing_id)))


@bp.get("/catalog/<listing_id>/card")
@spec("Catalog", responses={200: "Card"}, public=True)
def listing_card(listing_id):
    """A listing's model card: the readme rendered safely, and the generated sections."""
    ctx = context()
    listing = catalog.load_listing(ctx, listing_id)
    return jsonify(_show(resources.Card, catalog.card(ctx, listing, request.host_url)))


@bp.patch("/catalog/<listing_id>")
@spec("Catalog", request=resources.ListingInput, responses={200: "Listing"}, errors=(422,))
def update_listing(listing_id):
    """Change a listing (its owner); status unpublished stops every consumer key."""
    ctx = context()
    listing = catalog.load_listing(ctx, listing_id, need="own")
    data = _body(resources.ListingInput)
    return jsonify(_listing(catalog.update_listing(ctx, listing, data)))


@bp.delete("/catalog/<listing_id>")
@spec("Catalog", responses={204: NO_CONTENT})
def delete_listing(listing_id):
    """Delete a listing (its owner): every consumer key on it stops."""
    ctx = context()
    catalog.delete_listing(ctx, catalog.load_listing(ctx, listing_id, need="own"))
    return "", 204


@bp.get("/catalog/<listing_id>/consumers")
@spec("Catalog", responses={200: "ConsumerUsageList"})
def listing_consumers(listing_id):
    """Each consumer of a listing with its usage over 30 days (its owner): requests, rows,
    errors, latency percentiles, last use."""
    ctx = context()
    listing = catalog.load_listing(ctx, listing_id, need="own")
    return jsonify(_show(resources.ConsumerUsageList,
                         {"consumers": catalog.usage(ctx, listing)}))


@bp.patch("/catalog/<listing_id>/consumers/<subscription_id>")
@spec("Catalog", request=resources.QuotaInput, responses={200: "Subscription"}, errors=(422,))
def set_consumer_quota(listing_id, subscription_id):
    """Change a consumer's quotas (its owner)."""
    ctx = context()
    listing = catalog.load_listing(ctx, listing_id, need="own")
    data = _body(resources.QuotaInput)
    sub = catalog.set_quota(ctx, listing, subscription_id, data)
    return jsonify(_show(resources.Subscription, catalog.subscription_public(sub)))


@bp.delete("/catalog/<listing_id>/consumers/<subscription_id>")
@spec("Catalog", responses={204: NO_CONTENT}, errors=(409,))
def revoke_consumer(listing_id, subscription_id):
    """Revoke a consumer key (the listing's owner, or the subscriber)."""
    ctx = context()
    catalog.revoke(ctx, catalog.load_listing(ctx, listing_id), subscription_id)
    return "", 204


@bp.post("/catalog/<listing_id>/subscriptions")
@spec("Catalog", request=resources.QuotaInput, responses={201: "CreatedSubscription"},
      errors=(409, 422))
def subscribe(listing_id):
    """Subscribe to a listing: answers a consumer key (shown once) scoped to predict and
    score on this listing only, with quotas per minute and per day."""
    ctx = context()
    require_user()
    listing = catalog.load_listing(ctx, listing_id)
    data = _body(resources.QuotaInput)
    sub, key = catalog.subscribe(ctx, listing, data)
    return jsonify(_show(resources.CreatedSubscription,
                         {**catalog.subscription_public(sub), "key": key})), 201


@bp.get("/subscriptions")
@spec("Catalog", query=PAGING, responses={200: page_of("Subscription")})
def my_subscriptions():
    """The caller's subscriptions (their keys are never shown again)."""
    return _slice([_show(resources.Subscription, item)
                   for item in catalog.my_subscriptions(context())])


@bp.post("/catalog/<listing_id>/template")
@spec("Catalog", request=resources.TemplateInput, responses={201: "Project"},
      errors=(409, 422))
def create_from_template(listing_id):
    """Create a project of one's own from a template listing: the same schema and algorithm
    settings, none of the creator's data."""
    ctx = context()
    require_user()
    listing = catalog.load_listing(ctx, listing_id)
    data = _body(resources.TemplateInput)
    project = catalog.create_from_template(ctx, listing, data)
    return jsonify(_show(resources.Project, project.to_public())), 201


def _consumer():
    """The consumer key of this call, checked by the bearer guard (app._install_guards)."""
    consumer = getattr(g, "consumer", None)
    if consumer is None:
        raise Unauthenticated("Send the consumer key: Authorization: Bearer tyc_...")
    return consumer


@bp.get("/consume/<listing_id>")
@spec("Consumer", responses={200: "Card"}, errors=(401, 429), public=True,
      **CONSUMER_SECURITY)
@consumer_limits()
def consume_card(listing_id):
    """The card of the consumer key's listing: its input schema, example and output."""
    return jsonify(_show(resources.Card, catalog.consumer_card(
        context(), _consumer(), listing_id, request.host_url)))


@bp.post("/consume/<listing_id>/predict")
@spec("Consumer", request="PredictionRequest", responses={200: "Prediction"},
      errors=(401, 409, 422, 429), public=True, **CONSUMER_SECURITY)
@consumer_limits()
def consume_predict(listing_id):
    """Predict records with the listing's model: {"records": [{column: value}...]}."""
    received_at = time.perf_counter()
    consumer = _consumer()
    request.get_data(cache=True)
    return jsonify(catalog.consumer_predict(context(), consumer, listing_id,
                                            _json(limit=None), received_at,
                                            request.content_length))


@bp.post("/consume/<listing_id>/score")
@spec("Consumer", request=resources.ScoreRecords, responses={200: "Score"},
      errors=(401, 409, 422, 429), public=True, **CONSUMER_SECURITY)
@consumer_limits()
def consume_score(listing_id):
    """Score labeled records: each record holds the inputs and the target; answers the
    standard metrics of the problem type on them."""
    received_at = time.perf_counter()
    consumer = _consumer()
    request.get_data(cache=True)
    return jsonify(catalog.consumer_score(context(), consumer, listing_id, _json(limit=None),
                                          received_at, request.content_length))


@bp.get("/openapi-consumer.json")
@spec("Documentation", responses={200: {"type": "object", "required": ["openapi", "paths"]}},
      public=True)
def openapi_consumer_document():
    """The OpenAPI document of the consumer endpoints alone (to generate a consumer's
    client)."""
    return jsonify(build_document(current_app, title="Trainyard consumer API",
                                  only_tag="Consumer"))


# -- documentation -------------------------------------------------------------------------

@bp.get("/openapi.json")
@spec("Documentation", responses={200: {"type": "object", "required": ["openapi", "paths"]}},
      public=True)
def openapi_document():
    """This API's OpenAPI 3.1 document, generated from the routes and their declarations."""
    return jsonify(build_document(current_app))


@bp.get("/docs")
@spec("Documentation", responses={200: Body("text/html", _TEXT, "An HTML page.")},
      public=True)
def docs():
    """A browsable page of this API, read from /api/v1/openapi.json."""
    return render_template("api_docs.html")
