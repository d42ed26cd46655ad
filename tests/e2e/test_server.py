"""The real server (``python -m app``, gunicorn): it keeps an idle connection open longer than a
client's polling interval (with gunicorn's 2-second default, a client polling every 2 seconds
raced the server's close and sometimes got "connection closed without response"), it splices
large uploads to local disk straight from the socket into the file, and it reads uploads to a
cloud from the socket straight into each part's buffer."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import time

import pytest

from tests import emulators
from tests.conftest import free_port, wait_until
from tests.factories import cancer_project
from tests.thread_layer.test_recovery import admin_with_project, start_server

pytestmark = pytest.mark.slow


def test_an_idle_connection_outlives_a_polling_interval(tmp_path):
    port = free_port()
    server = start_server(tmp_path, port)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        first.read()
        assert first.status == 200 and first.getheader("Connection", "").lower() != "close"
        opened = connection.sock
        # The fixed wait is the test itself: idle longer than gunicorn's default keep-alive (2 s).
        time.sleep(3)
        connection.request("GET", "/healthz")  # on the same socket: it must still be open
        second = connection.getresponse()
        second.read()
        assert second.status == 200 and connection.sock is opened
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # our own process group, by its id
        server.wait(timeout=30)


@pytest.mark.parametrize("public_paths", ["", "gunicorn-body"])
def test_large_uploads_to_local_disk_arrive_whole_on_a_kept_alive_connection(tmp_path,
                                                                             public_paths):
    """Under gunicorn the body goes from the socket into the file inside the kernel
    (``controllers/spliced_body.py``): the file must arrive byte for byte, the connection must go on
    with the next request, and an upload cut midway must leave neither file nor leftovers.
    The same holds on gunicorn's own stream, with the adapter turned off."""
    port = free_port()
    server = start_server(tmp_path, port, PUBLIC_PATHS=public_paths)
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        session, token, project = admin_with_project(port)
        path = f"/api/v1/projects/{project['id']}/files/content?path=notes/"
        headers = {"X-CSRFToken": token, "Content-Type": "application/octet-stream",
                   "Cookie": "; ".join(f"{c.name}={c.value}" for c in session.cookies)}
        data = os.urandom(24 * 1024 * 1024 + 5)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for name in ("big.bin", "again.bin"):  # the second on the same, kept-alive connection
            connection.request("PUT", path + name, body=data, headers=headers)
            response = connection.getresponse()
            assert response.status == 201, response.read()
            assert json.loads(response.read())["size"] == len(data)
        opened = connection.sock
        connection.request("GET", path + "big.bin", headers=headers)
        download = connection.getresponse()
        assert download.status == 200 and connection.sock is opened
        assert hashlib.sha256(download.read()).digest() == hashlib.sha256(data).digest()

        with socket.create_connection(("127.0.0.1", port), timeout=60) as cut:
            cut.sendall(f"PUT {path}cut.bin HTTP/1.1\r\nHost: t\r\nContent-Length: {len(data)}"
                        f"\r\nCookie: {headers['Cookie']}\r\nX-CSRFToken: {token}\r\n\r\n"
                        .encode() + data[:len(data) // 3])
        listing = lambda: session.get(f"{base}/projects/{project['id']}/files",  # noqa: E731
                                   params={"path": "notes/"}, timeout=10).json()["files"]
        wait_until(lambda: not any(f.startswith(".trainyard-upload-")
                                   for _, _, files in os.walk(tmp_path / "data") for f in files),
                   timeout=30, message="the cut upload's temporary file to go")
        assert sorted(f["name"] for f in listing()) == ["again.bin", "big.bin"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # our own process group, by its id
        server.wait(timeout=30)
    log = (tmp_path / f"server-{port}.log").read_text()
    assert log.count("gunicorn-body: not using") == (1 if public_paths else 0)


def test_large_uploads_to_s3_arrive_whole_and_a_cut_one_leaves_no_parts(tmp_path):
    """Under gunicorn an upload to a cloud is read from the socket into each part's buffer
    (``SplicedBody.readinto``), here into a multipart upload on moto: both files must arrive
    byte for byte on one kept-alive connection, and an upload cut midway must be aborted, with
    no object and no multipart upload left in the bucket."""
    port = free_port()
    server = start_server(tmp_path, port)
    try:
        with emulators.s3_storage() as storage:
            base = f"http://127.0.0.1:{port}/api/v1"
            session, token, _ = admin_with_project(port)
            headers = {"X-CSRFToken": token}
            connection_id = session.post(
                f"{base}/storage-connections", headers=headers, timeout=30,
                json=emulators.connection_definition("moto", storage)).json()["id"]
            project = session.post(f"{base}/projects", headers=headers, timeout=30,
                                   json=cancer_project("On S3",
                                                       storage_connection_id=connection_id))
            assert project.status_code == 201, project.text
            path = f"/api/v1/projects/{project.json()['id']}/files/content?path=notes/"
            headers.update({"Content-Type": "application/octet-stream", "Cookie": "; ".join(
                f"{c.name}={c.value}" for c in session.cookies)})
            data = os.urandom(19 * 1024 * 1024 + 7)  # three parts of 8 MiB, the last short
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for name in ("big.bin", "again.bin"):
                connection.request("PUT", path + name, body=data, headers=headers)
                response = connection.getresponse()
                assert response.status == 201, response.read()
                assert json.loads(response.read())["size"] == len(data)
            connection.close()
            download = session.get(f"http://127.0.0.1:{port}{path}again.bin", timeout=60)
            assert download.status_code == 200  # from moto, through the signed URL
            assert hashlib.sha256(download.content).digest() == hashlib.sha256(data).digest()

            with socket.create_connection(("127.0.0.1", port), timeout=60) as cut:
                cut.sendall(f"PUT {path}cut.bin HTTP/1.1\r\nHost: t\r\nContent-Length: "
                            f"{len(data)}\r\nCookie: {headers['Cookie']}\r\nX-CSRFToken: "
                            f"{token}\r\n\r\n".encode() + data[:len(data) // 2])
                cut.shutdown(socket.SHUT_WR)  # the body ends halfway
                answer = b""
                while chunk := cut.recv(65536):  # the server has handled the cut upload
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
            client, bucket = storage.client, storage.bucket
            assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
            keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
            assert sorted(key.rsplit("/", 1)[1] for key in keys if "/notes/" in key) == [
                "again.bin", "big.bin"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # our own process group, by its id
        server.wait(timeout=30)


def _raw_answer(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as it is; (status, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        answer = http.client.HTTPResponse(connection)
        answer.begin()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()


def test_requests_too_long_or_malformed_get_the_json_error_shape_under_api(tmp_path):
    """Issue 21 item 12: a 414 or a bad header under /api answered gunicorn's HTML page. The app
    answers long addresses itself (JSON under /api, the error page elsewhere); what gunicorn
    must answer itself, before the app (a line too long to read, a header it cannot parse), it
    answers in the JSON error shape."""
    port = free_port()
    server = start_server(tmp_path, port)
    try:
        host = b"Host: t\r\n"
        cases = {
            "5000-byte address": (b"GET /api/v1/projects?x=" + b"a" * 5000 + b" HTTP/1.1\r\n"
                                  + host + b"\r\n", 414, "uri_too_long"),
            "9000-byte address": (b"GET /api/v1/projects?x=" + b"a" * 9000 + b" HTTP/1.1\r\n"
                                  + host + b"\r\n", 414, "uri_too_long"),
            "space in a header name": (b"GET /api/v1/projects HTTP/1.1\r\n" + host +
                                       b"Bad Header: x\r\n\r\n", 400, "bad_request"),
            "control character": (b"GET /api/v1/projects HTTP/1.1\r\n" + host +
                                  b"X-A: a\x01b\r\n\r\n", 400, "bad_request"),
            "bad Content-Length": (b"POST /api/v1/session HTTP/1.1\r\n" + host +
                                   b"Content-Length: abc\r\n\r\n", 400, "bad_request"),
            "header too large": (b"GET /api/v1/projects HTTP/1.1\r\n" + host + b"X-A: " +
                                 b"a" * 9000 + b"\r\n\r\n", 431, "headers_too_large"),
        }
        for name, (request, status, code) in cases.items():
            answered, headers, body = _raw_answer(port, request)
            assert answered == status, (name, answered, body[:300])
            assert headers["content-type"].startswith("application/json"), (name, body[:300])
            error = json.loads(body)["error"]
            assert error["code"] == code and error["message"], (name, error)
        # A page's long address gets the error page.
        answered, headers, body = _raw_answer(
            port, b"GET /login?x=" + b"a" * 5000 + b" HTTP/1.1\r\n" + host + b"\r\n")
        assert answered == 414 and headers["content-type"].startswith("text/html")
        assert b'data-error-code="uri_too_long"' in body
        # An address within the limit is served as before.
        answered, _, _ = _raw_answer(port, b"GET /healthz?x=" + b"a" * 3000 + b" HTTP/1.1\r\n"
                                     + host + b"\r\n")
        assert answered == 200
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # our own process group, by its id
        server.wait(timeout=30)
