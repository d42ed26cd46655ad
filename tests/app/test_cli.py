"""The commands of ``python -m app`` (app/__main__.py): run (refusing a bad setting by name),
worker, generate-key and rotate-secrets' key handling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app import __main__ as cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def environment(tmp_path, monkeypatch):
    """Settings from the environment only: folders in tmp_path, no ``.env`` in the way."""
    for name in ("DATABASE_URL", "STORAGE_URI", "SECRET_KEY", "SECRETS_KEY", "CELERY_BROKER_URL",
                 "SOCKETIO_MESSAGE_QUEUE", "MAIL_SERVER", "TRAINYARD_PORT", "PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INSTANCE_DIR", str(tmp_path / "instance"))
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)  # main() reads ./.env
    return tmp_path


def test_generate_key_prints_a_fernet_key(environment, capsys):
    assert cli.main(["generate-key"]) == 0
    Fernet(capsys.readouterr().out.strip().encode())


def test_run_refuses_a_bad_setting_by_name(environment, monkeypatch, capsys):
    monkeypatch.setenv("USAGE_FLUSH_SECONDS", "soon")
    monkeypatch.setattr(cli, "_serve_with_gunicorn", lambda *a: pytest.fail("it served"))
    assert cli.main([]) == 2
    assert capsys.readouterr().err == ("Trainyard cannot start: USAGE_FLUSH_SECONDS='soon' must "
                                       "be a whole number.\n")


def test_run_serves_on_the_configured_address(environment, monkeypatch, capsys):
    served = []
    monkeypatch.setenv("TRAINYARD_PORT", "5123")
    monkeypatch.setenv("TRAINYARD_THREADS", "8")
    monkeypatch.setattr(cli, "_serve_with_gunicorn", lambda *args: served.append(args))
    assert cli.main(["run"]) == 0
    assert served == [("127.0.0.1", 5123, 8)]
    out = capsys.readouterr().out
    assert f"Trainyard on http://127.0.0.1:5123  (data in {environment / 'data'})" in out


def test_settings_in_dot_env_are_read(environment, monkeypatch):
    served = []
    (environment / ".env").write_text("TRAINYARD_PORT=5124\n")
    monkeypatch.setattr(cli, "_serve_with_gunicorn", lambda *args: served.append(args))
    try:
        assert cli.main([]) == 0
    finally:
        os.environ.pop("TRAINYARD_PORT", None)  # load_dotenv set it in this process
    assert served[0][1] == 5124


def test_rotate_secrets_re_encrypts_with_the_new_key(environment, monkeypatch, capsys):
    """`python -m app rotate-secrets` with SECRETS_KEY="new,old" re-encrypts every credential
    so that the old key can be dropped."""
    from app import create_app
    from entity.storage_connection import StorageConnection

    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app = create_app({"SECRETS_KEY": old}, start_runner=False)
    services = app.extensions["trainyard"]
    with app.app_context():
        services.db.storage_connections.add(StorageConnection(
            name="Lake", kind="s3", settings={"bucket": "b"},
            secrets=services.box.encrypt({"secret_access_key": secret})))
    services.db.close()
    monkeypatch.setenv("SECRETS_KEY", f"{new},{old}")
    assert cli.main(["rotate-secrets"]) == 0
    assert "1 storage connections" in capsys.readouterr().out
    app_new = create_app({"SECRETS_KEY": new}, start_runner=False)
    box = app_new.extensions["trainyard"].box
    with app_new.app_context():
        connection = app_new.extensions["trainyard"].db.storage_connections.list()[0]
    assert box.decrypt(connection.secrets) == {"secret_access_key": secret}


def test_a_worker_needs_a_broker(environment, capsys):
    assert cli.main(["worker"]) == 2
    assert "set CELERY_BROKER_URL" in capsys.readouterr().err


def test_an_unknown_command_is_refused(environment, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["dance"])
    assert stopped.value.code == 2 and "invalid choice: 'dance'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_real_command_refuses_a_bad_setting_by_name(tmp_path):
    env = {**os.environ, "DATA_DIR": str(tmp_path), "USAGE_FLUSH_SECONDS": "soon"}
    refused = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=env, timeout=60,
                             capture_output=True, text=True)
    assert refused.returncode == 2
    assert "USAGE_FLUSH_SECONDS='soon'" in refused.stderr and "whole number" in refused.stderr
