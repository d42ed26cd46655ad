"""The application factory (app/__init__.py): ``create_app(config)`` builds everything from the
settings, binds the extensions created unbound in app/extensions.py, and registers the
blueprints, the error handlers and the template filters."""

from __future__ import annotations

import pytest
from flask import Flask

from app import create_app, param_lines
from app.config import ConfigError
from app.extensions import csrf, login_manager, mail, socketio


@pytest.fixture
def built(app_config):
    """An app whose runner threads are not started."""
    application = create_app(app_config, start_runner=False)
    yield application
    application.extensions["trainyard"].db.close()


def test_the_factory_builds_the_services_from_the_settings(built, app_config):
    services = built.extensions["trainyard"]
    assert isinstance(built, Flask) and built.testing
    assert built.config["DATA_DIR"] == app_config["DATA_DIR"]
    assert built.config["DATABASE_URL"].endswith("/data/trainyard.db")
    for name in ("db", "resolver", "notifier", "runner", "box", "model_server"):
        assert getattr(services, name) is not None, name
    assert built.config["SESSION_COOKIE_HTTPONLY"] and \
        built.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_every_area_has_its_blueprint(built):
    assert {"auth", "pages", "admin", "api", "health"} <= set(built.blueprints)
    assert built.url_map.bind("t").match("/healthz")[0] == "health.healthz"


def test_the_extensions_are_bound_to_each_app(built, app_config, tmp_path):
    assert built.login_manager is login_manager
    assert {"mail", "socketio", "csrf"} <= set(built.extensions)
    assert built.extensions["socketio"].server is socketio.server
    assert mail.state is None  # bound per app through init_app, never to one app for good
    assert built.extensions["csrf"] is csrf
    other = create_app({**app_config, "DATA_DIR": str(tmp_path / "other")}, start_runner=False)
    try:  # one process, two apps (the tests do this all the time): each has its own services
        assert other.extensions["trainyard"].db is not built.extensions["trainyard"].db
        assert other.test_client().get("/healthz").status_code == 200
        assert built.test_client().get("/healthz").status_code == 200
    finally:
        other.extensions["trainyard"].db.close()


def test_a_bad_setting_stops_the_factory(app_config):
    with pytest.raises(ConfigError, match="MAIL_USE_TLS and MAIL_USE_SSL"):
        create_app({**app_config, "MAIL_USE_TLS": True, "MAIL_USE_SSL": True})


def test_a_database_server_that_cannot_be_reached_stops_the_factory_naming_the_variable(
        app_config, capsys, monkeypatch, tmp_path):
    from app.__main__ import main
    from tests.conftest import free_port

    url = f"postgresql://trainyard:s3cret-pw@127.0.0.1:{free_port()}/trainyard"  # no server
    with pytest.raises(ConfigError) as refused:
        create_app({**app_config, "DATABASE_URL": url}, start_runner=False)
    message = str(refused.value)
    assert message.startswith("DATABASE_URL=postgresql://trainyard:***@127.0.0.1:")
    assert "cannot be reached" in message and "s3cret-pw" not in message
    monkeypatch.chdir(tmp_path)  # the server command says the same, in one line
    for name in ("DATA_DIR", "INSTANCE_DIR"):
        monkeypatch.setenv(name, app_config[name])
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["run"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("Trainyard cannot start: DATABASE_URL=postgresql://trainyard:***@")
    assert "s3cret-pw" not in error and len(error.strip().splitlines()) == 1


def test_without_start_runner_no_execution_thread_runs(built):
    import threading

    names = {thread.name for thread in threading.enumerate()}
    assert not any(name.startswith("trainyard-runner") for name in names)


def test_the_number_filter_shows_counts_whole_and_scores_with_four_decimals(built):
    number = built.jinja_env.filters["number"]
    assert [number(v) for v in (1234567, 3.0, 0.912345, True, "?")] == [
        "1,234,567", "3", "0.9123", "True", "?"]


def test_an_ensembles_parameters_read_as_dotted_lines():
    params = {"voting": "soft", "empty": {},
              "members": {"RandomForestClassifier": {"n_estimators": 300},
                          "LogisticRegression": {"C": 1.0, "penalty": "l2"}}}
    assert param_lines(params) == [
        "voting = soft", "empty = {}", "members.RandomForestClassifier.n_estimators = 300",
        "members.LogisticRegression.C = 1.0", "members.LogisticRegression.penalty = l2"]
