"""Single sign-on through OpenID Connect, with Authlib's Flask client: ``/login/sso`` sends the
browser to the provider (state and nonce kept in the session), ``/login/sso/callback`` takes
the code back, has Authlib exchange it and check the state, the nonce and the ID token's
signature, and signs the person in (``services.single_sign_on``). Logging out of a sign-on
session also ends it at the provider when the provider has an ``end_session_endpoint``.

Every failure at either step (the person denied, a stale or forged state, the provider down or
answering nonsense) shows the login page with a sentence in plain words, never a 5xx.
"""

from __future__ import annotations

import logging

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import Blueprint, Flask, current_app, redirect, render_template, request, session

from controllers.auth import _safe_next
from controllers.services import context
from controllers.sessions import sign_in
from exception_layer import AccessDenied, NotFound, Unauthenticated
from services import accounts, single_sign_on

bp = Blueprint("sso", __name__)
log = logging.getLogger(__name__)
#: the session keys of a sign-on: where to go after it, and the ID token (for the logout)
NEXT_KEY = "sso_next"
ID_TOKEN_KEY = "sso_id_token"
#: the name of the provider in Authlib's registry
CLIENT = "oidc"
#: how long Trainyard waits for the provider (discovery, token, keys, user info)
PROVIDER_TIMEOUT = 10


def init_app(app: Flask) -> None:
    """Register the provider with Authlib when single sign-on is configured."""
    oauth = OAuth()
    oauth.init_app(app)
    app.extensions["trainyard_oauth"] = oauth
    if not app.config.get("OIDC_DISCOVERY"):
        return
    scopes = app.config["OIDC_SCOPES"].split()
    if "openid" not in scopes:
        scopes.insert(0, "openid")
    oauth.register(CLIENT, client_id=app.config["OIDC_CLIENT_ID"],
                   client_secret=app.config["OIDC_CLIENT_SECRET"] or None,
                   server_metadata_url=app.config["OIDC_DISCOVERY"],
                   client_kwargs={"scope": " ".join(scopes), "default_timeout": PROVIDER_TIMEOUT,
                                  "code_challenge_method": "S256"})


def is_configured() -> bool:
    return bool(current_app.config.get("OIDC_DISCOVERY"))


def _client():
    if not is_configured():
        raise NotFound("Single sign-on is not configured.")
    return current_app.extensions["trainyard_oauth"].create_client(CLIENT)


def _redirect_uri() -> str:
    # from PUBLIC_URL, never from the request's Host header: the provider holds this address
    return current_app.config["PUBLIC_URL"] + "/login/sso/callback"


def _failed(message: str, status: int = 400):
    """The login page with what went wrong (a sign-on failure is never a 5xx)."""
    ctx = context()
    return render_template("auth/login.html", error=message, email="",
                           registration=accounts.registration_is_open(ctx)), status


def _provider_trouble(exc: Exception) -> str:
    # the exception's class only: a message might quote a URL with the client's secret
    log.warning("single sign-on: the provider failed: %s", type(exc).__name__)
    return (f"Signing in with {current_app.config['OIDC_PROVIDER_NAME']} did not work: the "
            "provider could not be reached or gave an answer Trainyard cannot use. Try again "
            "in a moment, or log in with your password.")


@bp.get("/login/sso")
def login():
    """Send the browser to the provider to sign in."""
    client = _client()
    session[NEXT_KEY] = _safe_next(request.args.get("next"))
    try:
        return client.authorize_redirect(_redirect_uri())
    except (AuthlibBaseError, requests.RequestException, ValueError, KeyError,
            RuntimeError) as exc:
        return _failed(_provider_trouble(exc))


@bp.get("/login/sso/callback")
def callback():
    """The provider sends the browser back here with a code (or an error)."""
    client = _client()
    name = current_app.config["OIDC_PROVIDER_NAME"]
    error = request.args.get("error")
    if error:
        if error == "access_denied":
            return _failed(f"Signing in with {name} was cancelled or refused at the provider.")
        return _failed(f"The provider refused the sign-in ({str(error)[:60]}).")
    if not request.args.get("state") or not request.args.get("code"):
        return _failed("This sign-in link is incomplete; start again from the login page.")
    try:
        token = client.authorize_access_token()
    except AuthlibBaseError as exc:
        if getattr(exc, "error", "") in ("mismatching_state", "invalid_state") or \
                "state" in str(getattr(exc, "description", "") or "").lower():
            return _failed("This sign-in has expired or was started elsewhere; start again "
                           "from the login page.")
        return _failed(_provider_trouble(exc))
    except (requests.RequestException, ValueError, KeyError, TypeError, RuntimeError) as exc:
        # joserfc's token errors are ValueErrors; a provider down is a RequestException
        return _failed(_provider_trouble(exc))
    claims = dict(token.get("userinfo") or {})
    if not claims:
        return _failed(_provider_trouble(ValueError("no ID token")))
    groups_claim = current_app.config.get("OIDC_GROUPS_CLAIM")
    if groups_claim and groups_claim not in claims:  # some providers give groups only here
        try:
            claims = {**dict(client.userinfo(token=token)), **claims}
        except (AuthlibBaseError, requests.RequestException, ValueError, KeyError,
                RuntimeError) as exc:
            return _failed(_provider_trouble(exc))
    try:
        user = single_sign_on.sign_on(context(), claims)
    except (Unauthenticated, AccessDenied) as exc:
        return _failed(exc.message, exc.status)
    next_page = session.pop(NEXT_KEY, None)
    sign_in(user)
    if token.get("id_token"):
        session[ID_TOKEN_KEY] = token["id_token"]
    return redirect(_safe_next(next_page))


def provider_logout(id_token: str | None):
    """After the local session ended: the redirect that ends the session at the provider too
    (when it has an ``end_session_endpoint``), or None."""
    if id_token is None or not is_configured():
        return None
    try:
        return _client().logout_redirect(
            post_logout_redirect_uri=current_app.config["PUBLIC_URL"] + "/login",
            id_token_hint=id_token, client_id=current_app.config["OIDC_CLIENT_ID"])
    except (AuthlibBaseError, requests.RequestException, ValueError, KeyError,
            RuntimeError) as exc:  # no end_session_endpoint, or the provider is down
        log.info("single sign-on: no logout at the provider: %s", type(exc).__name__)
        return None
