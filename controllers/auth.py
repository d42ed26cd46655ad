"""First-run set-up, login and logout pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_user, logout_user

from controllers.accounts import authenticate, create_first_admin
from controllers.services import services
from exception_layer import Unauthenticated, ValidationFailed

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths are followed after login (no open redirects)."""
    if target and target.startswith("/") and not target.startswith("//") and \
            not urlsplit(target).netloc and "\\" not in target:
        return target
    return url_for("pages.index")


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """First-run set-up: create the administrator account."""
    if services().db.users.count() > 0:
        return redirect(url_for("auth.login"))
    errors, form = {}, {}
    if request.method == "POST":
        form = request.form
        try:
            user = create_first_admin(form.get("email", ""), form.get("name", ""),
                                      form.get("password", ""), form.get("confirm", ""))
        except ValidationFailed as exc:
            errors = exc.details
        else:
            login_user(user)
            flash("Welcome to Trainyard. Create your first project.", "success")
            return redirect(url_for("pages.index"))
    return render_template("auth/setup.html", errors=errors, form=form), (422 if errors else 200)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in with e-mail and password."""
    if services().db.users.count() == 0:
        return redirect(url_for("auth.setup"))
    error = None
    if request.method == "POST":
        try:
            user = authenticate(request.form.get("email", ""), request.form.get("password", ""))
        except Unauthenticated as exc:
            error = exc.message
        else:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
    return (render_template("auth/login.html", error=error, email=request.form.get("email", "")),
            401 if error else 200)


@bp.post("/logout")
def logout():
    """End the session."""
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
