"""The WSGI entry: ``python -m app`` serves the app that ``create_app()`` builds inside
gunicorn's worker, with one process of many threads and a keep-alive longer than a client's
polling interval, after settling the heap."""

from __future__ import annotations

import gc

import pytest
from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker
from werkzeug.test import EnvironBuilder

from app import URI_LIMIT
from app import __main__ as cli


@pytest.fixture
def gunicorn_server(tmp_path, monkeypatch):
    """The gunicorn application ``_serve_with_gunicorn`` runs, caught instead of run."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INSTANCE_DIR", str(tmp_path / "instance"))
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    caught = []
    monkeypatch.setattr(BaseApplication, "run", lambda self: caught.append(self))
    cli._serve_with_gunicorn("127.0.0.1", 5125, 12)
    return caught[0]


def test_gunicorn_runs_one_process_of_threads_with_a_long_keep_alive(gunicorn_server):
    cfg = gunicorn_server.cfg
    assert cfg.bind == ["127.0.0.1:5125"] and cfg.workers == 1 and cfg.threads == 12
    assert issubclass(cfg.worker_class, ThreadWorker)  # gthread, with JSON request errors
    assert cfg.limit_request_line == cli.GUNICORN_REQUEST_LINE > URI_LIMIT  # the app's 414
    assert cfg.keepalive == cli.KEEPALIVE_SECONDS > 2  # gunicorn's default is 2 s


def test_the_worker_loads_the_app_and_settles_the_heap_after(gunicorn_server, monkeypatch):
    settled = []
    monkeypatch.setattr(cli, "settle_heap", lambda: settled.append(True))
    app = gunicorn_server.load()
    try:
        assert isinstance(app, Flask) and settled == [True]
        answers = []
        environ = EnvironBuilder(path="/healthz").get_environ()
        body = b"".join(app(environ, lambda status, headers: answers.append(status)))
        assert answers == ["200 OK"] and body
    finally:
        app.extensions["trainyard"].runner.shutdown()
        app.extensions["trainyard"].db.close()


def test_settling_the_heap_freezes_what_lives_now():
    before = gc.get_freeze_count()
    try:
        cli.settle_heap()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()  # back to the collector: this is a test process, not a server
