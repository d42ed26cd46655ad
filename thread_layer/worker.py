"""The worker process of one execution: runs the ML work and reports through a pipe.

It runs in a process of its own (started with ``spawn``) so that CPU-heavy training never starves
the web server: it is niced, its math libraries are capped to ``EXECUTION_THREADS`` threads, and
it dies with its supervisor. Messages sent to the supervisor:

- ``("log", level, stage, message)``
- ``("progress", stage, percent)``
- ``("result", dict)`` on success
- ``("error", code, message)`` on failure (the message is safe to show; tracebacks go to stderr)
"""

from __future__ import annotations

import os
import signal
import sys
import traceback

WORKER_NICENESS = 10


class PipeReporter:
    """A Reporter that forwards to the supervisor; remembers whether cancellation was asked."""

    def __init__(self, conn):
        self.conn = conn

    def log(self, message: str, *, stage: str, level: str = "INFO") -> None:
        self.conn.send(("log", level, stage, str(message)))

    def progress(self, stage: str, percent: int) -> None:
        self.conn.send(("progress", stage, int(percent)))


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


def run(payload: dict, conn) -> None:
    """Entry point of the worker process (see the module docstring for the protocol)."""
    _die_with_parent()
    threads = str(payload.get("threads", 1))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = threads
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        pass
    try:
        result = _execute(payload, PipeReporter(conn))
        conn.send(("result", result))
    except BaseException as exc:  # noqa: BLE001 - the boundary of a background execution
        from exception_layer import PlatformError

        if isinstance(exc, PlatformError):
            conn.send(("error", exc.code, exc.message))
        else:
            traceback.print_exc()
            conn.send(("error", "internal",
                       f"An unexpected error stopped the execution ({type(exc).__name__}); "
                       "the details are in the server log."))
    finally:
        conn.close()


def _execute(payload: dict, reporter: PipeReporter) -> dict:
    # Heavy imports happen here, after the thread caps are set.
    from threadpoolctl import threadpool_limits

    from cloud_storage import open_storage
    from entity.model_version import ModelVersion
    from entity.project import Project
    from integration.file_manager import ProjectFiles

    project = Project.from_document(payload["project"])
    storage = open_storage(payload["storage_uri"], payload.get("credentials") or None)
    files = ProjectFiles(storage, project.slug)
    if payload["kind"] == "move":
        from integration.project_transfer import copy_project_files

        target = ProjectFiles(open_storage(payload["target_uri"],
                                           payload.get("target_credentials") or None),
                              project.slug)
        return copy_project_files(files, target, reporter)
    with threadpool_limits(limits=int(payload.get("threads", 1))):
        if payload["kind"] == "train":
            from project_library.training import train_project

            return train_project(files, project=project, execution_id=payload["execution_id"],
                                 version=payload["version"], reporter=reporter,
                                 candidates=project.algorithms or None)
        from project_library.prediction import predict_project

        return predict_project(files, project=project, execution_id=payload["execution_id"],
                               model_version=ModelVersion.from_document(payload["model_version"]),
                               reporter=reporter)
