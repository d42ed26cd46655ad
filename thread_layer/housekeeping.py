"""Housekeeping: the periodic job that deletes what the retention settings let go.

It runs in each web process (``create_app`` starts it with the runner), yet each period's turn
is claimed in the database, so with several web processes, or Celery workers beside them, one
process does the work and the others skip it. The work itself is idempotent and cheap: a few
deletes by indexed time, which find nothing the second time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from entity.base import utcnow
from entity.database import Database

log = logging.getLogger(__name__)

JOB_NAME = "housekeeping"
#: an upload unfinished for this long has stopped for good (the slowest real upload of the
#: largest file takes far less); its leftovers are swept
INCOMPLETE_UPLOAD_AGE = timedelta(hours=24)
#: a process looks at least this often whether the turn is due (one conditional update)
CHECK_EVERY_SECONDS = 300.0


@dataclass(frozen=True)
class Retention:
    """How many days each kind of record is kept; 0 keeps it forever."""

    login_failures_days: int = 1
    #: days after a session expired, i.e. went unused for ``session_lifetime``
    sessions_days: int = 1
    logs_days: int = 0
    audit_days: int = 0
    #: prediction records, for the projects that do not set ``prediction_record_days``
    prediction_records_days: int = 0
    session_lifetime: timedelta = timedelta(days=31)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Retention:
        """The ``RETENTION_*`` settings, and Flask's session lifetime."""
        return cls(login_failures_days=config["RETENTION_LOGIN_FAILURES_DAYS"],
                   sessions_days=config["RETENTION_SESSIONS_DAYS"],
                   logs_days=config["RETENTION_LOGS_DAYS"],
                   audit_days=config["RETENTION_AUDIT_DAYS"],
                   prediction_records_days=config.get("RETENTION_PREDICTION_RECORDS_DAYS", 0),
                   session_lifetime=config["PERMANENT_SESSION_LIFETIME"])


def apply_retention(db: Database, retention: Retention,
                    now: datetime | None = None) -> dict[str, int]:
    """Delete the records older than their retention; returns how many of each went."""
    now = now or utcnow()
    deleted: dict[str, int] = {}
    if retention.login_failures_days:
        deleted["login_failures"] = db.login_failures.prune(
            now - timedelta(days=retention.login_failures_days))
    if retention.sessions_days:
        # A session's use is written at most once per SESSION_SEEN_EVERY, and its cookie may
        # be re-signed up to then: the days kept after expiry cover that lag.
        deleted["sessions"] = db.sessions.prune_idle(
            now - retention.session_lifetime - timedelta(days=retention.sessions_days))
    if retention.logs_days:
        deleted["logs"] = db.logs.prune(now - timedelta(days=retention.logs_days))
    if retention.audit_days:
        deleted["audit"] = db.audit.prune(now - timedelta(days=retention.audit_days))
    records = 0
    for project in db.projects.list():  # a project's own setting wins over the platform's
        days = project.settings.get("prediction_record_days") or \
            retention.prediction_records_days
        if days:
            records += db.prediction_records.delete_older_than(now - timedelta(days=days),
                                                               project_id=project.id)
    if records:
        deleted["prediction_records"] = records
    return deleted


class Housekeeper:
    """Applies the retention every ``every_seconds``, in a daemon thread of this process.

    Args:
        db: the database.
        retention: what to keep.
        every_seconds: the period; one process among all takes each period's turn.
        context: a factory of the context to work in (Flask's ``app.app_context``).
        first_delay: seconds after :meth:`start` before the first look (start-up stays quick).
        check_seconds: how often to look whether the turn is due.
        storages: sweeps the leftovers of unfinished uploads from every storage in use
            (``StorageResolver``); None: no sweep.
    """

    def __init__(self, db: Database, retention: Retention, *, every_seconds: float = 3600,
                 context: Callable[[], contextlib.AbstractContextManager]
                 = contextlib.nullcontext, first_delay: float = 60,
                 check_seconds: float = CHECK_EVERY_SECONDS, storages=None):
        self.db, self.retention, self.context = db, retention, context
        self.storages = storages
        self.every = timedelta(seconds=every_seconds)
        self.first_delay = first_delay
        self.check_seconds = min(check_seconds, every_seconds)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the thread (idempotent)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="trainyard-housekeeping",
                                                daemon=True)
                self._thread.start()

    def shutdown(self) -> None:
        """Stop the thread (a turn being applied finishes first)."""
        self._stopping.set()

    def run_once(self, now: datetime | None = None) -> dict[str, int] | None:
        """Apply the retention if this period's turn is due and this process gets it.

        Returns:
            how many records of each kind were deleted, or None when it was not this
            process's turn.
        """
        now = now or utcnow()
        if not self.db.job_schedule.claim(JOB_NAME, self.every, now):
            return None
        deleted = apply_retention(self.db, self.retention, now)
        if self.storages is not None:
            deleted["incomplete_uploads"] = self.storages.sweep_incomplete_uploads(
                INCOMPLETE_UPLOAD_AGE)
        if any(deleted.values()):
            log.info("Housekeeping deleted %s", ", ".join(f"{n} {kind.replace('_', ' ')}"
                                                          for kind, n in deleted.items() if n))
        return deleted

    def _loop(self) -> None:
        if self._stopping.wait(self.first_delay):
            return
        while True:
            try:
                with self.context():
                    self.run_once()
            except Exception:  # noqa: BLE001 - housekeeping must keep going
                log.exception("Housekeeping failed; trying again at the next turn")
            if self._stopping.wait(self.check_seconds):
                return
