"""The entry of a sandboxed worker process: ``python -m thread_layer.sandbox_worker FD``.

It reads its payload (one JSON line) from the socket FD its supervisor passed, imports the kind's
``run`` function it names (``"module:function"``), and runs it through :func:`worker.run`, which
reports back on the same socket as JSON lines (the supervisor never unpickles anything of it).
The limits were set before this interpreter started (``thread_layer.sandbox.launch``).
"""

from __future__ import annotations

import importlib
import json
import socket
import sys


def _jsonable(value):
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


class JsonConnection:
    """What :func:`thread_layer.worker.run` sends on: JSON lines on a socket."""

    def __init__(self, stream):
        self.stream = stream

    def send(self, message) -> None:
        self.stream.write(json.dumps(list(message), default=_jsonable).encode() + b"\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()


def main(argv: list[str]) -> None:
    sock = socket.socket(fileno=int(argv[1]))
    stream = sock.makefile("rwb")
    payload = json.loads(stream.readline())
    # the supervisor's import path (as multiprocessing's spawn passes it), for kinds defined
    # in modules imported from there
    sys.path[:0] = [entry for entry in payload.pop("sys_path", []) if entry not in sys.path]
    module, _, name = payload.pop("run").partition(":")
    execute = getattr(importlib.import_module(module), name)
    from thread_layer import worker

    worker.run(execute, payload, JsonConnection(stream))


if __name__ == "__main__":
    main(sys.argv)
