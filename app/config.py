"""Configuration: every setting comes from the environment (or ``.env``), has a documented
default, and a bad value stops start-up with a message naming the variable.

See ``.env.example`` for the list. Secrets that are not given are generated on first start into
the instance folder (mode 0600), so nothing ships with a default secret.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from thread_layer.celery_queue import parse_queues


class ConfigError(RuntimeError):
    """A setting has a value Trainyard cannot use; the message names the variable."""


def _text(value: str) -> str:
    return value


def _int(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if minimum is not None and number < minimum:
            raise ValueError(f"must be at least {minimum}")
        if maximum is not None and number > maximum:
            raise ValueError(f"must be at most {maximum}")
        return number
    return parse


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value
    return parse


def _json_object(value: str) -> dict[str, str]:
    import json

    try:
        parsed = json.loads(value)
    except ValueError:
        raise ValueError("must be a JSON object") from None
    if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in parsed.items()):
        raise ValueError("must be a JSON object of text values (claim value -> team name)")
    return {k: v.strip() for k, v in parsed.items()}


def _names(*choices: str) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in value.split(",") if n.strip())
        unknown = [n for n in names if n not in choices]
        if unknown:
            raise ValueError(f"names {', '.join(unknown)}; known: {', '.join(choices)}")
        return names
    return parse


#: name -> (parser, default, description); a default of None means "unset"
SETTINGS: dict[str, tuple[Callable[[str], Any], Any, str]] = {
    "TRAINYARD_HOST": (_text, "127.0.0.1", "Address the web server listens on."),
    "TRAINYARD_PORT": (_int(1, 65535), 5000, "Port the web server listens on."),
    "TRAINYARD_THREADS": (_int(4, 1000), 64,
                          "Web server threads (each open live-log websocket holds one)."),
    "DATA_DIR": (_text, "data", "Folder for the embedded database and local storage."),
    "INSTANCE_DIR": (_text, "instance", "Folder for generated secrets (mode 0600)."),
    "DATABASE_URL": (_text, None,
                     "sqlite:///path.db (default: DATA_DIR/trainyard.db), "
                     "postgresql://user:password@host/db or mongodb://..."),
    "STORAGE_URI": (_text, None, "Default storage of projects (default: file://DATA_DIR/storage)."),
    "SECRET_KEY": (_text, None, "Signs sessions; generated into INSTANCE_DIR when unset."),
    "SECRETS_KEY": (_text, None,
                    "Fernet key(s) encrypting storage credentials, comma-separated: the first "
                    "encrypts, the others still decrypt (rotation); generated when unset."),
    "PUBLIC_URL": (_text, None, "Address of Trainyard in links sent by mail "
                                "(default: http://TRAINYARD_HOST:TRAINYARD_PORT)."),
    "MAIL_SERVER": (_text, None, "SMTP server; when unset, mails are kept in the outbox page."),
    "MAIL_PORT": (_int(1, 65535), 25, "SMTP port."),
    "MAIL_USE_TLS": (_bool, False, "Use STARTTLS."),
    "MAIL_USE_SSL": (_bool, False, "Use SMTP over SSL."),
    "MAIL_USERNAME": (_text, None, "SMTP user name."),
    "MAIL_PASSWORD": (_text, None, "SMTP password."),
    "MAIL_DEFAULT_SENDER": (_text, "trainyard@localhost", "From address of Trainyard's mails."),
    "MAX_UPLOAD_MB": (_int(1, 1024 * 1024), 1024, "Largest upload request accepted, in MB."),
    "MAX_UPLOAD_FILES": (_int(1, 10000), 100, "Most files in one upload."),
    "SHARE_LINK_MAX_SECONDS": (_int(60, 7 * 24 * 3600), 7 * 24 * 3600,
                               "Longest a file's download link stays valid, in seconds (it "
                               "also stops when its maker loses access or the file changes)."),
    "MAX_MOVE_FILES": (_int(1, 100000), 1000,
                       "Most files in one folder move (a cloud copies them one by one)."),
    "MAX_CONCURRENT_EXECUTIONS": (_int(1, 64), 2,
                                  "Executions running at once in this process; more wait queued."),
    "EXECUTION_THREADS": (_int(1, 256), 1,
                          "CPU threads each execution's worker process may use."),
    "HEARTBEAT_SECONDS": (_int(1, 3600), 5, "How often a running execution heartbeats."),
    "STALE_AFTER_SECONDS": (_int(5, 86400), 60,
                            "An execution without heartbeat for this long is interrupted."),
    "USAGE_FLUSH_SECONDS": (_int(1, 3600), 5,
                            "How often a web process saves its real-time prediction counters "
                            "to the database."),
    "PREDICTION_RECORDS_CPU_PERCENT": (_int(1, 100), 2,
                                       "The share of one core (percent) a web process may "
                                       "spend writing real-time prediction records; rows "
                                       "beyond it are dropped and counted (100: no budget)."),
    "PUBLIC_PATHS": (_names("all", "gunicorn-body", "gcs-session", "sklearn-raw-predict"), None,
                     "Adapters (comma-separated, or all) whose private library internal is "
                     "not used, the library's public path instead (logging_layer/adapters.py)."),
    "SOCKETIO_MESSAGE_QUEUE": (_text, None,
                               "redis://... so several processes publish live logs."),
    "RATELIMIT_STORAGE_URI": (_text, None,
                              "Where consumer quotas are counted (e.g. redis://host:6379/2); "
                              "unset: the Redis of SOCKETIO_MESSAGE_QUEUE or CELERY_BROKER_URL "
                              "if there is one, else this process's memory."),
    "CELERY_BROKER_URL": (_text, None,
                          "redis://... to run executions on `python -m app worker` processes "
                          "(needs SOCKETIO_MESSAGE_QUEUE too); unset: in the web process."),
    "WORKER_QUEUES": (parse_queues, None,
                      "The execution queues a `python -m app worker` takes work from "
                      "(comma-separated: train, predict, monitor; unset: all of them; "
                      "`--queues` overrides)."),
    "WORKER_STOP_GRACE_SECONDS": (_int(0, 86400), 8,
                                  "On SIGTERM a worker lets its running executions finish for "
                                  "this long, then hands them back to their queue (another "
                                  "worker starts them again) instead of leaving them "
                                  "interrupted."),
    "RETENTION_LOGIN_FAILURES_DAYS": (_int(0, 36500), 1,
                                      "Days failed logins are kept (the login throttle looks "
                                      "at the last 24 hours); 0 keeps them forever."),
    "RETENTION_SESSIONS_DAYS": (_int(0, 36500), 1,
                                "Days a login session is kept after it expired (a session "
                                "cookie unused for 31 days is refused); 0 keeps them forever."),
    "RETENTION_LOGS_DAYS": (_int(0, 36500), 0,
                            "Days execution log lines are kept; 0 keeps them forever."),
    "RETENTION_AUDIT_DAYS": (_int(0, 36500), 0,
                             "Days audit records are kept; 0 keeps them forever."),
    "RETENTION_PREDICTION_RECORDS_DAYS": (_int(0, 36500), 0,
                                          "Days prediction records (inputs, outputs, labels) "
                                          "are kept, unless a project sets its own; 0 keeps "
                                          "them forever."),
    "HOUSEKEEPING_MINUTES": (_int(1, 10080), 60,
                             "How often the retention above is applied (by one web process "
                             "at a time)."),
    # live monitoring and alerts (issue 22)
    "MONITORING_MINUTES": (_int(1, 1440), 15,
                           "How often the monitors of every model version are computed and "
                           "the alert rules judged (by one web process at a time)."),
    "MONITORING_WINDOW_HOURS": (_int(1, 720), 24,
                                "The rolling window of live monitoring, unless a project sets "
                                "its own."),
    # -- the retraining scheduler (thread_layer/scheduler.py) --
    "SCHEDULER_SECONDS": (_int(1, 3600), 30,
                          "How often each process's retraining scheduler looks for due "
                          "schedules and labels triggers (and renews its lease)."),
    "SCHEDULER_LEASE_SECONDS": (_int(2, 86400), 120,
                                "How long the scheduler's lease lasts unrenewed: another "
                                "process takes over this long after its holder died."),
    "LOG_LEVEL": (_choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", "Server log level."),
    "SESSION_COOKIE_SECURE": (_bool, False, "Send the session cookie over HTTPS only."),
    "TRUSTED_PROXY_HOPS": (_int(0, 10), 0,
                           "Reverse proxies in front of Trainyard whose X-Forwarded-For, -Proto "
                           "and -Host are believed (werkzeug ProxyFix); 0 ignores those headers. "
                           "The login throttle counts the client address this gives."),
}

# -- single sign-on (OpenID Connect): off unless OIDC_CLIENT_ID is set -------------------------
SETTINGS.update({
    "OIDC_PROVIDER_NAME": (_text, "single sign-on",
                           "Shown on the login page as \"Sign in with <name>\"."),
    "OIDC_ISSUER": (_text, None, "The provider's issuer URL; its discovery document is "
                                 "<issuer>/.well-known/openid-configuration."),
    "OIDC_DISCOVERY_URL": (_text, None, "The discovery document's URL, when it is not under "
                                        "OIDC_ISSUER."),
    "OIDC_CLIENT_ID": (_text, None, "Trainyard's client id at the provider; setting it turns "
                                    "single sign-on on."),
    "OIDC_CLIENT_SECRET": (_text, None, "Trainyard's client secret at the provider (never "
                                        "logged)."),
    "OIDC_SCOPES": (_text, "openid email profile", "Scopes asked for, space-separated (openid "
                                                    "is always asked)."),
    "OIDC_GROUPS_CLAIM": (_text, None, "The claim holding the user's groups (e.g. groups); "
                                       "unset: no team mapping."),
    "OIDC_TEAM_MAPPING": (_json_object, {}, "JSON object: claim value -> team name, e.g. "
                                            "{\"ds-group\": \"Data Science\"}; applied at "
                                            "every sign-on (teams joined and left)."),
    "OIDC_CREATE_USERS": (_bool, True, "Create an account at a person's first sign-on."),
    "OIDC_NEW_USER_ROLE": (_choice("member", "admin"), "member",
                           "The platform role of accounts created at sign-on."),
    "OIDC_LINK_EXISTING": (_choice("verified", "never"), "verified",
                           "An existing local account with the same e-mail is linked at "
                           "sign-on only when the provider says email_verified (verified), "
                           "or never."),
})


# -- Limits and isolation of executions (thread_layer/sandbox.py) -----------------------------
def _limit_settings() -> dict[str, tuple[Callable[[str], Any], Any, str]]:
    from thread_layer.sandbox import LIMIT_SPECS

    found: dict[str, tuple[Callable[[str], Any], Any, str]] = {
        "SANDBOX": (_choice("auto", "strict", "off"), "auto",
                    "Isolation of executions: auto uses what the machine allows and says so; "
                    "strict refuses to run executions without network, file and user "
                    "isolation; off runs them with limits only."),
        "SANDBOX_BWRAP": (_bool, True, "Use bubblewrap (bwrap) when installed; false forces the "
                                       "fallback (unshare -n, setuid) path."),
        "SCRATCH_DIR": (_text, None, "Folder of executions' scratch folders "
                                     "(default: DATA_DIR/scratch)."),
        "EXECUTION_MEMORY_BUDGET_MB": (_int(0, 1 << 30), 0,
                                       "Sum of running executions' memory limits admitted at "
                                       "once; more wait queued (0: the machine's memory "
                                       "less 1 GB)."),
    }
    for spec in LIMIT_SPECS:
        unit = f" ({spec.unit})" if spec.unit else ""
        found[spec.setting] = (_int(spec.minimum, spec.ceiling * 16), spec.default,
                               f"Default limit per execution{unit}: {spec.words}; "
                               f"enforced by {spec.enforced_by}.")
        found[spec.ceiling_setting] = (_int(spec.minimum, spec.ceiling * 16), spec.ceiling,
                                       f"Highest {spec.setting} a project may be given{unit}.")
    return found


SETTINGS.update(_limit_settings())


def load_config(environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parse every setting from ``environ`` (default: ``os.environ``), then apply ``overrides``.

    Raises:
        ConfigError: naming the first variable whose value cannot be used.
    """
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    config: dict[str, Any] = {}
    for name, (parse, default, _doc) in SETTINGS.items():
        if name in overrides:
            config[name] = overrides.pop(name)
            continue
        raw = environ.get(name)
        if raw is None or raw == "":
            config[name] = default
            continue
        try:
            config[name] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}={raw!r} {exc}.") from None
    config.update(overrides)  # extra Flask settings (TESTING, ...)

    data_dir = Path(config["DATA_DIR"]).resolve()
    config["DATA_DIR"] = str(data_dir)
    config["INSTANCE_DIR"] = str(Path(config["INSTANCE_DIR"]).resolve())
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{data_dir / 'trainyard.db'}"
    if not config["STORAGE_URI"]:
        config["STORAGE_URI"] = (data_dir / "storage").as_uri()
    if not config["PUBLIC_URL"]:
        host = config["TRAINYARD_HOST"]
        shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
        config["PUBLIC_URL"] = f"http://{shown}:{config['TRAINYARD_PORT']}"
    config["PUBLIC_URL"] = config["PUBLIC_URL"].rstrip("/")
    if not config["SCRATCH_DIR"]:
        config["SCRATCH_DIR"] = str(data_dir / "scratch")
    from thread_layer.sandbox import LIMIT_SPECS

    for spec in LIMIT_SPECS:
        if config[spec.setting] > config[spec.ceiling_setting]:
            raise ConfigError(f"{spec.setting}={config[spec.setting]} is above its ceiling "
                              f"{spec.ceiling_setting}={config[spec.ceiling_setting]}.")
    if config["CELERY_BROKER_URL"] and not config["SOCKETIO_MESSAGE_QUEUE"]:
        raise ConfigError("CELERY_BROKER_URL needs SOCKETIO_MESSAGE_QUEUE as well, so that "
                          "workers can publish live logs (e.g. the same redis:// URL).")
    if config["MAIL_USE_TLS"] and config["MAIL_USE_SSL"]:
        raise ConfigError("MAIL_USE_TLS and MAIL_USE_SSL cannot both be true.")
    _check_single_sign_on(config)
    config["MAX_CONTENT_LENGTH"] = config["MAX_UPLOAD_MB"] * 1024 * 1024
    if not config["SECRET_KEY"]:
        config["SECRET_KEY"] = instance_secret(config["INSTANCE_DIR"], "secret_key")
    config["SECRETS_KEYS"] = _fernet_keys(config["SECRETS_KEY"], config["INSTANCE_DIR"])
    return config


def database_reached(upgrade: Callable[[], int]) -> int:
    """Run ``upgrade`` (the database's first use at start-up); a database server that cannot be
    reached stops start-up here, with a message naming DATABASE_URL.

    Raises:
        ConfigError: the server of DATABASE_URL cannot be reached.
    """
    from entity.store import StoreUnreachable

    try:
        return upgrade()
    except StoreUnreachable as exc:
        raise ConfigError(f"DATABASE_URL={exc}; check the address, the credentials and that "
                          "the database server is running.") from None


def _check_single_sign_on(config: dict[str, Any]) -> None:
    """Single sign-on is on when OIDC_CLIENT_ID is set; it then needs where the provider is.
    ``OIDC_DISCOVERY`` is the discovery document's URL (None when sign-on is off)."""
    config["OIDC_DISCOVERY"] = None
    if not config["OIDC_CLIENT_ID"]:
        return
    discovery = config["OIDC_DISCOVERY_URL"] or (
        config["OIDC_ISSUER"].rstrip("/") + "/.well-known/openid-configuration"
        if config["OIDC_ISSUER"] else None)
    if not discovery:
        raise ConfigError("OIDC_CLIENT_ID needs OIDC_ISSUER (or OIDC_DISCOVERY_URL): where the "
                          "provider is.")
    if not discovery.startswith(("https://", "http://")):
        raise ConfigError("OIDC_ISSUER and OIDC_DISCOVERY_URL must be http(s):// addresses.")
    if config["OIDC_TEAM_MAPPING"] and not config["OIDC_GROUPS_CLAIM"]:
        raise ConfigError("OIDC_TEAM_MAPPING needs OIDC_GROUPS_CLAIM: the claim it reads.")
    config["OIDC_DISCOVERY"] = discovery


def _fernet_keys(value: str | None, instance_dir: str) -> list[str]:
    from cryptography.fernet import Fernet

    if not value:
        return [instance_secret(instance_dir, "secrets_key",
                                generate=lambda: Fernet.generate_key().decode())]
    keys = [k.strip() for k in value.split(",") if k.strip()]
    for key in keys:
        try:
            Fernet(key.encode())
        except ValueError:
            raise ConfigError("SECRETS_KEY must be Fernet keys (32 url-safe base64-encoded "
                              "bytes), comma-separated; make one with `python -m app "
                              "generate-key`.") from None
    return keys


def instance_secret(instance_dir: str, name: str,
                    generate: Callable[[], str] = lambda: secrets.token_urlsafe(48)) -> str:
    """Read the secret ``name`` from the instance folder, generating it (mode 0600) if absent."""
    folder = Path(instance_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    if not path.exists():
        value = generate()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value)
        return value
    return path.read_text().strip()
