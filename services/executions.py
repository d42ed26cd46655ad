"""Executions: start, cancel and read executions of every kind (trainings, predictions,
storage moves: see ``thread_layer.kinds``), their logs and their output."""

from __future__ import annotations

import time
from collections.abc import Iterator

from entity.execution import Execution
from entity.project import Project
from exception_layer import BadRequest, NotFound
from services.context import Context
from thread_layer.kinds import PREDICTION_OUTPUT, find_kind, get_kind

#: the channels a person starts an execution through (``trigger["via"]``)
VIAS = ("page", "api", "cli")


def start(ctx: Context, project: Project, kind: str, raw_options: dict | None = None, *,
          via: str = "api") -> Execution:
    """Start an execution of ``kind`` with the options of its start request (``raw_options``:
    the API body or the page form; the kind reads the options it declares). It records the
    trigger ``{"by": "user", "user_id", "reason", "via"}`` (``via``: one of :data:`VIAS`).

    Raises:
        ValidationFailed: an unknown kind, or an option with a bad value (e.g. no such
            storage connection, or one the user may not use; a version that is not a number).
        Conflict: an execution of the project is active already, or the kind refused.
    """
    options = get_kind(kind).parse_options(raw_options or {}, ctx.db, ctx.user)
    trigger = {"by": "user", "user_id": ctx.user.id, "reason": f"Started by {ctx.user.name}.",
               "via": via if via in VIAS else "api"}
    execution = ctx.platform.runner.submit(project, kind, ctx.user, options, trigger=trigger)
    ctx.audit(f"execution.{kind}", project.slug, details={"execution": execution.id, **options,
                                                          "trigger": trigger})
    return execution


def cancel(ctx: Context, project: Project, execution: Execution) -> Execution:
    """Ask a queued or running execution to stop (Conflict when it has ended)."""
    cancelled = ctx.platform.runner.cancel(execution)
    ctx.audit("execution.cancel", project.slug, details={"execution": execution.id})
    return cancelled


def load(ctx: Context, project: Project, execution_id: str) -> Execution:
    """The execution ``execution_id`` of ``project`` (NotFound otherwise)."""
    execution = ctx.db.executions.get(execution_id)
    if execution is None or execution.project_id != project.id:
        raise NotFound("No such execution.")
    return execution


def output_page(ctx: Context, project: Project, execution: Execution, page: int,
                page_size: int = 50) -> dict:
    """One page of a prediction execution's output table."""
    from project_library.prediction import read_output_page

    path = (execution.result or {}).get("output_path")
    produces = getattr(find_kind(execution.kind), "produces", None)
    if produces != PREDICTION_OUTPUT or execution.status != "succeeded" or not path:
        raise NotFound("This execution has no prediction output.")
    if page < 1:
        raise BadRequest("Pages start at 1.")
    files = ctx.platform.resolver.files(project)
    # A page past the end has no rows. Every row takes at least two bytes, so a page that
    # starts beyond half the file's size is answered without making the reader skip (and
    # hold in memory) billions of row numbers.
    if (page - 1) * page_size > files.stat(path).size // 2:
        first = read_output_page(files, path, page=1, page_size=page_size)
        return {**first, "rows": [], "page": page}
    return read_output_page(files, path, page=page, page_size=page_size)


def output_path(ctx: Context, project: Project, execution: Execution) -> str:
    """The path of a prediction's output CSV (NotFound unless there is one)."""
    output_page(ctx, project, execution, 1, 1)
    return execution.result["output_path"]


def list_page(ctx: Context, project: Project, page: int, per_page: int
              ) -> tuple[list[Execution], int]:
    """One page of the project's executions, newest first, and how many there are."""
    db = ctx.db
    return (db.executions.list_for_project(project.id, skip=(page - 1) * per_page,
                                           limit=per_page),
            db.executions.count_for_project(project.id))


def active(ctx: Context, project: Project) -> Execution | None:
    """The project's queued or running execution, if any."""
    return ctx.db.executions.get(project.active_execution_id) \
        if project.active_execution_id else None


def reload(ctx: Context, execution: Execution) -> Execution:
    """The execution as it stands now."""
    return ctx.db.executions.get(execution.id)


def logs(ctx: Context, execution: Execution, after_seq: int = 0, limit: int | None = None
         ) -> list:
    """The execution's log lines after the sequence number ``after_seq``."""
    if limit is None:
        return ctx.db.logs.list(execution.id, after_seq=after_seq)
    return ctx.db.logs.list(execution.id, after_seq=after_seq, limit=limit)


def last_seq(ctx: Context, execution: Execution) -> int:
    """The sequence number of the execution's last log line (0: none yet)."""
    return ctx.db.logs.last_seq(execution.id)


def starter(ctx: Context, execution: Execution):
    """The user who started the execution, if they still exist."""
    return ctx.db.users.get(execution.started_by) if execution.started_by else None


def follow(ctx: Context, execution: Execution, after_seq: int, *,
           poll_seconds: float = 0.5) -> Iterator[tuple[str, dict, int | None]]:
    """The execution's log lines after ``after_seq`` and its changes of state, as
    ``(event, payload, seq)`` with event ``"log"`` or ``"execution"``, until it has ended and
    every line was given."""
    db = ctx.db
    last, last_state = after_seq, None
    while True:
        for record in db.logs.list(execution.id, after_seq=last, limit=500):
            last = record.seq
            yield "log", record.to_public(), record.seq
        current = db.executions.get(execution.id)
        state = current.to_public()
        if state != last_state:
            last_state = state
            yield "execution", state, None
        if not current.is_active and not db.logs.list(execution.id, after_seq=last, limit=1):
            return
        time.sleep(poll_seconds)
