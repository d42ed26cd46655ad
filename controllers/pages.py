"""The browser pages: projects, their files, executions and model versions, and the outbox."""

from __future__ import annotations

import json

from flask import (
    Blueprint,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.routing import BaseConverter, ValidationError

from controllers.access import load_project, require_admin, require_user, visible_projects
from controllers.rendering import file_response, form_failure, overwrite_asked, uploads
from controllers.services import context
from entity.project import ALGORITHMS, COLUMN_TYPES, METRICS, PROBLEM_TYPES
from exception_layer import PlatformError, ValidationFailed
from integration.file_manager import STANDARD_FOLDERS, SYSTEM_FOLDERS
from services import (
    administration,
    challengers,
    executions,
    models,
    monitoring,
    prediction_records,
    predictions,
    projects,
    resources,
    schedules,
    teams,
)
from services import catalog as catalog_service
from services import files as project_files
from services import members as project_members
from services import storage_connections as connections
from thread_layer.kinds import PREDICTION_OUTPUT, all_kinds, find_kind, get_kind, label_of

bp = Blueprint("pages", __name__)


class ExecutionKindConverter(BaseConverter):
    """A URL part that is the name of a registered execution kind (anything else: no match)."""

    def to_python(self, value: str) -> str:
        if find_kind(value) is None:
            raise ValidationError()
        return value


@bp.record_once
def _add_kind_converter(state) -> None:
    state.app.url_map.converters.setdefault("execution_kind", ExecutionKindConverter)


@bp.context_processor
def _execution_kinds() -> dict:
    """The registry of execution kinds, for the buttons and the labels of the pages."""
    return {"execution_kinds": all_kinds(), "execution_kind": find_kind,
            "execution_label": label_of}


def _page_arg() -> int:
    try:
        return max(1, int(request.args.get("page", 1)))
    except ValueError:
        return 1


def _form_context(project=None, form=None) -> dict:
    """What the project form needs; the schema shown is the one just posted, if any."""
    schema = {"filename_pattern": "", "columns": [], "target": None, "ignored": []}
    if project is not None:
        schema = project.schema.to_dict()
    if form and form.get("schema_json"):
        try:
            posted = json.loads(form["schema_json"])
            if isinstance(posted, dict):
                schema = posted
        except ValueError:
            pass
    if form and "filename_pattern" in form:
        schema["filename_pattern"] = form["filename_pattern"]
    return {"problem_types": PROBLEM_TYPES, "metrics": METRICS, "column_types": COLUMN_TYPES,
            "algorithms": ALGORITHMS, "settings": resources.plain_fields(),
            "schema": schema, "connections": connections.choices(
                context(), project.storage_connection_id if project else None)}


def _project_form() -> dict:
    """The project form's fields; the algorithm checkboxes become a list, and a setting's
    unticked checkbox (which a browser does not send) false."""
    form = request.form.to_dict()
    form["algorithms"] = request.form.getlist("algorithms")
    for setting in resources.plain_fields():
        if setting["input"] == "checkbox":
            form[setting["name"]] = setting["name"] in request.form
    return form


@bp.get("/")
def index():
    """The projects the user can see."""
    require_user()
    return render_template("projects/index.html", projects=visible_projects())


@bp.route("/projects/new", methods=["GET", "POST"])
def new_project():
    """Create a project: settings and batch-file schema."""
    require_user()
    errors, form = {}, {}
    if request.method == "POST":
        form = _project_form()
        try:
            project = projects.create(context(), form, strict=False)
        except ValidationFailed as exc:
            errors = exc.details or {"form": exc.message}
        else:
            flash(f"Project {project.name} created. Upload training batch files next.",
                  "success")
            return redirect(url_for("pages.project", slug=project.slug))
    return (render_template("projects/form.html", project=None, form=form, errors=errors,
                            **_form_context(None, form)), 422 if errors else 200)


@bp.get("/projects/<slug>")
def project(slug):
    """A project: its state, executions, model versions, and the buttons to act."""
    project = load_project(slug=slug)
    ctx = context()
    page = _page_arg()
    per_page = 20
    listed, total = executions.list_page(ctx, project, page, per_page)
    active = executions.active(ctx, project)
    return render_template(
        "projects/detail.html", project=project, executions=listed, active=active,
        versions=models.list_for_project(ctx, project), page=page,
        pages=max(1, -(-total // per_page)), can_edit=project.has_role(current_user, "editor"),
        is_owner=project.has_role(current_user, "owner"),
        last_seq=executions.last_seq(ctx, active) if active else 0,
        active_logs=executions.logs(ctx, active) if active else [],
        usage=predictions.usage(ctx, project),
        open_incidents=monitoring.list_incidents(ctx, project, status="open")[0])


@bp.get("/projects/<slug>/monitoring")
def monitoring_page(slug):
    """Live monitoring of a project: charts per model version, incidents, rules, webhook."""
    project = load_project(slug=slug)
    ctx = context()
    granularity = request.args.get("granularity") or "day"
    version = request.args.get("version") or (str(project.active_version)
                                              if project.active_version else None)
    data = monitoring.monitoring(ctx, project, version=version, granularity=granularity,
                                 since=request.args.get("from"), until=request.args.get("to"))
    incidents, _ = monitoring.list_incidents(ctx, project, per_page=50)
    webhook = monitoring.find_webhook(ctx, project)
    deliveries = monitoring.list_deliveries(ctx, project, per_page=20)[0] if webhook else []
    return render_template(
        "projects/monitoring.html", project=project, data=data, version=version,
        charts=monitoring.charts(data["points"], project.selection_metric),
        latest=data["points"][-1] if data["points"] else None, incidents=incidents,
        rules=monitoring.list_rules(ctx, project), webhook=webhook, deliveries=deliveries,
        versions=models.list_for_project(ctx, project), width=monitoring.CHART_WIDTH,
        height=monitoring.CHART_HEIGHT)


@bp.route("/projects/<slug>/settings", methods=["GET", "POST"])
def project_settings(slug):
    """Edit a project's settings and schema."""
    project = load_project(slug=slug, need="editor")
    errors, form = {}, {}
    if request.method == "POST":
        form = _project_form()
        try:
            projects.update(context(), project, form, strict=False)
        except ValidationFailed as exc:
            errors = exc.details or {"form": exc.message}
        else:
            flash("Settings saved.", "success")
            return redirect(url_for("pages.project", slug=project.slug))
    elif problem := project.schema.pattern_problem():  # stored before patterns ran on RE2
        errors = {"filename_pattern": f"{problem} Change the pattern to upload files again."}
    return (render_template("projects/form.html", project=project, form=form, errors=errors,
                            members=project_members.list_members(context(), project),
                            project_teams=project_members.list_teams(context(), project),
                            all_teams=teams.list_teams(context()),
                            is_owner=project.has_role(current_user, "owner"),
                            **_form_context(project, form)), 422 if form and errors else 200)


@bp.post("/projects/<slug>/members")
def members(slug):
    """Add, change or remove a project member or team (owners)."""
    project = load_project(slug=slug, need="owner")
    try:
        action = request.form.get("action")
        if action == "remove":
            project_members.remove_member(context(), project, request.form.get("user_id", ""))
            flash("Member removed.", "info")
        elif action == "set_team":
            given = project_members.set_team(context(), project, request.form.get("team", ""),
                                             request.form.get("role", ""))
            flash(f"Team {given['team']['name']} is now {given['role']}.", "success")
        elif action == "remove_team":
            project_members.remove_team(context(), project, request.form.get("team_id", ""))
            flash("Team removed.", "info")
        else:
            added = project_members.set_member(context(), project, request.form.get("email", ""),
                                               request.form.get("role", ""))
            flash(f"{added['user']['email']} is now {added['role']}.", "success")
    except PlatformError as exc:
        message = exc.message
        if isinstance(exc.details, dict):
            message = " ".join(str(v) for v in exc.details.values()) or message
        flash(message, "danger")
    return redirect(url_for("pages.project_settings", slug=slug)), 303


@bp.post("/projects/<slug>/delete")
def delete_project(slug):
    """Delete a project and everything it stored."""
    project = load_project(slug=slug, need="owner")
    projects.delete(context(), project)
    flash(f"Project {project.name} and its files were deleted.", "info")
    return redirect(url_for("pages.index"))


@bp.post("/projects/<slug>/<execution_kind:kind>")
def start(slug, kind):
    """Start an execution: a training, a prediction, or a move to another storage (owners)."""
    project = load_project(slug=slug, need=get_kind(kind).role)
    try:
        execution = executions.start(context(), project, kind, request.form.to_dict(),
                                     via="page")
    except PlatformError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("pages.project", slug=slug)), 303
    return redirect(url_for("pages.execution", slug=slug, execution_id=execution.id)), 303


# -- files ---------------------------------------------------------------------------------

@bp.get("/projects/<slug>/files")
def files(slug):
    """The file manager: one folder of the project."""
    project = load_project(slug=slug)
    path = request.args.get("path", "")
    listing = project_files.list_folder(context(), project, path, request.args.get("token"))
    crumbs, acc = [], ""
    for part in [p for p in listing["path"].split("/") if p]:
        acc += part + "/"
        crumbs.append((part, acc))
    return render_template("files/browser.html", project=project, listing=listing,
                           crumbs=crumbs, can_edit=project.has_role(current_user, "editor"),
                           standard_folders=STANDARD_FOLDERS, system_folders=SYSTEM_FOLDERS)


@bp.post("/projects/<slug>/files/upload")
def upload(slug):
    """Upload files into a folder (all or none; JSON answer for the upload script)."""
    project = load_project(slug=slug, need="editor")
    stored = project_files.upload(context(), project, request.args.get("path", ""),
                                  uploads(request.files.getlist("files")),
                                  overwrite=overwrite_asked(request.args))
    return jsonify({"uploaded": stored}), 201


def _back_to_files(path: str):
    return redirect(url_for("pages.files", slug=request.view_args["slug"], path=path)), 303


@bp.post("/projects/<slug>/files/folder")
def make_folder(slug):
    """Create a folder."""
    project = load_project(slug=slug, need="editor")
    parent = request.form.get("parent", "")
    created = project_files.make_folder(context(), project,
                                       parent + request.form.get("name", "").strip())
    flash(f"Created {created}.", "info")
    return _back_to_files(parent)


@bp.post("/projects/<slug>/files/delete")
def delete_file(slug):
    """Delete a file or a folder."""
    project = load_project(slug=slug, need="editor")
    path = request.form.get("path", "")
    parent = path.rstrip("/").rpartition("/")[0]
    project_files.delete(context(), project, path)
    flash(f"Deleted {path}.", "info")
    return _back_to_files(parent + "/" if parent else "")


@bp.post("/projects/<slug>/files/move")
def move_file(slug):
    """Move or rename a file or a folder."""
    project = load_project(slug=slug, need="editor")
    path = request.form.get("path", "")
    moved = project_files.move(context(), project, path, request.form.get("to", ""),
                               request.form.get("name"))
    flash(f"Moved {path} to {moved['path']}.", "info")
    parent = path.rstrip("/").rpartition("/")[0]
    return _back_to_files(parent + "/" if parent else "")


@bp.get("/projects/<slug>/files/download")
def download(slug):
    """Download a file (plots can be shown inline)."""
    project = load_project(slug=slug)
    return file_response(project_files.download(context(), project,
                                                request.args.get("path", ""),
                                                inline=request.args.get("inline") == "1"))


# -- executions and models -----------------------------------------------------------------

@bp.get("/projects/<slug>/executions/<execution_id>")
def execution(slug, execution_id):
    """An execution: its live or past log, its validation report and results."""
    project = load_project(slug=slug)
    ctx = context()
    execution = executions.load(ctx, project, execution_id)
    logs = executions.logs(ctx, execution)
    output = None
    if getattr(find_kind(execution.kind), "produces", None) == PREDICTION_OUTPUT and \
            execution.status == "succeeded":
        output = executions.output_page(ctx, project, execution, _page_arg())
    starter = executions.starter(ctx, execution)
    return render_template("executions/detail.html", project=project, execution=execution,
                           logs=logs, output=output, starter=starter,
                           last_seq=logs[-1].seq if logs else 0,
                           can_edit=project.has_role(current_user, "editor"))


@bp.post("/projects/<slug>/executions/<execution_id>/cancel")
def cancel(slug, execution_id):
    """Cancel a queued or running execution."""
    project = load_project(slug=slug, need="editor")
    try:
        ctx = context()
        executions.cancel(ctx, project, executions.load(ctx, project, execution_id))
        flash("Cancellation requested.", "info")
    except PlatformError as exc:
        flash(exc.message, "danger")
    return redirect(url_for("pages.execution", slug=slug, execution_id=execution_id)), 303


@bp.get("/projects/<slug>/executions/<execution_id>/output.csv")
def output_csv(slug, execution_id):
    """Download the prediction output."""
    project = load_project(slug=slug)
    ctx = context()
    execution = executions.load(ctx, project, execution_id)
    path = (execution.result or {}).get("output_path")
    if not path:
        return executions.output_page(ctx, project, execution, 1)  # raises the 404
    return file_response(project_files.download(ctx, project, path))


@bp.get("/projects/<slug>/records")
def records(slug):
    """The project's prediction records, newest first, with filters and export links."""
    project = load_project(slug=slug)
    ctx = context()
    page, per_page = _page_arg(), 50
    problem = None
    try:
        filters = prediction_records.parse_filters(request.args)
    except ValidationFailed as exc:  # shown above the (unfiltered) list
        problem, filters = exc.message, {}
    listed, total = prediction_records.list_page(ctx, project, filters, page, per_page)
    shown = {name: request.args.get(name, "") for name in prediction_records.FILTERS}
    return render_template("projects/records.html", project=project, records=listed,
                           total=total, page=page, pages=max(1, -(-total // per_page)),
                           filters=shown, problem=problem,
                           query={k: v for k, v in shown.items() if v and not problem})


@bp.get("/projects/<slug>/records/export")
def export_records(slug):
    """Download the matching prediction records as CSV or JSON lines (streamed)."""
    from flask import Response, stream_with_context

    project = load_project(slug=slug)
    fmt = request.args.get("format", "csv")
    mimetype, body = prediction_records.export(
        context(), project, prediction_records.parse_filters(request.args), fmt)
    return Response(stream_with_context(body), mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="{project.slug}-prediction-records.{fmt}"'})


@bp.get("/projects/<slug>/models/<version>")
def model_version(slug, version):
    """A model version: metrics, leaderboard, plots."""
    project = load_project(slug=slug)
    return render_template("models/detail.html", project=project,
                           version=models.load(context(), project, version),
                           can_edit=project.has_role(current_user, "editor"))


@bp.get("/projects/<slug>/models/compare")
def compare_models(slug):
    """Two model versions side by side."""
    project = load_project(slug=slug)
    comparison = models.compare(context(), project, request.args.get("a", ""),
                                request.args.get("b", ""))
    return render_template("models/compare.html", project=project, comparison=comparison)


@bp.post("/projects/<slug>/models/rollback")
def rollback(slug):
    """Make the previous version active again."""
    project = load_project(slug=slug, need="editor")
    try:
        target = models.rollback(context(), project)
        flash(f"Rolled back: v{target.version} is active again.", "success")
    except PlatformError as exc:
        flash(exc.message, "danger")
    return redirect(url_for("pages.project", slug=slug)), 303


@bp.post("/projects/<slug>/models/<version>/delete")
def delete_model(slug, version):
    """Delete a model version and its files."""
    project = load_project(slug=slug, need="editor")
    try:
        models.delete(context(), project, version)
        flash(f"Model {version} and its files were deleted.", "info")
    except PlatformError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("pages.model_version", slug=slug, version=version)), 303
    return redirect(url_for("pages.project", slug=slug)), 303


@bp.post("/projects/<slug>/models/import")
def import_model(slug):
    """Import a model trained elsewhere (a skops file): refusals are flashed with their
    reason (the untrusted types named); otherwise its import execution's page opens."""
    project = load_project(slug=slug, need="editor")
    sent = {name: (uploads([request.files.get(name)]) or [None])[0]
            for name in ("model", "sample")}
    try:
        execution = models.import_model(context(), project, sent["model"], sent["sample"],
                                        via="page")
    except PlatformError as exc:
        details = exc.to_dict().get("details") or {}
        reasons = [str(v) for k, v in details.items() if k != "untrusted_types"]
        flash(" ".join([exc.message, *reasons]), "danger")
        return redirect(url_for("pages.project", slug=slug)), 303
    return redirect(url_for("pages.execution", slug=slug, execution_id=execution.id)), 303


@bp.post("/projects/<slug>/models/<version>/promote")
def promote(slug, version):
    """Make a version the active one."""
    project = load_project(slug=slug, need="editor")
    promoted = models.promote(context(), project, version)
    flash(f"Model v{promoted.version} is now active.", "success")
    return redirect(url_for("pages.project", slug=slug)), 303


# -- retraining: schedules and challengers ---------------------------------------------------

def _retraining_page(project, *, errors: dict | None = None, form: dict | None = None,
                     status: int = 200):
    ctx = context()
    return render_template("projects/retraining.html", project=project,
                           schedules=schedules.list_for_project(ctx, project),
                           challengers=challengers.list_for_project(ctx, project),
                           can_edit=project.has_role(current_user, "editor"),
                           errors=errors or {}, form=form or {}), status


@bp.get("/projects/<slug>/retraining")
def retraining(slug):
    """The project's retraining schedules and triggers, and its challengers."""
    return _retraining_page(load_project(slug=slug))


@bp.post("/projects/<slug>/models/<version>/approve")
def approve_challenger(slug, version):
    """Promote a challenger waiting for approval (editors)."""
    project = load_project(slug=slug, need="editor")
    try:
        approved = challengers.approve(context(), project, version)
        flash(f"Challenger v{approved.version} approved: it is now the active model.",
              "success")
    except PlatformError as exc:
        flash(exc.message, "danger")
    return redirect(url_for("pages.retraining", slug=slug)), 303


@bp.post("/projects/<slug>/models/<version>/reject")
def reject_challenger(slug, version):
    """Reject a challenger waiting for approval (editors)."""
    project = load_project(slug=slug, need="editor")
    try:
        rejected = challengers.reject(context(), project, version)
        flash(f"Challenger v{rejected.version} rejected; the active model stays.", "info")
    except PlatformError as exc:
        flash(exc.message, "danger")
    return redirect(url_for("pages.retraining", slug=slug)), 303


@bp.post("/projects/<slug>/schedules")
def create_schedule(slug):
    """Add a retraining schedule (editors)."""
    project = load_project(slug=slug, need="editor")
    form = {k: v for k, v in request.form.items() if k in ("cron", "timezone", "description")}
    try:
        schedules.create(context(), project, form, strict=False)
    except PlatformError as exc:
        errors, status = form_failure(exc)
        return _retraining_page(project, errors=errors, form=form, status=status)
    flash("Schedule added.", "success")
    return redirect(url_for("pages.retraining", slug=slug)), 303


@bp.post("/projects/<slug>/schedules/<schedule_id>")
def update_schedule(slug, schedule_id):
    """Change a schedule: its rule, zone, description, or switch it on or off (editors)."""
    project = load_project(slug=slug, need="editor")
    ctx = context()
    schedule = schedules.load(ctx, project, schedule_id)
    form = {k: v for k, v in request.form.items()
            if k in ("cron", "timezone", "description", "enabled")}
    try:
        schedules.update(ctx, project, schedule, form, strict=False)
    except PlatformError as exc:
        errors, status = form_failure(exc)
        return _retraining_page(project, errors={f"{schedule_id}.{k}": v
                                                 for k, v in errors.items()},
                                form=form, status=status)
    flash("Schedule saved.", "success")
    return redirect(url_for("pages.retraining", slug=slug)), 303


@bp.post("/projects/<slug>/schedules/<schedule_id>/delete")
def delete_schedule(slug, schedule_id):
    """Delete a schedule (editors)."""
    project = load_project(slug=slug, need="editor")
    ctx = context()
    schedules.delete(ctx, project, schedules.load(ctx, project, schedule_id))
    flash("Schedule deleted.", "info")
    return redirect(url_for("pages.retraining", slug=slug)), 303


# -- administration ----------------------------------------------------------------------

@bp.get("/admin/outbox")
def outbox():
    """Mails kept or sent by the platform (admins)."""
    require_admin()
    page = _page_arg()
    per_page = 25
    messages, total = administration.outbox(context(), skip=(page - 1) * per_page,
                                            limit=per_page)
    return render_template("admin/outbox.html", messages=messages, page=page,
                           pages=max(1, -(-total // per_page)))


# -- the model catalog (issue 23) ----------------------------------------------------------

@bp.get("/catalog")
def catalog():
    """The catalog: search the listings the visitor may see (anonymous: the public ones)."""
    args = request.args
    error, items, total = None, [], 0
    try:
        items, total = catalog_service.search(
            context(), q=args.get("q", ""), tags=[t for t in args.getlist("tag") if t],
            problem=args.get("problem") or None,
            metrics=[m for m in args.getlist("metric") if m],
            columns=[c for c in args.getlist("column") if c], owner=args.get("owner") or None,
            team=args.get("team") or None, sort=args.get("sort") or None, page=_page_arg(),
            per_page=20)
    except ValidationFailed as exc:
        error = exc
    return render_template("catalog/search.html", items=items, total=total, error=error,
                           args=args, page=_page_arg())


@bp.get("/catalog/<listing_id>")
def listing(listing_id):
    """A listing's model card (and, for its owner, its consumers' usage)."""
    ctx = context()
    found = catalog_service.load_listing(ctx, listing_id)
    card = catalog_service.card(ctx, found, request.host_url)
    owned = "project_slug" in card["listing"]
    usage = catalog_service.usage(ctx, found) if owned else []
    return render_template("catalog/listing.html", card=card, owned=owned, usage=usage)
