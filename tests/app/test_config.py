"""Settings (app/config.py): every one is read from the environment through a typed parser, has a
documented default listed in ``.env.example``, and a bad value stops start-up with a message
naming the variable; secrets that are not given are generated once into the instance folder."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.config import SETTINGS, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def environ(tmp_path) -> dict:
    """An environment with nothing set but the folders (in the test's tmp_path)."""
    return {"DATA_DIR": str(tmp_path / "data"), "INSTANCE_DIR": str(tmp_path / "instance")}


def env_example_lines() -> str:
    """What ``.env.example`` must hold: each setting's description, then its commented default."""
    lines = []
    for name, (_parse, default, doc) in SETTINGS.items():
        lines += [f"# {doc}", f"# {name}={'' if default is None else default}"]
    return "\n".join(lines) + "\n"


def test_env_example_lists_every_setting_with_its_default_and_description():
    assert env_example_lines() in (ROOT / ".env.example").read_text()


def test_defaults_and_the_settings_derived_from_them(environ, tmp_path):
    config = load_config(environ)
    data = (tmp_path / "data").resolve()
    assert config["TRAINYARD_HOST"] == "127.0.0.1" and config["TRAINYARD_PORT"] == 5000
    assert config["DATA_DIR"] == str(data)
    assert config["DATABASE_URL"] == f"sqlite:///{data / 'trainyard.db'}"
    assert config["STORAGE_URI"] == (data / "storage").as_uri()
    assert config["PUBLIC_URL"] == "http://127.0.0.1:5000"
    assert config["MAX_CONTENT_LENGTH"] == 1024 * 1024 * 1024
    assert config["MAIL_USE_TLS"] is False and config["MAIL_SERVER"] is None
    assert config["LOG_LEVEL"] == "INFO"


def test_values_are_parsed_to_their_types(environ):
    config = load_config({**environ, "TRAINYARD_PORT": "8080", "MAIL_USE_TLS": "yes",
                          "SESSION_COOKIE_SECURE": "on", "MAX_UPLOAD_MB": "2",
                          "LOG_LEVEL": "DEBUG", "PUBLIC_URL": "https://ty.example.com/",
                          "DATABASE_URL": "mongodb://db/trainyard"})
    assert config["TRAINYARD_PORT"] == 8080 and config["MAIL_USE_TLS"] is True
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["MAX_CONTENT_LENGTH"] == 2 * 1024 * 1024
    assert config["LOG_LEVEL"] == "DEBUG"
    assert config["PUBLIC_URL"] == "https://ty.example.com"  # no trailing slash in links
    assert config["DATABASE_URL"] == "mongodb://db/trainyard"


def test_an_empty_value_means_the_default(environ):
    assert load_config({**environ, "TRAINYARD_PORT": "", "MAIL_USE_TLS": ""})[
        "TRAINYARD_PORT"] == 5000


def test_overrides_win_over_the_environment_and_extra_flask_settings_pass_through(environ):
    config = load_config({**environ, "TRAINYARD_PORT": "8080"},
                         overrides={"TRAINYARD_PORT": 9000, "TESTING": True})
    assert config["TRAINYARD_PORT"] == 9000 and config["TESTING"] is True


def test_a_server_listening_everywhere_links_with_the_host_name(environ, monkeypatch):
    monkeypatch.setattr("app.config.socket.gethostname", lambda: "trainyard-box")
    config = load_config({**environ, "TRAINYARD_HOST": "0.0.0.0", "TRAINYARD_PORT": "80"})
    assert config["PUBLIC_URL"] == "http://trainyard-box:80"


@pytest.mark.parametrize("name, value, words", [
    ("TRAINYARD_PORT", "http", "must be a whole number"),
    ("TRAINYARD_PORT", "0", "must be at least 1"),
    ("TRAINYARD_PORT", "70000", "must be at most 65535"),
    ("MAIL_USE_SSL", "maybe", "must be true or false"),
    ("LOG_LEVEL", "LOUD", "must be one of DEBUG, INFO, WARNING, ERROR"),
    ("USAGE_FLUSH_SECONDS", "soon", "must be a whole number"),
])
def test_a_bad_value_is_refused_naming_the_variable(environ, name, value, words):
    with pytest.raises(ConfigError) as refused:
        load_config({**environ, name: value})
    assert str(refused.value) == f"{name}={value!r} {words}."


@pytest.mark.parametrize("extra, words", [
    ({"CELERY_BROKER_URL": "redis://x/0"}, "CELERY_BROKER_URL needs SOCKETIO_MESSAGE_QUEUE"),
    ({"MAIL_USE_TLS": "1", "MAIL_USE_SSL": "1"}, "MAIL_USE_TLS and MAIL_USE_SSL cannot both"),
    ({"SECRETS_KEY": "not-a-fernet-key"}, "SECRETS_KEY must be Fernet keys"),
])
def test_settings_that_cannot_go_together_are_refused(environ, extra, words):
    with pytest.raises(ConfigError, match=words):
        load_config({**environ, **extra})


def test_missing_secrets_are_generated_once_into_the_instance_folder(environ, tmp_path):
    first = load_config(environ)
    instance = tmp_path / "instance"
    for name in ("secret_key", "secrets_key"):
        assert stat.S_IMODE((instance / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    Fernet(first["SECRETS_KEYS"][0].encode())  # a usable key
    again = load_config(environ)
    assert (again["SECRET_KEY"], again["SECRETS_KEYS"]) == (first["SECRET_KEY"],
                                                            first["SECRETS_KEYS"])


def test_given_secrets_are_used_and_the_first_fernet_key_encrypts(environ, tmp_path):
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    config = load_config({**environ, "SECRET_KEY": "s3cret", "SECRETS_KEY": f"{new}, {old},"})
    assert config["SECRET_KEY"] == "s3cret" and config["SECRETS_KEYS"] == [new, old]
    assert not (tmp_path / "instance" / "secret_key").exists()
