"""Request bodies read straight from the socket (``controllers/spliced_body.py``) on gunicorn's own
parser, over a real TCP connection: spliced into a file or read into buffers, the bytes arrive
whole, a pipelined next request is still read after the body, an interrupted body fails, and
requests that cannot be spliced keep the plain stream."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.body import Body
from gunicorn.http.parser import RequestParser
from werkzeug.exceptions import ClientDisconnected

from cloud_storage.base import read_fully
from controllers.spliced_body import BODY, SplicedBody, spliceable


@pytest.fixture
def connection():
    """(server side, client side) of a TCP connection on 127.0.0.1. The server side has a
    timeout (a wrong byte count then fails the test instead of hanging it), which also takes
    splicing through its wait-for-data path; the real server's blocking socket is covered by
    tests/e2e/test_server.py."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    server.settimeout(10)
    with server, client:
        yield server, client


def parse(server: socket.socket):
    """gunicorn's parser and the WSGI environ of the next request on ``server``."""
    cfg = Config()
    parser = RequestParser(cfg, server, server.getpeername())
    request = next(parser)
    _, environ = wsgi.create(request, server, server.getpeername(), server.getsockname(), cfg)
    return parser, environ


def send_in_background(client: socket.socket, data: bytes, *, close: bool = False):
    def send():
        client.sendall(data)
        if close:
            client.shutdown(socket.SHUT_WR)
    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def put_head(length: int) -> bytes:
    return (f"PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n").encode()


def test_a_large_body_lands_whole_and_the_next_request_follows(connection, tmp_path):
    server, client = connection
    body = os.urandom(3 * 1024 * 1024 + 17)
    pipelined = b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"
    sender = send_in_background(client, put_head(len(body)) + body + pipelined)
    parser, environ = parse(server)
    stream = spliceable(environ, environ["wsgi.input"])
    assert isinstance(stream, SplicedBody)
    head = stream.read(65536)  # what the upload route reads to check a batch file
    with open(tmp_path / "out", "wb") as out:
        moved = stream.drain_into(out.fileno())
    sender.join(timeout=30)
    assert len(head) + moved == len(body)
    data = head + (tmp_path / "out").read_bytes()
    assert hashlib.sha256(data).digest() == hashlib.sha256(body).digest()
    assert next(parser).path == "/next"


def test_bytes_of_the_next_request_already_read_stay_for_it(connection, tmp_path):
    # A small body arrives with the headers and the next request in one read: drain_into must
    # take only the body's bytes from gunicorn's read-ahead.
    server, client = connection
    body = b"x" * 1000
    client.sendall(put_head(len(body)) + body + b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
    parser, environ = parse(server)
    stream = spliceable(environ, environ["wsgi.input"])
    with open(tmp_path / "out", "wb") as out:
        assert stream.drain_into(out.fileno()) == len(body)
    assert (tmp_path / "out").read_bytes() == body
    assert next(parser).path == "/next"


def test_an_interrupted_body_fails_and_marks_the_connection_unusable(connection, tmp_path):
    server, client = connection
    sender = send_in_background(client, put_head(2 * 1024 * 1024) + os.urandom(300_000),
                                close=True)
    _, environ = parse(server)
    stream = spliceable(environ, environ["wsgi.input"])
    with open(tmp_path / "out", "wb") as out, pytest.raises(ClientDisconnected):
        stream.drain_into(out.fileno())
    sender.join(timeout=30)
    assert environ["wsgi.input"].failed


def test_a_body_read_into_buffers_arrives_whole_and_the_next_request_follows(connection):
    # How the cloud backends read an upload: the head through read(), then part after part
    # into their own buffers (readinto, as read_fully does), the last bytes through read().
    server, client = connection
    body = os.urandom(5 * 1024 * 1024 + 101)
    sender = send_in_background(client, put_head(len(body)) + body
                                + b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
    parser, environ = parse(server)
    stream = spliceable(environ, environ["wsgi.input"])
    pieces = [stream.read(65536)]
    while len(part := read_fully(stream, 2 * 1024 * 1024)) == 2 * 1024 * 1024:
        pieces.append(bytes(part))
        if sum(map(len, pieces)) > len(body) - 3 * 1024 * 1024:
            break
    pieces.append(stream.read(1000))
    pieces.append(stream.read())
    assert stream.read() == b"" and stream.readinto(bytearray(10)) == 0
    sender.join(timeout=30)
    assert hashlib.sha256(b"".join(pieces)).digest() == hashlib.sha256(body).digest()
    assert not environ["wsgi.input"].failed
    assert next(parser).path == "/next"


def test_a_body_cut_while_read_into_buffers_fails_and_marks_the_connection_unusable(connection):
    server, client = connection
    sender = send_in_background(client, put_head(2 * 1024 * 1024) + os.urandom(300_000),
                                close=True)
    _, environ = parse(server)
    stream = spliceable(environ, environ["wsgi.input"])
    with pytest.raises(ClientDisconnected):
        read_fully(stream, 1024 * 1024)
    sender.join(timeout=30)
    assert environ["wsgi.input"].failed


def test_a_chunked_body_or_another_server_keeps_the_plain_stream(connection):
    server, client = connection
    client.sendall(b"PUT /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n0\r\n\r\n")
    _, environ = parse(server)
    body = environ["wsgi.input"]
    assert spliceable(environ, body) is body
    environ_of_another_server = {"wsgi.input": body}  # no gunicorn.socket
    assert spliceable(environ_of_another_server, body) is body
    assert body.read() == b"abc"


@pytest.fixture
def body_adapter():
    """BODY probed afresh in the test (and again after it)."""
    BODY.forget()
    yield BODY
    BODY.forget()


def adapter_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "trainyard.adapters"]


def test_the_body_adapter_passes_on_the_pinned_gunicorn(body_adapter, caplog):
    with caplog.at_level(logging.INFO, logger="trainyard.adapters"):
        assert body_adapter.check()
    assert adapter_lines(caplog) == []


class OtherBuffer:
    """What an upgraded gunicorn might keep in ``Body.buf`` instead of a BytesIO: it still
    works for gunicorn, but it is not what the splice takes its read-ahead from."""

    def __init__(self, buffer):
        self._buffer = buffer

    def __getattr__(self, name):
        return getattr(self._buffer, name)


@pytest.mark.parametrize("change", ["another buffer", "no failed flag"])
def test_a_changed_gunicorn_body_keeps_gunicorns_stream_with_the_same_bytes(
        body_adapter, monkeypatch, caplog, connection, change):
    real_init = Body.__init__

    def changed(self, reader):
        real_init(self, reader)
        if change == "another buffer":
            self.buf = OtherBuffer(self.buf)
        else:
            del self.failed

    monkeypatch.setattr(Body, "__init__", changed)
    server, client = connection
    body = os.urandom(2 * 1024 * 1024 + 5)
    sender = send_in_background(client, put_head(len(body)) + body
                                + b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
    parser, environ = parse(server)
    with caplog.at_level(logging.INFO, logger="trainyard.adapters"):
        stream = spliceable(environ, environ["wsgi.input"])
        assert spliceable(environ, environ["wsgi.input"]) is stream  # probed once
    assert stream is environ["wsgi.input"]
    head = stream.read(65536)
    assert head + read_fully(stream, len(body)) == body
    sender.join(timeout=30)
    assert next(parser).path == "/next"
    (line,) = adapter_lines(caplog)
    assert line.startswith("gunicorn-body: not using gunicorn's Body.buf") and \
        line.endswith("using gunicorn's wsgi.input stream instead")
