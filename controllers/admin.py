"""Administration pages: users and invitations, platform settings, the audit log."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for

from controllers.access import require_admin
from controllers.rendering import form_failure
from controllers.services import context
from entity.user import PLATFORM_ROLES
from exception_layer import BadRequest, PlatformError, ValidationFailed
from integration.credentials import MASK, storage_kinds
from services import accounts, administration, limits, teams
from services import storage_connections as sc

bp = Blueprint("admin", __name__, url_prefix="/admin")
AUDIT_PAGE = 50


def parse_day(value: str | None, field: str) -> datetime | None:
    """A YYYY-MM-DD filter value as a UTC datetime, or None when empty."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"{field} must be a date like 2026-11-22.") from None


@bp.route("/users", methods=["GET", "POST"])
def users():
    """Users: invite, change role, deactivate, send a password reset; self-registration."""
    require_admin()
    ctx = context()
    errors, form, status = {}, {}, 200
    if request.method == "POST":
        action = request.form.get("action")
        try:
            if action == "invite":
                form = request.form
                invited = accounts.invite_user(ctx, form.get("email", ""), form.get("name", ""),
                                               form.get("role", "member"))
                flash(f"Invitation sent to {invited.email}.", "success")
            elif action in ("deactivate", "activate", "make_admin", "make_member"):
                user = accounts.load_user(ctx, request.form.get("user_id", ""))
                changes = {"deactivate": {"active": False}, "activate": {"active": True},
                           "make_admin": {"role": "admin"},
                           "make_member": {"role": "member"}}[action]
                accounts.update_user(ctx, user, **changes)
                flash(f"{user.email} updated.", "success")
            elif action == "unlock":
                user = accounts.load_user(ctx, request.form.get("user_id", ""))
                accounts.unlock_login(ctx, user)
                flash(f"{user.email} can log in again at once.", "success")
            elif action == "reset":
                user = accounts.load_user(ctx, request.form.get("user_id", ""))
                accounts.request_password_reset(ctx, user.email)
                flash(f"A password-reset link was mailed to {user.email}.", "info")
            elif action == "registration":
                enabled = request.form.get("self_registration") == "on"
                accounts.set_registration(ctx, enabled)
                flash(f"Self-registration is {'on' if enabled else 'off'}.", "info")
            else:
                raise BadRequest("Unknown action.")
        except PlatformError as exc:
            errors, status = form_failure(exc)
        if status == 200:
            return redirect(url_for("admin.users")), 303
    listed = accounts.list_users(ctx)
    return render_template("admin/users.html", users=listed,
                           locks=accounts.login_locks(ctx, listed),
                           roles=PLATFORM_ROLES, errors=errors, form=form,
                           settings=accounts.platform_settings(ctx)), status


@bp.get("/audit")
def audit_log():
    """The audit log, filterable by person, action and dates."""
    require_admin()
    args = request.args
    try:
        page = max(1, int(args.get("page", 1)))
    except ValueError:
        page = 1
    since = parse_day(args.get("since"), "since")
    until = parse_day(args.get("until"), "until")
    events, total = administration.search_audit(
        context(), actor=args.get("actor"), action=args.get("action"), since=since,
        until=until, skip=(page - 1) * AUDIT_PAGE, limit=AUDIT_PAGE)
    filter_args = {k: args[k] for k in ("actor", "action", "since", "until") if args.get(k)}
    return render_template("admin/audit.html", events=events, page=page,
                           pages=max(1, -(-total // AUDIT_PAGE)), filters=args,
                           filter_args=filter_args)


# -- the sandbox (thread_layer/sandbox.py) -----------------------------------------------------

@bp.get("/sandbox")
def sandbox():
    """What isolation executions get on this server, and their limits."""
    require_admin()
    return render_template("admin/sandbox.html", status=limits.sandbox_status(context()))


# -- storage connections -------------------------------------------------------------------

@bp.get("/storage")
def storage():
    """Storage connections: where projects' files may live."""
    require_admin()
    ctx = context()
    return render_template("admin/storage.html", connections=sc.list_connections(ctx),
                           kinds=storage_kinds(), default_uri=sc.default_uri(ctx))


def _storage_form() -> dict:
    """The storage form's fields; the user and team checkboxes become the connection's
    grants."""
    form = request.form.to_dict()
    form["grants"] = [{"type": "user", "id": user_id}
                      for user_id in request.form.getlist("grant_user")] + \
        [{"type": "team", "id": team_id} for team_id in request.form.getlist("grant_team")]
    form["available_to_all"] = request.form.get("available_to_all") == "on"
    return form


@bp.route("/storage/new", methods=["GET", "POST"])
def new_storage():
    """Add a storage connection of one kind."""
    require_admin()
    kind, kinds = request.values.get("kind", ""), storage_kinds()
    if kind not in kinds:
        raise BadRequest(f"Choose a kind of storage: {', '.join(kinds)}.")
    errors, form = {}, {}
    if request.method == "POST":
        form = _storage_form()
        try:
            connection = sc.create_connection(context(), form)
        except ValidationFailed as exc:
            errors = exc.details or {}
        else:
            flash(f"Storage {connection.name} saved. Test it below.", "success")
            return redirect(url_for("admin.edit_storage", connection_id=connection.id)), 303
    return (render_template("admin/storage_form.html", kind=kind, spec=kinds[kind],
                            connection=None, form=form, errors=errors, mask=MASK,
                            users=accounts.list_users(context()),
                            teams=teams.list_teams(context())),
            422 if errors else 200)


@bp.route("/storage/<connection_id>", methods=["GET", "POST"])
def edit_storage(connection_id):
    """Edit a storage connection (secrets stay unless retyped)."""
    require_admin()
    ctx = context()
    connection = sc.load_connection(ctx, connection_id)
    errors, status = {}, 200
    if request.method == "POST":
        try:
            sc.update_connection(ctx, connection, _storage_form())
        except PlatformError as exc:
            errors, status = form_failure(exc)
        else:
            flash("Saved.", "success")
            return redirect(url_for("admin.edit_storage", connection_id=connection_id)), 303
    shown = sc.shown(ctx, connection)
    return render_template("admin/storage_form.html", kind=connection.kind,
                           spec=storage_kinds()[connection.kind], connection=shown,
                           form={**shown["settings"], **shown["secrets"],
                                 "name": shown["name"], "grants": shown["grants"],
                                 "available_to_all": shown["available_to_all"]},
                           errors=errors, mask=MASK, users=accounts.list_users(ctx),
                           teams=teams.list_teams(ctx)), status


@bp.post("/storage/<connection_id>/test")
def test_storage(connection_id):
    """Test connection: says plainly what is wrong, or that it works."""
    require_admin()
    ctx = context()
    connection = sc.load_connection(ctx, connection_id)
    try:
        flash(sc.test_connection(ctx, connection), "success")
    except PlatformError as exc:
        flash(f"{connection.name}: {exc.message}", "danger")
    return redirect(url_for("admin.edit_storage", connection_id=connection_id)), 303


@bp.post("/storage/<connection_id>/delete")
def delete_storage(connection_id):
    """Delete a connection no project uses."""
    require_admin()
    ctx = context()
    connection = sc.load_connection(ctx, connection_id)
    try:
        sc.delete_connection(ctx, connection)
        flash(f"Storage {connection.name} deleted.", "info")
    except PlatformError as exc:
        flash(exc.message, "danger")
    return redirect(url_for("admin.storage")), 303
