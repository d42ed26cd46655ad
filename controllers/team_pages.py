"""The team pages: every logged-in user sees the teams and who is in them; admins create and
delete teams and name leads, and a team's leads add and remove its members."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from controllers.access import require_admin, require_user
from controllers.rendering import form_failure
from controllers.services import context
from entity.team import TEAM_ROLES
from exception_layer import AccessDenied, PlatformError
from services import teams

bp = Blueprint("teams", __name__)


@bp.route("/teams", methods=["GET", "POST"])
def index():
    """The teams; admins create one here."""
    require_user()
    ctx = context()
    errors, form, status = {}, {}, 200
    if request.method == "POST":
        require_admin()
        form = request.form
        try:
            team = teams.create_team(ctx, form.get("name", ""), form.get("description", ""))
        except PlatformError as exc:
            errors, status = form_failure(exc)
        else:
            flash(f"Team {team.name} created.", "success")
            return redirect(url_for("teams.team", slug=team.slug)), 303
    shown = [teams.to_public(ctx, t) for t in teams.list_teams(ctx)]
    mine = {t.id for t in teams.teams_of(ctx, ctx.user.id)}
    return render_template("teams/index.html", teams=shown, mine=mine, errors=errors,
                           form=form), status


@bp.route("/teams/<slug>", methods=["GET", "POST"])
def team(slug):
    """One team and its members; admins and its leads add, change and remove members."""
    require_user()
    ctx = context()
    found = teams.load_team(ctx, slug)
    if request.method == "POST":
        if not teams.may_manage(ctx, found):
            raise AccessDenied("Only administrators and the team's leads manage its members.")
        try:
            if request.form.get("action") == "remove":
                teams.remove_member(ctx, found, request.form.get("user_id", ""))
                flash("Member removed.", "info")
            else:
                added = teams.set_member(ctx, found, request.form.get("email", ""),
                                         request.form.get("role", "member"))
                flash(f"{added['user']['email']} is now {added['role']} of the team.",
                      "success")
        except PlatformError as exc:
            message = exc.message
            if isinstance(exc.details, dict):
                message = " ".join(str(v) for v in exc.details.values()) or message
            flash(message, "danger")
        return redirect(url_for("teams.team", slug=found.slug)), 303
    return render_template("teams/detail.html", team=found,
                           members=teams.list_members(ctx, found),
                           may_manage=teams.may_manage(ctx, found), roles=TEAM_ROLES)


@bp.post("/teams/<slug>/delete")
def delete(slug):
    """Delete a team (admins)."""
    require_admin()
    ctx = context()
    found = teams.load_team(ctx, slug)
    teams.delete_team(ctx, found)
    flash(f"Team {found.name} deleted; its members keep only their own roles.", "info")
    return redirect(url_for("teams.index")), 303
