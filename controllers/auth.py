"""Account pages: first-run set-up, login and logout, registration, invitations, password
resets, and the profile (password and personal API tokens)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for

from controllers.access import require_user
from controllers.rendering import form_failure
from controllers.services import context
from controllers.sessions import sign_in, sign_out
from exception_layer import (
    BadRequest,
    PlatformError,
    TooManyRequests,
    Unauthenticated,
    ValidationFailed,
)
from services import accounts

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
    if accounts.is_set_up(context()):
        return redirect(url_for("auth.login"))
    errors, form = {}, {}
    if request.method == "POST":
        form = request.form
        try:
            user = accounts.create_first_admin(context(), form.get("email", ""),
                                               form.get("name", ""), form.get("password", ""),
                                               form.get("confirm", ""))
        except ValidationFailed as exc:
            errors = exc.details
        else:
            sign_in(user)
            flash("Welcome to Trainyard. Create your first project.", "success")
            return redirect(url_for("pages.index"))
    return render_template("auth/setup.html", errors=errors, form=form), (422 if errors else 200)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in with e-mail and password."""
    ctx = context()
    if not accounts.is_set_up(ctx):
        return redirect(url_for("auth.setup"))
    error, status = None, 200
    if request.method == "POST":
        try:
            user = accounts.authenticate(ctx, request.form.get("email", ""),
                                         request.form.get("password", ""))
        except (Unauthenticated, TooManyRequests) as exc:
            error, status = exc.message, exc.status
        else:
            sign_in(user)
            return redirect(_safe_next(request.args.get("next")))
    return render_template(
        "auth/login.html", error=error, email=request.form.get("email", ""),
        registration=accounts.registration_is_open(ctx)), status


@bp.post("/logout")
def logout():
    """End the session (and, for a single sign-on session, the provider's session too)."""
    from controllers.sso import ID_TOKEN_KEY, provider_logout

    id_token = session.pop(ID_TOKEN_KEY, None)
    sign_out(audited=True)
    flash("You are logged out.", "info")
    return provider_logout(id_token) or redirect(url_for("auth.login"))


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Self-registration, when an admin has turned it on."""
    if not accounts.registration_is_open(context()):
        flash("Registration is closed; ask an administrator for an invitation.", "warning")
        return redirect(url_for("auth.login"))
    errors, form = {}, {}
    if request.method == "POST":
        form = request.form
        try:
            user = accounts.register(context(), form.get("email", ""), form.get("name", ""),
                                     form.get("password", ""), form.get("confirm", ""))
        except ValidationFailed as exc:
            errors = exc.details
        else:
            sign_in(user)
            return redirect(url_for("pages.index"))
    return (render_template("auth/password_form.html", mode="register", errors=errors,
                            form=form), 422 if errors else 200)


@bp.route("/forgot", methods=["GET", "POST"])
def forgot():
    """Ask for a password-reset link."""
    if request.method == "POST":
        accounts.request_password_reset(context(), request.form.get("email", ""))
        flash("If this address belongs to an account, a reset link is on its way.", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot.html")


def _redeem_page(mode: str, secret: str):
    errors, status = {}, 200
    if request.method == "POST":
        redeem = accounts.accept_invitation if mode == "invite" else accounts.reset_password
        try:
            user = redeem(context(), secret, request.form.get("password", ""),
                          request.form.get("confirm", ""))
        except ValidationFailed as exc:
            errors, status = exc.details, 422
        except BadRequest as exc:
            errors, status = {"link": exc.message}, 400
        else:
            sign_in(user)
            flash("Your password is set.", "success")
            return redirect(url_for("pages.index"))
    elif not accounts.link_is_valid(context(), mode, secret):
        errors, status = {"link": "This link is invalid, expired or already used; ask for a "
                                  "new one."}, 400
    return render_template("auth/password_form.html", mode=mode, errors=errors,
                           form={}), status


@bp.route("/invite/<secret>", methods=["GET", "POST"])
def invite(secret):
    """Accept an invitation: choose a password."""
    return _redeem_page("invite", secret)


@bp.route("/reset/<secret>", methods=["GET", "POST"])
def reset(secret):
    """Choose a new password from a reset link."""
    return _redeem_page("reset", secret)


@bp.route("/profile", methods=["GET", "POST"])
def profile():
    """Your password and your personal API tokens."""
    user = require_user()
    ctx = context()
    errors, new_token = {}, None
    status = 200
    if request.method == "POST":
        action = request.form.get("action")
        try:
            if action == "password":
                accounts.change_password(ctx, user, request.form.get("current", ""),
                                         request.form.get("password", ""),
                                         request.form.get("confirm", ""))
                sign_in(accounts.get_user(ctx, user.id))  # keep this one open
                flash("Password changed; your other sessions have ended.", "success")
                return redirect(url_for("auth.profile"))
            if action == "create_token":
                token, new_token = accounts.create_token(ctx, user,
                                                         request.form.get("name", ""),
                                                         request.form.get("scope", ""))
            elif action == "revoke_token":
                accounts.revoke_token(ctx, user, request.form.get("token_id", ""))
                flash("Token revoked.", "info")
                return redirect(url_for("auth.profile"))
            else:
                raise BadRequest("Unknown action.")
        except PlatformError as exc:
            errors, status = form_failure(exc)
    return render_template("auth/profile.html", errors=errors, new_token=new_token,
                           tokens=accounts.list_tokens(ctx, user)), status
