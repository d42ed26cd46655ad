"""The real server (``python -m app``, gunicorn) keeps an idle connection open longer than a
client's polling interval: with gunicorn's 2-second default, a client polling every 2 seconds
raced the server's close and sometimes got "connection closed without response"."""

from __future__ import annotations

import http.client
import os
import signal
import time

import pytest

from tests.conftest import free_port
from tests.thread_layer.test_recovery import start_server

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
        time.sleep(3)  # longer than gunicorn's default keep-alive of 2 s
        connection.request("GET", "/healthz")  # on the same socket: it must still be open
        second = connection.getresponse()
        second.read()
        assert second.status == 200 and connection.sock is opened
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # our own process group, by its id
        server.wait(timeout=30)
