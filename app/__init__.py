"""The Trainyard application factory."""

from __future__ import annotations

import atexit
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, g, redirect, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from flask_mail import Message
from werkzeug.exceptions import RequestURITooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

import cloud_storage.gcs  # noqa: F401 (its adapter, probed at start-up)
from app.config import database_reached, load_config
from app.extensions import csrf, login_manager, mail, socketio
from controllers import admin, api, auth, health, pages, sso, team_pages
from controllers.live import client_manager, register_live_events
from controllers.quotas import init_quotas
from controllers.services import services
from controllers.sessions import session_is_open
from entity.catalog import KEY_PREFIX
from entity.database import Database
from entity.mail_message import MailMessage
from exception_layer import AccessDenied, Unauthenticated
from exception_layer.handlers import register_error_handlers, render_error
from integration.credentials import SecretBox
from integration.notifications import Notifier
from integration.storage_bridge import StorageResolver
from logging_layer import adapters
from logging_layer.live_access import LiveAccess
from logging_layer.setup import configure_logging
from services.accounts import user_for_token
from services.catalog import consumer_for_key
from services.context import Context, Platform
from thread_layer.alerts import Alerts, retrainer
from thread_layer.housekeeping import Housekeeper, Retention
from thread_layer.model_server import ModelServer
from thread_layer.monitoring import Monitor
from thread_layer.prediction_recorder import PredictionRecorder
from thread_layer.runner import ExecutionRunner
from thread_layer.sandbox import Limits
from thread_layer.scheduler import RetrainingScheduler

ROOT = Path(__file__).resolve().parent.parent
#: endpoints reachable without logging in
PUBLIC_ENDPOINTS = {"auth.login", "auth.setup", "auth.register", "auth.forgot", "auth.reset",
                    "auth.invite", "static", "health.healthz", "api.login", "api.setup",
                    "api.forgot", "api.signed_download", "api.openapi_document", "api.docs",
                    "sso.login", "sso.callback",
                    # the catalog: anonymous callers see public listings' cards
                    "api.search_catalog", "api.get_listing", "api.listing_card",
                    "api.openapi_consumer_document", "pages.catalog", "pages.listing",
                    # consumer routes: a consumer key (tyc_...), never a login
                    "api.consume_card", "api.consume_predict", "api.consume_score"}
#: the only endpoints a consumer key authenticates (each for its own listing)
CONSUMER_ENDPOINTS = {"api.consume_card", "api.consume_predict", "api.consume_score"}
#: endpoints without a CSRF check: they create a session from credentials, not from a cookie
CSRF_EXEMPT = {"api.login", "api.setup", "api.forgot", *CONSUMER_ENDPOINTS}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
#: the longest request line (method, address, protocol) answered: gunicorn's default limit,
#: now checked here so that the 414 is JSON under /api and a page elsewhere
URI_LIMIT = 4094

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: set on every response that does not set them itself
SECURITY_HEADERS = (("Content-Security-Policy", CONTENT_SECURITY_POLICY),
                    ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "same-origin"))


def create_app(config: dict[str, Any] | None = None, *, start_runner: bool = True) -> Flask:
    """Build the app: settings, database, storage, mail, Socket.IO, runner, routes.

    Args:
        config: settings that override the environment (tests pass DATA_DIR and friends).
        start_runner: start the background execution threads (scripts that only read the
            database pass False).
    Raises:
        app.config.ConfigError: a setting has a value that cannot be used (or DATABASE_URL
            a server that cannot be reached).
        entity.migrations.SchemaVersionError: the database is newer than this code.
    """
    settings = load_config(overrides=config)
    app = Flask(__name__, template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "static"), instance_path=settings["INSTANCE_DIR"])
    app.config.update(settings)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=settings["SESSION_COOKIE_SECURE"],
                      WTF_CSRF_TIME_LIMIT=None)
    app.session_interface = CookieSessions()
    configure_logging(settings["LOG_LEVEL"])
    # The private library internals of the hot paths, probed once per process.
    adapters.turn_off(settings["PUBLIC_PATHS"] or ())
    adapters.check_all()

    db = Database.from_url(settings["DATABASE_URL"])
    database_reached(db.upgrade)  # before the indexes: one may need the migrated documents
    db.ensure_indexes()
    box = SecretBox(settings["SECRETS_KEYS"])
    resolver = StorageResolver(settings["STORAGE_URI"], db.storage_connections, box)

    # Trainyard itself decides between SMTP and the outbox; Flask-Mail must not silently
    # drop mail because TESTING is on.
    app.config["MAIL_SUPPRESS_SEND"] = False
    mail.init_app(app)
    notifier = Notifier(db.mail, _smtp_sender(app) if settings["MAIL_SERVER"] else None,
                        settings["PUBLIC_URL"])

    socketio.init_app(app, async_mode="threading",
                      message_queue=settings["SOCKETIO_MESSAGE_QUEUE"],
                      client_manager=client_manager(settings["SOCKETIO_MESSAGE_QUEUE"]))
    live = LiveAccess(socketio.server.close_room)  # this app's server, in every process
    if settings["TRUSTED_PROXY_HOPS"]:  # outermost, so that every layer sees the client
        hops = settings["TRUSTED_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    def publish(event: str, payload: dict, room: str) -> None:
        socketio.emit(event, payload, to=room)

    runner = ExecutionRunner(
        db=db, resolver=resolver, notifier=notifier, publish=publish, context=app.app_context,
        max_workers=settings["MAX_CONCURRENT_EXECUTIONS"], threads=settings["EXECUTION_THREADS"],
        heartbeat_seconds=settings["HEARTBEAT_SECONDS"],
        stale_after_seconds=settings["STALE_AFTER_SECONDS"],
        dispatch=_broker_dispatch(settings["CELERY_BROKER_URL"]),
        limits=Limits.from_settings(settings), ceiling=Limits.ceiling_from_settings(settings),
        scratch_root=settings["SCRATCH_DIR"],
        memory_budget_mb=settings["EXECUTION_MEMORY_BUDGET_MB"] or None,
        sandbox_mode=settings["SANDBOX"], sandbox_bwrap=settings["SANDBOX_BWRAP"])
    model_server = ModelServer(db, resolver, settings["EXECUTION_THREADS"],
                               flush_seconds=settings["USAGE_FLUSH_SECONDS"],
                               recorder=PredictionRecorder(
                                   db, cpu_share=settings["PREDICTION_RECORDS_CPU_PERCENT"] / 100))
    app.extensions["trainyard"] = Platform(db=db, resolver=resolver, notifier=notifier,
                                           runner=runner, box=box, model_server=model_server,
                                           settings=app.config, live=live)

    login_manager.init_app(app)
    # "basic": a session used from another user agent (an API client's Socket.IO connection)
    # stays valid but is no longer "fresh".
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(session_id: str):
        # "<user id>.<session version>": a password change or deactivation ends old sessions.
        user_id, _, version = session_id.rpartition(".")
        user = db.users.get(user_id)
        if user is None or not user.active or str(user.session_version) != version:
            return None
        if not session_is_open(user.id):  # logged out elsewhere: the cookie is a stale copy
            return None
        return user

    # CSRF is checked in _install_guards: for cookie sessions only (a bearer token cannot be
    # sent by another site's form).
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)
    sso.init_app(app)  # the OpenID Connect provider, when OIDC_CLIENT_ID is set
    for blueprint in (auth.bp, pages.bp, admin.bp, api.bp, health.bp, team_pages.bp, sso.bp):
        app.register_blueprint(blueprint)
    app.add_template_filter(_format_number, "number")
    app.add_template_filter(param_lines, "param_lines")
    register_live_events(socketio)
    register_error_handlers(app)
    _install_guards(app, db)
    init_quotas(app)  # after the bearer guard: the consumer it finds carries the quotas

    with app.app_context():
        runner.recover()
    housekeeper = Housekeeper(db, Retention.from_config(app.config),
                              every_seconds=settings["HOUSEKEEPING_MINUTES"] * 60,
                              context=app.app_context, storages=resolver)
    app.extensions["housekeeping"] = housekeeper
    alerts = Alerts(db, notifier, box, retrain=retrainer(db, runner))
    monitor = Monitor(db, resolver, alerts=alerts,
                      every_seconds=settings["MONITORING_MINUTES"] * 60,
                      window_hours=settings["MONITORING_WINDOW_HOURS"], context=app.app_context)
    app.extensions["monitoring"] = monitor
    scheduler = RetrainingScheduler(db, runner, tick_seconds=settings["SCHEDULER_SECONDS"],
                                    lease_seconds=settings["SCHEDULER_LEASE_SECONDS"],
                                    context=app.app_context)
    app.extensions["scheduler"] = scheduler
    if start_runner:
        runner.sandbox_report  # noqa: B018 - detected (and logged) at start-up
        runner.start()
        housekeeper.start()
        monitor.start()
        scheduler.start()
        atexit.register(monitor.shutdown)
        atexit.register(scheduler.shutdown)
        atexit.register(housekeeper.shutdown)
        atexit.register(runner.shutdown)
        atexit.register(model_server.close)  # the last seconds of prediction counters
    return app


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without their work for requests that bring no session
    cookie and leave the session untouched (API calls with a bearer token, health checks):
    Flask builds a signer and reads seven cookie settings for each of those, a few percent
    of a real-time prediction's cost."""

    def open_session(self, app, request):
        if app.secret_key and not request.environ.get("HTTP_COOKIE"):
            return self.session_class()  # no cookie at all: not even one to parse
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        if session or session.modified:
            super().save_session(app, session, response)
        elif session.accessed:  # all Flask does for an empty session left as it was
            response.vary.add("Cookie")


def _broker_dispatch(broker_url: str | None):
    if not broker_url:
        return None
    from thread_layer.celery_queue import broker_dispatcher, make_celery

    return broker_dispatcher(make_celery(broker_url))


def _format_number(value) -> str:
    """Counts as integers, scores with four decimals."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4f}"


def param_lines(params: dict, prefix: str = "") -> list[str]:
    """A model's parameters as ``name = value`` lines; nested ones (an ensemble's members)
    with dotted names, e.g. ``members.RandomForestClassifier.n_estimators = 300``."""
    lines = []
    for key, value in params.items():
        if isinstance(value, dict) and value:
            lines.extend(param_lines(value, f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key} = {value}")
    return lines


def _smtp_sender(app: Flask):
    def send(message: MailMessage) -> None:
        with app.app_context():
            mail.send(Message(subject=message.subject, recipients=message.recipients,
                              body=message.body_text, html=message.body_html or None))
    return send


def policy_headers(config) -> tuple[tuple[str, str], ...]:
    """:data:`SECURITY_HEADERS`, with the single sign-on provider's origin allowed as a form
    target (logging out redirects the logout form to the provider's end-session page, which
    browsers check against ``form-action``)."""
    discovery = config.get("OIDC_DISCOVERY")
    if not discovery:
        return SECURITY_HEADERS
    parts = urlsplit(discovery)
    policy = CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", f"form-action 'self' {parts.scheme}://{parts.netloc}")
    return (("Content-Security-Policy", policy),) + SECURITY_HEADERS[1:]


def _install_guards(app: Flask, db: Database) -> None:
    headers = policy_headers(app.config)

    @app.before_request
    def limit_uri():
        environ = request.environ
        uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
        if len(request.method) + len(uri) + len(environ.get("SERVER_PROTOCOL", "")) + 2 > \
                URI_LIMIT:
            raise RequestURITooLarge(f"The address is longer than the {URI_LIMIT} characters "
                                     "allowed.")

    @app.before_request
    def authenticate_bearer():
        """``Authorization: Bearer <token>`` authenticates this request alone (no session)."""
        header = request.headers.get("Authorization", "")
        g.api_token = None
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        g.consumer = None
        if scheme.lower() == "bearer" and value.strip().startswith(KEY_PREFIX):
            # a consumer key is no login: it reaches its listing's consumer routes only
            if request.endpoint not in CONSUMER_ENDPOINTS:
                return render_error(Unauthenticated(
                    "A consumer key only calls its listing's /consume routes."))
            try:
                g.consumer = consumer_for_key(Context(services()), value.strip())
            except Unauthenticated as refused:
                return render_error(refused)
            return None
        found = (user_for_token(Context(services()), value.strip())
                 if scheme.lower() == "bearer" else None)
        if found is None:
            return render_error(Unauthenticated(
                "The API token is missing, malformed, revoked, or its user is deactivated."))
        g._login_user, g.api_token = found
        if found[1].scope == "read" and request.method not in SAFE_METHODS:
            return render_error(AccessDenied("This API token is read-only."))
        return None

    @app.before_request
    def require_login():
        if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
            return None
        if current_user.is_authenticated:
            return None
        if request.path.startswith("/api/"):
            return render_error(Unauthenticated())
        if db.users.count() == 0:
            return redirect(url_for("auth.setup"))
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))

    # After the login check: an anonymous call is told to log in (401, or the login page), not
    # that a CSRF token is missing; the public endpoints (the login form) are still checked.
    @app.before_request
    def check_csrf():
        if request.method in SAFE_METHODS or g.api_token is not None or \
                request.endpoint in CSRF_EXEMPT:
            return None
        csrf.protect()
        return None

    @app.after_request
    def security_headers(response):
        # Those a view set itself stay. (Headers.setdefault raises and catches an exception per
        # missing header: a tenth of a real-time prediction's cost.)
        present = {name.lower() for name in response.headers.keys()}
        response.headers.extend([(name, value) for name, value in headers
                                 if name.lower() not in present])
        return response
