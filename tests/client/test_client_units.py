"""The client's parts that need no server: settings file, streamed multipart body, error
bodies, SSE parsing, in-order delivery of log lines, the progress bar, CLI exit codes."""

from __future__ import annotations

import io
import json
import stat

import pytest
import requests
from werkzeug.formparser import parse_form_data

from trainyard_client import ApiError, Client, TrainyardError
from trainyard_client.cli import Bar, format_line, main
from trainyard_client.config import config_path, save_config, settings
from trainyard_client.errors import NotLoggedIn
from trainyard_client.live import Follower, parse_sse
from trainyard_client.multipart import MultipartFiles


@pytest.fixture
def config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TRAINYARD_URL", raising=False)
    monkeypatch.delenv("TRAINYARD_TOKEN", raising=False)
    return tmp_path / "xdg"


def test_settings_file_is_private_and_the_environment_overrides_it(config_home, monkeypatch):
    assert config_path() == config_home / "trainyard" / "config.json"
    with pytest.raises(NotLoggedIn):
        settings()
    path = save_config("http://saved:5000", "ty_saved")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings() == ("http://saved:5000", "ty_saved")
    monkeypatch.setenv("TRAINYARD_TOKEN", "ty_env")
    assert settings() == ("http://saved:5000", "ty_env")
    monkeypatch.setenv("TRAINYARD_URL", "http://env:1")
    assert settings() == ("http://env:1", "ty_env")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(config_home.parent / "home"))
    assert config_path() == config_home.parent / "home" / ".config" / "trainyard" / \
        "config.json"


def test_cli_login_without_check_saves_and_usage_errors_exit_2(config_home, capsys):
    assert main(["login", "--url", "http://example.test:5000/api/v1/", "--token", "ty_x",
                 "--no-check"]) == 0
    saved = json.loads((config_home / "trainyard" / "config.json").read_text())
    assert saved == {"url": "http://example.test:5000", "token": "ty_x"}
    assert main(["train"]) == 2  # argparse: PROJECT missing
    assert main(["frobnicate"]) == 2
    capsys.readouterr()
    assert main(["login", "--url", "ftp://x", "--token", "t", "--no-check"]) == 1
    assert capsys.readouterr().err.startswith("trainyard: the server address must start")


def test_multipart_body_streams_files_and_parses_as_a_form(tmp_path):
    first, second = tmp_path / "a_20260101_120000.csv", tmp_path / 'we"ird.csv'
    first.write_bytes(b"x,y\n" + b"1,2\n" * 50_000)
    second.write_bytes(b"x,y\n3,4\n")
    seen = []
    body = MultipartFiles([first, second], progress=lambda done, total: seen.append(
        (done, total)), block_size=4096)
    blocks = list(body)
    assert max(len(b) for b in blocks) <= 4096 and len(blocks) > 40  # streamed in blocks
    data = b"".join(blocks)
    assert len(data) == len(body) == seen[-1][0] == seen[-1][1]
    _, form, files = parse_form_data({
        "wsgi.input": io.BytesIO(data), "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": body.content_type, "CONTENT_LENGTH": str(len(data))})
    uploaded = files.getlist("files")
    assert [f.filename for f in uploaded] == [first.name, second.name]
    assert uploaded[0].read() == first.read_bytes()
    assert uploaded[1].read() == second.read_bytes()


def _response(status: int, body: bytes, content_type: str = "application/json"):
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = content_type
    response.reason = "Conflict" if status == 409 else "Bad Gateway"
    return response


def test_api_errors_come_from_the_error_body():
    error = ApiError.from_response(_response(409, json.dumps({"error": {
        "code": "execution_in_progress", "message": "A train execution is in progress.",
        "details": {"execution_id": "e1"}}}).encode()))
    assert (error.status, error.code, str(error), error.details) == (
        409, "execution_in_progress", "A train execution is in progress.",
        {"execution_id": "e1"})
    plain = ApiError.from_response(_response(502, b"<html>proxy  down</html>", "text/html"))
    assert plain.code == "http_502" and str(plain) == "HTTP 502 Bad Gateway: <html>proxy " \
                                                      "down</html>"
    with pytest.raises(TrainyardError):
        Client("example.test")


def test_server_sent_events_are_parsed_across_chunk_boundaries():
    stream = [b"id: 1\nevent: log\nda", b"ta: {\"seq\": 1}\n\n: comment\n",
              b"event: execution\r\ndata: {\"status\": \"failed\"}\r\n\r\n"]
    assert list(parse_sse(iter(stream))) == [("log", '{"seq": 1}'),
                                             ("execution", '{"status": "failed"}')]


class _FakeExecutions:
    def __init__(self, lines):
        self.lines = lines

    def iter_logs(self, project, execution, after_seq=0):
        return [line for line in self.lines if line["seq"] > after_seq]


def test_follower_delivers_lines_once_and_in_order():
    lines = [{"execution_id": "e", "seq": n, "message": f"m{n}"} for n in range(1, 7)]
    client = type("C", (), {"executions": _FakeExecutions(lines)})()
    got, states = [], []
    follower = Follower(client, "p", "e", got.append, states.append)
    for n in (1, 3, 2, 2, 5):  # out of order, repeated, with a gap at 4
        follower.line(lines[n - 1])
    follower.line({"execution_id": "other", "seq": 4, "message": "not ours"})
    assert [line["seq"] for line in got] == [1, 2, 3]
    follower.state({"status": "running", "stage": "training", "progress": 40})
    follower.state({"status": "running", "stage": "training", "progress": 40})
    final = follower.finish({"status": "succeeded", "stage": "done", "progress": 100})
    assert [line["seq"] for line in got] == [1, 2, 3, 4, 5, 6]
    assert [s["progress"] for s in states] == [40, 100] and final["status"] == "succeeded"


def test_progress_bar_draws_on_a_terminal_only():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    Bar(tty).show(0.5, "running: training")
    Bar(pipe).show(0.5, "running: training")
    assert "[###############...............]  50% running: training" in tty.getvalue()
    assert pipe.getvalue() == ""
    line = {"time": "2026-01-01T12:34:56.789+00:00", "level": "INFO", "stage": "training",
            "message": "Fitting."}
    assert format_line(line) == "12:34:56 INFO    training      Fitting."
