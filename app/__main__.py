"""Run Trainyard: ``python -m app`` (what ``make run`` does).

Serves with gunicorn (one process, many threads: the embedded runner, SQLite and Socket.IO live
in that process) on ``TRAINYARD_HOST:TRAINYARD_PORT``. ``python -m app --dev`` uses Werkzeug's
development server instead.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from dotenv import load_dotenv


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m app`` (the deployment files' commands are checked
    against it)."""
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", default="run",
                        choices=["run", "worker", "generate-key", "rotate-secrets"],
                        help="run the server (default); run a Celery worker (with "
                             "CELERY_BROKER_URL); print a new SECRETS_KEY; re-encrypt stored "
                             "credentials with the first SECRETS_KEY")
    parser.add_argument("--dev", action="store_true", help="use the development server")
    parser.add_argument("--queues", default=None, metavar="NAMES",
                        help="worker: the execution queues it takes work from, comma-separated "
                             "(train, predict, monitor; default: WORKER_QUEUES, or all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    load_dotenv(Path.cwd() / ".env")
    if args.command == "generate-key":
        from integration.credentials import SecretBox

        print(SecretBox.generate_key())
        return 0
    if args.command == "rotate-secrets":
        return _rotate_secrets()
    if args.command == "worker":
        return _run_worker(args.queues)

    from app.config import ConfigError, load_config
    from entity.migrations import SchemaVersionError

    try:
        settings = load_config()
        _upgrade_database(settings["DATABASE_URL"])
    except (ConfigError, SchemaVersionError) as exc:
        print(f"Trainyard cannot start: {exc}", file=sys.stderr)
        return 2
    host, port = settings["TRAINYARD_HOST"], settings["TRAINYARD_PORT"]
    print(f"Trainyard on http://{host}:{port}  (data in {settings['DATA_DIR']})", flush=True)
    if args.dev:
        from app import create_app
        from app.extensions import socketio

        socketio.run(create_app(), host=host, port=port, allow_unsafe_werkzeug=True)
        return 0
    _serve_with_gunicorn(host, port, settings["TRAINYARD_THREADS"])
    return 0


def _upgrade_database(url: str) -> None:
    """Migrate the database before serving, so that a database too new for this code stops
    start-up here with one line rather than in the server's worker with a traceback."""
    from app.config import database_reached
    from entity.database import Database

    database = Database.from_url(url)
    try:
        database_reached(database.upgrade)
    finally:
        database.close()


def _run_worker(queues: str | None) -> int:
    """A Celery worker running the executions of ``queues`` queued by the web processes."""
    from app import create_app
    from app.config import ConfigError
    from thread_layer.celery_queue import parse_queues, run_worker

    try:
        chosen = parse_queues(queues) if queues is not None else None
        app = create_app(start_runner=False)
    except ValueError as exc:
        print(f"Trainyard cannot start a worker: --queues={queues!r}: {exc}.", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"Trainyard cannot start a worker: {exc}", file=sys.stderr)
        return 2
    if not app.config["CELERY_BROKER_URL"]:
        print("Trainyard cannot start a worker: set CELERY_BROKER_URL (and "
              "SOCKETIO_MESSAGE_QUEUE) to the broker the web processes use.", file=sys.stderr)
        return 2
    run_worker(app, app.config["MAX_CONCURRENT_EXECUTIONS"],
               chosen or app.config["WORKER_QUEUES"] or parse_queues(None),
               app.config["WORKER_STOP_GRACE_SECONDS"])
    return 0


def _rotate_secrets() -> int:
    """Re-encrypt every stored credential with the first key of SECRETS_KEY."""
    from app import create_app
    from services.context import Context
    from services.storage_connections import rotate_secrets

    app = create_app(start_runner=False)
    count = rotate_secrets(Context(app.extensions["trainyard"]))
    print(f"Re-encrypted the credentials of {count} storage connections with the first key "
          "of SECRETS_KEY; the older keys can now be removed from it.")
    return 0


def settle_heap() -> None:
    """Collect once, then move every object alive now (modules, the app, loaded libraries:
    about 170,000 objects) out of the garbage collector's view.

    They live as long as the process, yet each full collection walks them all: 70 ms during
    which no request thread runs, which is what the slowest real-time predictions waited for.
    Frozen objects are still freed by reference counting; only a reference cycle among them
    would never be collected.
    """
    gc.collect()
    gc.freeze()


#: how long an idle kept-alive HTTP connection stays open
KEEPALIVE_SECONDS = 30
#: the longest request line gunicorn reads (its maximum; above app.URI_LIMIT)
GUNICORN_REQUEST_LINE = 8190


def _serve_with_gunicorn(host: str, port: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", 1)
            # gthread, answering the requests gunicorn cannot parse in the API's JSON error shape
            self.cfg.set("worker_class", "app.gunicorn_worker.JsonErrorWorker")
            # gunicorn's largest: the app answers request lines over app.URI_LIMIT itself (as a
            # page or as JSON, by the path), gunicorn only those too long to read
            self.cfg.set("limit_request_line", GUNICORN_REQUEST_LINE)
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", 120)
            # gunicorn's default keep-alive is 2 s: a client polling every 2 s (the CLI following
            # an execution, a dashboard) then races the server's close of the idle connection and
            # sometimes gets "connection closed without response". Idle connections cost a
            # poller entry, not a thread.
            self.cfg.set("keepalive", KEEPALIVE_SECONDS)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("control_socket_disable", True)
            self.cfg.set("accesslog", None)

        def load(self):
            # Built inside the worker process, so the runner's threads live there.
            from app import create_app

            app = create_app()
            settle_heap()
            return app

    Server().run()


if __name__ == "__main__":
    sys.exit(main())
