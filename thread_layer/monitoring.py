"""The monitoring job: monitor points of every model version, computed in the background.

Like housekeeping, it runs in a daemon thread of each web process, and each period's turn is
claimed in ``job_schedule`` (job ``monitoring``), so with several web processes one computes
and all read the same points from the database; nothing is computed on a request thread. Each
turn, for every project with a model:

1. the prediction records of the rolling window (the project's ``monitoring_window_hours``,
   else ``MONITORING_WINDOW_HOURS``) and of each UTC day not yet final are read in batches
   with only the fields needed (``Collection.scan``; the labeled ones again with their
   probabilities, for the metrics) and aggregated per version in numpy
   (``project_library.monitoring``); the error rate comes from the real-time usage counters,
   which count the failed requests that leave no record;
2. the points are stored in ``monitor_points``;
3. the project's alert rules are evaluated on the active version's window point
   (``thread_layer.alerts``): incidents open, remind and close, mails and webhooks go out.

Between turns the same thread posts due webhook deliveries, retrying with backoff.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from entity.base import from_iso, to_iso, utcnow
from entity.database import Database
from entity.model_version import ModelVersion
from entity.monitoring import point_id
from entity.project import Project
from integration.storage_bridge import StorageResolver
from project_library.model_artifacts import REFERENCE_PROFILE_FILE, read_verified_file
from project_library.monitoring import (
    LABELED_FIELDS,
    VersionMonitor,
    columns_of,
    record_fields,
)

log = logging.getLogger(__name__)

JOB_NAME = "monitoring"
#: the days before today whose points are recomputed until they are final
LATE_DAYS = 1
Clock = Callable[[], datetime]


def records_collection(db: Database):
    """The prediction records' collection (``entity.prediction_record``'s)."""
    return db.prediction_records.collection


def _hour_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H")


def _day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class ProfileCache:
    """Reference profiles of model versions, read once per process and checked against the
    registry's checksum (a changed checksum reads the file again)."""

    def __init__(self, resolver: StorageResolver):
        self.resolver = resolver
        self._cache: dict[tuple, dict | None] = {}
        self._lock = threading.Lock()

    def profile(self, project: Project, version: ModelVersion) -> dict | None:
        checksum = (version.artifacts or {}).get(REFERENCE_PROFILE_FILE)
        if not checksum:
            return None
        key = (project.id, version.version, checksum)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        try:
            profile = json.loads(read_verified_file(self.resolver.files(project), version,
                                                    REFERENCE_PROFILE_FILE))
        except Exception as exc:  # noqa: BLE001 - a bad profile must not stop monitoring
            log.warning("The reference profile of %s v%s cannot be read (%s); drift is not "
                        "computed.", project.slug, version.version, exc)
            profile = None
        with self._lock:
            self._cache[key] = profile
        return profile


def request_counts(db: Database, project_id: str, start: datetime,
                   end: datetime) -> dict[int, dict]:
    """Real-time requests and failures per version over the hours from ``start`` to ``end``,
    summed over every web process's usage counters."""
    low, high = _hour_key(start), _hour_key(end)
    totals: dict[int, dict] = {}
    for doc in db.prediction_usage.for_project(project_id):
        found = totals.setdefault(int(doc["version"]), {"requests": 0, "errors": 0})
        for hour, (requests, errors) in (doc.get("request_hours") or {}).items():
            if low <= hour <= high:
                found["requests"] += requests
                found["errors"] += errors
    for found in totals.values():
        found["error_rate"] = (round(found["errors"] / found["requests"], 6)
                               if found["requests"] else None)
    return totals


def compute_period(db: Database, project: Project, versions: list[ModelVersion],
                   profiles: ProfileCache, start: datetime, end: datetime, *,
                   batch: int = 5000) -> dict[int, dict]:
    """The monitors of each version with records from ``start`` to ``end`` (and of the active
    version, with or without), read in batches of ``batch`` records."""
    by_number = {v.version: v for v in versions}
    wanted = {v.version: profiles.profile(project, v) for v in versions}
    features: dict[str, None] = {}
    for profile in wanted.values():
        features.update(dict.fromkeys((profile or {}).get("features", {})))
    fields = record_fields({"features": features})
    monitors: dict[int, VersionMonitor] = {}

    def monitor_of(number: int) -> VersionMonitor:
        if number not in monitors:
            monitors[number] = VersionMonitor(wanted.get(number), project.problem_type)
        return monitors[number]

    if project.active_version is not None:
        monitor_of(project.active_version)
    query = {"project_id": project.id,
             "created_at": {"$gte": to_iso(start), "$lt": to_iso(end)}}
    for rows in records_collection(db).scan(query, fields, batch=batch):
        groups: dict = {}
        for row in rows:
            groups.setdefault(row[0], []).append(row)
        for number, group in groups.items():
            if isinstance(number, int) and not isinstance(number, bool):
                monitor_of(number).add(columns_of(group, fields))
    labeled = {**query, "labeled_at": {"$ne": None}}  # indexed with the project
    for rows in records_collection(db).scan(labeled, LABELED_FIELDS, batch=batch):
        groups = {}
        for row in rows:
            groups.setdefault(row[0], []).append(row)
        for number, group in groups.items():
            if isinstance(number, int) and not isinstance(number, bool):
                monitor_of(number).add_labeled(columns_of(group, list(LABELED_FIELDS)))
    counts = request_counts(db, project.id, start, end)
    results = {}
    for number, monitor in monitors.items():
        found = monitor.result()
        found["requests"] = counts.get(number, {"requests": 0, "errors": 0, "error_rate": None})
        version = by_number.get(number)
        found["training_metrics"] = {k: v for k, v in (version.metrics if version else {})
                                     .items() if isinstance(v, (int, float))}
        found["has_profile"] = wanted.get(number) is not None
        results[number] = found
    return results


def last_record_at(db: Database, project_id: str, version: int) -> str | None:
    """When the version's newest record was made (None: it never had one)."""
    doc = records_collection(db).find_one({"project_id": project_id, "version": version},
                                          sort=[("created_at", -1)])
    return doc.get("created_at") if doc else None


def window_hours(project: Project, default: int) -> int:
    return int(project.settings.get("monitoring_window_hours") or default)


def compute_project(db: Database, project: Project, profiles: ProfileCache, now: datetime, *,
                    default_window_hours: int = 24, batch: int = 5000) -> list[dict]:
    """Compute and store the window point and the day points of ``project``'s versions;
    returns the points stored."""
    versions = db.model_versions.list_for_project(project.id)
    if not versions:
        return []
    hours = window_hours(project, default_window_hours)
    computed_at = to_iso(now)
    stored = []
    periods = [("window", now - timedelta(hours=hours), now, now.strftime("%Y-%m-%dT%H:%M"))]
    today = _day_start(now)
    for back in range(LATE_DAYS, -1, -1):
        day = today - timedelta(days=back)
        existing = db.monitor_points.get(point_id(project.id, project.active_version or 0,
                                                  "day", day.date().isoformat()))
        if back and existing and from_iso(existing["computed_at"]) >= day + timedelta(days=1):
            continue  # that day's point was computed after it ended: it is final
        periods.append(("day", day, min(day + timedelta(days=1), now), day.date().isoformat()))
    for granularity, start, end, key in periods:
        results = compute_period(db, project, versions, profiles, start, end, batch=batch)
        for number, found in results.items():
            if granularity == "day" and not found["volume"]["predictions"] and \
                    end - start >= timedelta(days=1):
                continue  # a whole past day without traffic: no point to chart
            point = {"_id": point_id(project.id, number, granularity, key),
                     "project_id": project.id, "version": number,
                     "granularity": granularity, "start": to_iso(start), "end": to_iso(end),
                     "computed_at": computed_at, "metric": project.selection_metric,
                     **found}
            if granularity == "day":
                point["day"] = key
            else:
                point["window_hours"] = hours
                point["last_record_at"] = (found["last_at"] or
                                           last_record_at(db, project.id, number))
            db.monitor_points.save(point)
            stored.append(point)
    return stored


class Monitor:
    """The monitoring job of one process.

    Args:
        db: the database.
        resolver: the storage, for the reference profiles.
        alerts: evaluates the alert rules after each project's computation and posts the
            webhook deliveries (``thread_layer.alerts.Alerts``); None: monitors only.
        every_seconds: the period of the computation; one process among all takes each turn.
        window_hours: the default rolling window.
        clock: now, as an aware UTC datetime (tests drive it).
        context: a factory of the context to work in (Flask's ``app.app_context``).
        first_delay: seconds after :meth:`start` before the first look.
        check_seconds: how often the thread looks for a due turn and due webhook deliveries.
    """

    def __init__(self, db: Database, resolver: StorageResolver, *, alerts=None,
                 every_seconds: float = 900, window_hours: int = 24, clock: Clock = utcnow,
                 context: Callable[[], contextlib.AbstractContextManager]
                 = contextlib.nullcontext, first_delay: float = 60,
                 check_seconds: float = 10, batch: int = 5000):
        self.db, self.resolver, self.alerts = db, resolver, alerts
        self.every = timedelta(seconds=every_seconds)
        self.window_hours, self.clock, self.context = window_hours, clock, context
        self.first_delay, self.check_seconds, self.batch = first_delay, check_seconds, batch
        self.profiles = ProfileCache(resolver)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the thread (idempotent)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="trainyard-monitoring",
                                                daemon=True)
                self._thread.start()

    def shutdown(self) -> None:
        self._stopping.set()

    def compute(self, now: datetime | None = None) -> dict[str, int]:
        """Compute every project's monitors now and evaluate its alerts (no claim: callers
        hold the turn); returns how many points each project got."""
        now = now or self.clock()
        done = {}
        for project in self.db.projects.list():
            try:
                points = compute_project(self.db, project, self.profiles, now,
                                         default_window_hours=self.window_hours,
                                         batch=self.batch)
                if self.alerts is not None and points:
                    self.alerts.evaluate(project, points, now)
            except Exception:  # noqa: BLE001 - one project's failure must not stop the others
                log.exception("Monitoring project %s failed; trying again next turn",
                              project.slug)
                continue
            done[project.id] = len(points)
        return done

    def run_once(self, now: datetime | None = None) -> dict[str, int] | None:
        """Compute if this period's turn is due and this process gets it (None otherwise)."""
        now = now or self.clock()
        if not self.db.job_schedule.claim(JOB_NAME, self.every, now):
            return None
        return self.compute(now)

    def _loop(self) -> None:
        if self._stopping.wait(self.first_delay):
            return
        while True:
            try:
                with self.context():
                    self.run_once()
                    if self.alerts is not None:
                        self.alerts.deliver_due(self.clock())
            except Exception:  # noqa: BLE001 - the job must keep going
                log.exception("Monitoring failed; trying again at the next turn")
            if self._stopping.wait(self.check_seconds):
                return
