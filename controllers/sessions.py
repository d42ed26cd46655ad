"""Login sessions on this client: the cookie names a server-side session."""

from __future__ import annotations

from flask import g, session
from flask_login import login_user, logout_user

from controllers.services import context, services
from services import accounts
from services.context import Context


def sign_in(user, *, api_token_id: str | None = None) -> None:
    """Log ``user`` in on this client: a new server-side session named by the cookie (or, for
    a Socket.IO connection opened with a token, tied to that token)."""
    session.pop("sso_id_token", None)  # a single sign-on login sets its own after this
    session["sid"] = (f"token:{api_token_id}" if api_token_id
                      else accounts.open_session(context(), user))
    login_user(user)
    _rotate_csrf_token()


def sign_out(*, audited: bool = False) -> None:
    """Log out: end this client's session on the server too (a copied cookie stops working);
    ``audited``: with an entry in the audit log."""
    sid = session.pop("sid", None)
    if audited:
        accounts.log_out(context(), sid)
    else:
        accounts.close_session(context(), sid)
    logout_user()
    _rotate_csrf_token()


def _rotate_csrf_token() -> None:
    """Forget this client's CSRF token: the next page or ``generate_csrf()`` makes a new one, so
    a token seen before a login (or a logout) is refused after it."""
    session.pop("csrf_token", None)  # Flask-WTF's raw token (WTF_CSRF_FIELD_NAME)
    g.pop("csrf_token", None)  # and its signed copy cached for this request


def session_is_open(user_id: str) -> bool:
    """True if this request's session is still open on the server (asked while the user is
    being loaded: the context names no user)."""
    return accounts.session_is_open(Context(services()), session.get("sid") or "", user_id)
