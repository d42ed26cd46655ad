"""The worker process of one execution: runs the ML work and reports through a pipe.

It runs in a process of its own (started with ``spawn``) so that CPU-heavy training never starves
the web server: it is niced, its math libraries are capped to ``EXECUTION_THREADS`` threads, it
dies with its supervisor, and it leaves SIGTERM and SIGINT to its supervisor. Messages sent to
the supervisor:

- ``("log", level, stage, message)``
- ``("progress", stage, percent)``
- ``("records", [document, ...])`` prediction records of a batch prediction, a chunk at a time
- ``("result", dict)`` on success
- ``("error", code, message)`` on failure (the message is safe to show; tracebacks go to stderr)
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import traceback

WORKER_NICENESS = 10
#: the signals the supervisor handles for this process (a stop of the whole process group)
SUPERVISOR_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


class PipeReporter:
    """A Reporter that forwards log lines and progress to the supervisor."""

    def __init__(self, conn):
        self.conn = conn

    def log(self, message: str, *, stage: str, level: str = "INFO") -> None:
        self.conn.send(("log", level, stage, str(message)))

    def progress(self, stage: str, percent: int) -> None:
        self.conn.send(("progress", stage, int(percent)))

    def records(self, docs: list[dict]) -> None:
        """Prediction records for the supervisor to write (``entity.prediction_record``)."""
        self.conn.send(("records", docs))

    def doing(self, what: str) -> None:
        """What it does now ("fitting RandomForest"), named if a limit stops it."""
        self.conn.send(("doing", str(what)))


def limit_code(exc: BaseException) -> str | None:
    """The limit an exception (or one it was raised from) says was hit: ``memory``,
    ``processes``, ``open_files`` or ``written``; None for any other error."""
    import errno

    seen = 0
    while exc is not None and seen < 10:
        seen += 1
        if isinstance(exc, MemoryError):
            return "memory"
        if isinstance(exc, OSError):
            if exc.errno == errno.EFBIG:
                return "written"
            if exc.errno == errno.EMFILE:
                return "open_files"
            if exc.errno == errno.EAGAIN and "fork" in str(exc).lower() or \
                    isinstance(exc, BlockingIOError) and exc.errno == errno.EAGAIN:
                return "processes"
        if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
            return "processes"
        if isinstance(exc, (ConnectionRefusedError, socket.gaierror)) or isinstance(
                exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "network"
        exc = exc.__cause__ or exc.__context__
    return None


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphaned trainings)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:
        pass


def run(execute, payload: dict, conn) -> None:
    """Entry point of the worker process (see the module docstring for the protocol).

    Args:
        execute: the ``run`` function of the execution's kind (``thread_layer.kinds``),
            ``execute(payload, reporter) -> result``.
        payload: what the supervisor gives it (see :class:`thread_layer.kinds.ExecutionKind`).
        conn: the pipe to the supervisor.
    """
    _die_with_parent()
    # The supervisor decides when this process stops: a SIGTERM or Ctrl-C sent to the whole
    # process group (a service manager stopping a worker) reaches the supervisor too, which
    # lets the execution finish or hands it back, then kills this process if it must.
    for number in SUPERVISOR_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    threads = str(payload.get("threads", 1))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = threads
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        pass
    try:
        # Heavy imports happen in ``execute``, after the thread caps are set.
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=int(payload.get("threads", 1))):
            result = execute(payload, PipeReporter(conn))
        conn.send(("result", result))
    except BaseException as exc:  # noqa: BLE001 - the boundary of a background execution
        from exception_layer import PlatformError

        code = limit_code(exc)
        if code is not None:
            what = ("A network connection failed" if code == "network" else
                    "A limit stopped the execution")
            conn.send(("error", code, f"{what} ({type(exc).__name__}: {exc})."))
        elif isinstance(exc, PlatformError):
            conn.send(("error", exc.code, exc.message))
        else:
            traceback.print_exc()
            conn.send(("error", "internal",
                       f"An unexpected error stopped the execution ({type(exc).__name__}); "
                       "the details are in the server log."))
    finally:
        conn.close()


def project_files(payload: dict, uri_key: str = "storage_uri",
                  credentials_key: str = "credentials"):
    """The file manager of the payload's project at the location under ``uri_key`` (the
    project's storage by default), opened through the storage resolver."""
    from entity.project import Project
    from integration.storage_bridge import StorageResolver

    uri = payload[uri_key]
    slug = Project.from_document(payload["project"]).slug
    return StorageResolver(uri).files_in(uri, payload.get(credentials_key), slug)
