"""A test-only execution kind that misbehaves on purpose (registered by the sandbox tests only,
never by the application). Its module imports nothing but the standard library, so that its
worker starts quickly under the tests' low limits."""

from __future__ import annotations

import os
import socket
import time

from thread_layer.kinds import ExecutionKind, KindOption


def _memory_bomb(payload):
    hoard = []
    while True:
        hoard.append(bytearray(8 * 1024 * 1024))
        hoard[-1][::4096] = b"x" * len(hoard[-1][::4096])  # touch every page: resident


def _fork_bomb(payload):
    children = []
    while True:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)


def _loop(payload):
    while True:
        pass


def _connect(payload):
    port = int(payload["options"]["port"])
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(b"escaped\n")
    return {"connected": True}


def _secrets(payload):
    found = {}
    for path in payload["options"]["paths"]:
        try:
            with open(path, "rb") as stream:
                found[path] = stream.read(64).hex()
        except OSError as exc:
            found[path] = f"denied: {exc.strerror}"
    target = payload["options"]["outside"]
    try:
        with open(target, "w") as stream:
            stream.write("escaped")
        found["write"] = "written"
    except OSError as exc:
        found["write"] = f"denied: {exc.strerror}"
    found["environment"] = sorted(os.environ)
    return found


def _write_forever(payload):
    chunk = b"\0" * (1024 * 1024)
    with open("endless.bin", "wb") as stream:
        while True:
            stream.write(chunk)
            stream.flush()


def _many_files(payload):
    index = 0
    chunk = b"\1" * (1024 * 1024)
    while True:
        with open(f"part-{index}.bin", "wb") as stream:
            stream.write(chunk)
        index += 1


def _quiet(payload):
    return {"ok": True}


PAYLOADS = {"memory": _memory_bomb, "fork": _fork_bomb, "loop": _loop, "connect": _connect,
            "secrets": _secrets, "write": _write_forever, "files": _many_files,
            "quiet": _quiet}


def run_hostile(payload: dict, reporter) -> dict:
    what = payload["options"]["payload"]
    reporter.doing(f"running the {what} payload")
    return PAYLOADS[what](payload) or {}


HOSTILE = ExecutionKind(
    name="hostile", label="Hostile test", run=run_hostile, stages=("running",),
    options=(KindOption("payload", {"type": "string"}, "hostile: what to do",
                        parse=lambda raw, db: str(raw)),
             KindOption("port", {"type": "integer"}, "hostile: a port to connect to",
                        parse=lambda raw, db: int(raw)),
             KindOption("paths", {"type": "array"}, "hostile: files to read",
                        parse=lambda raw, db: [str(p) for p in raw]),
             KindOption("outside", {"type": "string"}, "hostile: a file to write",
                        parse=lambda raw, db: str(raw))))
