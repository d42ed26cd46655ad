"""The retraining scheduler: fires projects' retraining schedules.

It runs as a daemon thread of every web process (and of every Celery worker, ``python -m app
worker``), but only the holder of one lease in the database fires anything: the lease
(``job_schedule`` document ``retraining-scheduler``, an owner and an expiry renewed at every
tick) goes to one process at a time, and to another one when its holder stops renewing it (a
dead or stopped process: at most ``lease_seconds`` later). On top of the lease, each slot of a
schedule is taken with one conditional update of its ``last_slot``
(:meth:`entity.retraining_schedule.RetrainingScheduleRepository.mark_fired`), so a slot fires
once even if two processes believed they held the lease (a paused process whose lease ran out).

Restarts: the first tick runs as the thread starts. A slot missed while no server ran is after
the stored ``last_slot``, so it fires then, once (however many slots were missed, only the
latest one); the next start finds ``last_slot`` at that slot and fires nothing.

Time comes from an injectable ``clock`` (a callable answering an aware UTC datetime), so tests
drive the scheduler through days in milliseconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from entity.base import utcnow
from entity.database import Database
from entity.retraining_schedule import RetrainingSchedule
from exception_layer import PlatformError
from thread_layer import triggers

log = logging.getLogger("trainyard.scheduler")

LEASE_NAME = "retraining-scheduler"


class RetrainingScheduler:
    """Fires due schedule slots while this process holds the lease (the labels trigger fires
    where labels arrive, ``thread_layer.feedback``; alerts where incidents open).

    Args:
        db: the database.
        runner: the execution runner trainings are submitted to.
        clock: the current time (aware UTC); tests inject their own.
        tick_seconds: how often the thread looks (and renews the lease).
        lease_seconds: how long a lease lasts without renewal; another process takes over
            after that.
        context: a factory of the context to work in (Flask's ``app.app_context``).
        owner: this scheduler's name in the lease (default: host, pid and a random part).
    """

    def __init__(self, db: Database, runner, *, clock: Callable[[], datetime] = utcnow,
                 tick_seconds: float = 30, lease_seconds: float = 120,
                 context: Callable[[], contextlib.AbstractContextManager]
                 = contextlib.nullcontext, owner: str | None = None):
        self.db, self.runner, self.clock, self.context = db, runner, clock, context
        self.tick_seconds = tick_seconds
        self.lease = timedelta(seconds=max(lease_seconds, 2 * tick_seconds))
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (idempotent); its first tick runs at once (missed slots)."""
        with self._lock:
            if self._thread is None:
                self._stopping.clear()
                self._thread = threading.Thread(target=self._loop, name="trainyard-scheduler",
                                                daemon=True)
                self._thread.start()

    def shutdown(self) -> None:
        """Stop the thread and give the lease up, so another process takes it at once."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self.db.job_schedule.release_lease(LEASE_NAME, self.owner)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                with self.context():
                    self.tick()
            except Exception:  # noqa: BLE001 - the scheduler must keep going
                log.exception("The retraining scheduler failed; trying again at the next tick")
            if self._stopping.wait(self.tick_seconds):
                return

    # -- one tick ------------------------------------------------------------------------

    def holds_lease(self, now: datetime | None = None) -> bool:
        """Take or renew the lease; True while this scheduler holds it."""
        return self.db.job_schedule.acquire_lease(LEASE_NAME, self.owner, self.lease,
                                                  now or self.clock())

    def tick(self) -> list[str]:
        """Fire what is due now, if this process holds the lease.

        Returns:
            the ids of the executions started (empty when not the holder or nothing was due).
        """
        now = self.clock()
        if not self.holds_lease(now):
            return []
        started: list[str] = []
        for schedule in self.db.retraining_schedules.list_enabled():
            if self._stopping.is_set():
                break
            execution_id = self._fire_schedule(schedule, now)
            if execution_id:
                started.append(execution_id)
        return started

    def _fire_schedule(self, schedule: RetrainingSchedule, now: datetime) -> str | None:
        try:
            slot = schedule.due_slot(now)
        except (ValueError, KeyError) as exc:  # a stored rule this croniter cannot read
            log.warning("Schedule %s cannot be computed: %s", schedule.id, exc)
            return None
        if slot is None or not self.db.retraining_schedules.mark_fired(schedule, slot, now):
            return None  # not due, or another process fired this slot
        project = self.db.projects.get(schedule.project_id)
        if project is None:
            return None
        reason = f"Scheduled retraining ({schedule.cron}, {schedule.timezone})"
        if schedule.description:
            reason += f": {schedule.description}"
        execution, outcome = None, None
        try:
            execution = triggers.start_retraining(
                self.db, self.runner, project, trigger="schedule", reason=reason + ".",
                detail={"schedule_id": schedule.id, "slot": slot.isoformat()})
            if execution is None:
                outcome = ("Skipped: another execution was active or the project cannot "
                           "retrain now.")
        except PlatformError as exc:
            outcome = f"Not started: {exc.message}"
        self.db.retraining_schedules.record_outcome(
            schedule.id, execution_id=execution.id if execution else None, outcome=outcome)
        log.info("Schedule %s of %s fired for slot %s: %s", schedule.id, project.slug,
                 slot.isoformat(), execution.id if execution else outcome)
        return execution.id if execution else None
