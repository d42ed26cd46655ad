"""Shared fixtures: an app on a temporary data folder, its test client, an auth helper, a real
HTTP server (for Socket.IO and browser tests) and a real SMTP server."""

from __future__ import annotations

import io
import socket
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app import create_app
from tests.waiting import wait_until  # noqa: F401 - tests import it from here too

ADMIN = {"email": "admin@example.com", "name": "Ada Admin", "password": "correct horse battery"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: fixtures that start what ``make test-fast`` leaves out, and the marker each gives the tests
#: that use it (directly or through another fixture): a new test lands in the right set
MARKER_OF_FIXTURE = {"moto_server": "emulator", "azurite_server": "emulator",
                     "gcs_server": "emulator", "browser_page": "browser", "redis_url": "slow",
                     "fuzz_app": "slow",  # schemathesis: examples against every operation
                     "crowded_storage": "slow",  # 1,105 objects written before the first test
                     # tests/databases.py: PostgreSQL and SecantusDB servers
                     "postgres_server": "database", "mongodb_server": "database",
                     "oidc_provider": "slow"}  # a real OpenID Connect provider process


def pytest_sessionfinish(session):
    """Stop the emulators and database servers this process started, after every session
    fixture's teardown (the emulator fixtures leave their servers running for the fixtures set
    up before them)."""
    from tests import databases
    from tests.emulators import stop_all

    stop_all()
    databases.stop_all()


def pytest_collection_modifyitems(items):
    for item in items:
        for name in MARKER_OF_FIXTURE.keys() & set(item.fixturenames):
            item.add_marker(MARKER_OF_FIXTURE[name])


@pytest.fixture
def app_config(tmp_path: Path) -> dict:
    """Settings of a test app: everything under tmp_path, fast heartbeats."""
    return {
        "TESTING": True,
        "DATA_DIR": str(tmp_path / "data"),
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "HEARTBEAT_SECONDS": 1,
        "STALE_AFTER_SECONDS": 30,
        "MAX_CONCURRENT_EXECUTIONS": 2,
        "PUBLIC_URL": "http://trainyard.test",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def app(app_config):
    application = create_app(app_config)
    yield application
    application.extensions["trainyard"].runner.shutdown()
    application.extensions["housekeeping"].shutdown()
    application.extensions["monitoring"].shutdown()
    application.extensions["scheduler"].shutdown()
    application.extensions["trainyard"].db.close()


@pytest.fixture
def client(app):
    return app.test_client()


class Auth:
    """Sets up the first admin and logs in through the real pages (with their CSRF tokens)."""

    def __init__(self, client):
        self.client = client

    def csrf(self, path: str = "/login") -> str:
        import re

        html = self.client.get(path).get_data(as_text=True)
        match = re.search(r'name="csrf-token" content="([^"]+)"', html)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def setup_admin(self, **overrides):
        data = {**ADMIN, "confirm": ADMIN["password"], **overrides}
        data["csrf_token"] = self.csrf("/setup")
        return self.client.post("/setup", data=data)

    def login(self, email=ADMIN["email"], password=ADMIN["password"]):
        return self.client.post("/login", data={"email": email, "password": password,
                                                "csrf_token": self.csrf("/login")})

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.csrf("/")})


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def admin_client(client, auth):
    """A test client logged in as the first admin; ``client.csrf_token`` is set for posts."""
    assert auth.setup_admin().status_code == 302
    client.csrf_token = auth.csrf("/")
    return client


def multipart_files(*items: tuple[str, bytes]) -> dict:
    return {"files": [(io.BytesIO(data), name) for name, data in items]}


class LiveServer:
    """The app served by a real threaded WSGI server on a free port of 127.0.0.1."""

    def __init__(self, app):
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._thread.join(timeout=10)


@pytest.fixture
def live_server(app):
    server = LiveServer(app).start()
    yield server
    server.stop()


class RecordingHandler:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self):
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        from email import message_from_bytes

        message = message_from_bytes(envelope.content)
        subject = " ".join(str(message["Subject"]).split())  # unfold long headers
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "subject": subject, "message": message})
        return "250 OK"


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on a free port; ``.messages`` holds what arrived."""
    from aiosmtpd.controller import Controller

    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    yield handler
    controller.stop()


class OidcProvider:
    """A real OpenID Connect provider (oidc-provider-mock) in its own process on a free port of
    127.0.0.1: ``issuer`` is its address; :meth:`set_user` chooses the claims of a subject;
    :meth:`authorize` plays the person at its authorization form."""

    def __init__(self, port: int, process):
        self.port = port
        self.process = process
        self.issuer = f"http://127.0.0.1:{port}"

    def set_user(self, sub: str, **claims) -> None:
        import requests

        answer = requests.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10)
        assert answer.status_code == 204, answer.text

    def authorize(self, authorize_url: str, sub: str | None, *, deny: bool = False) -> str:
        """Post the provider's form for ``authorize_url`` (as ``sub``, or denying); answers
        the path and query of Trainyard's callback the provider redirects to."""
        from urllib.parse import urlsplit

        import requests

        form = {"action": "deny"} if deny else {"sub": sub}
        answer = requests.post(authorize_url, data=form, allow_redirects=False, timeout=10)
        assert answer.status_code == 302, answer.text[:500]
        location = urlsplit(answer.headers["Location"])
        return f"{location.path}?{location.query}"


@pytest.fixture
def oidc_provider(tmp_path):
    """A real OIDC provider process, stopped by its PID afterwards."""
    import subprocess
    import sys

    import requests

    port = free_port()
    log = open(tmp_path / "oidc-provider.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "oidc_provider_mock", "--host",
                                "127.0.0.1", "--port", str(port)], stdout=log,
                               stderr=subprocess.STDOUT)
    provider = OidcProvider(port, process)

    def answers():
        assert process.poll() is None, (tmp_path / "oidc-provider.log").read_text()
        try:
            return requests.get(f"{provider.issuer}/.well-known/openid-configuration",
                                timeout=2).status_code == 200
        except requests.ConnectionError:
            return False
    try:
        wait_until(answers, timeout=30, interval=0.1, message="the OIDC provider to start")
        yield provider
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


class ApiClient:
    """JSON calls through a logged-in test client (sends the CSRF header)."""

    def __init__(self, client):
        self.client = client

    def _headers(self):
        return {"X-CSRFToken": self.client.csrf_token}

    def get(self, path, **kwargs):
        return self.client.get("/api/v1" + path, **kwargs)

    def post(self, path, **kwargs):
        return self.client.post("/api/v1" + path, headers=self._headers(), **kwargs)

    def patch(self, path, **kwargs):
        return self.client.patch("/api/v1" + path, headers=self._headers(), **kwargs)

    def delete(self, path, **kwargs):
        return self.client.delete("/api/v1" + path, headers=self._headers(), **kwargs)

    def create_project(self, definition: dict) -> dict:
        response = self.post("/projects", json=definition)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def upload(self, project_id: str, folder: str, files: list[tuple[str, bytes]]):
        return self.post(f"/projects/{project_id}/files?path={folder}",
                         data=multipart_files(*files), content_type="multipart/form-data")

    def start(self, project_id: str, kind: str, **extra):
        return self.post(f"/projects/{project_id}/executions", json={"kind": kind, **extra})

    def execution(self, project_id: str, execution_id: str) -> dict:
        return self.get(f"/projects/{project_id}/executions/{execution_id}").get_json()

    def wait_final(self, project_id: str, execution_id: str, timeout: float = 180) -> dict:
        def final():
            body = self.execution(project_id, execution_id)
            return body if body["status"] not in ("queued", "running") else None
        return wait_until(final, timeout=timeout, interval=0.2, message="the execution to end")


@pytest.fixture
def api(admin_client):
    return ApiClient(admin_client)
