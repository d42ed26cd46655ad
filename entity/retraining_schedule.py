"""Retraining schedules: when a project retrains by itself (cron syntax in a time zone), what
fired last, and their repository.

A schedule's turns are *slots*: the moments its cron expression names, in its time zone
(croniter, which also walks daylight-saving changes: a slot in a skipped hour runs at the first
moment after it, a repeated hour runs once). ``last_slot`` is the slot that fired last (or the
slot before the schedule was created or changed, so that neither fires at once); a slot after
it and not after now is due. However many slots were missed while no server ran, only the
latest one fires, once: :meth:`RetrainingScheduleRepository.mark_fired` moves ``last_slot``
with one conditional update, which exactly one caller wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from entity.base import from_iso, new_id, to_iso, utcnow
from entity.store import Collection

#: the longest time-zone name taken (the IANA names are far shorter)
MAX_ZONE_LENGTH = 64
MAX_CRON_LENGTH = 120
#: schedules per project
MAX_SCHEDULES = 20


def cron_problem(expression) -> str | None:
    """Why ``expression`` is not a five-field cron expression (minute, hour, day of month,
    month, day of week) or one of the ``@daily``-style nicknames, or None."""
    from croniter import croniter

    if not isinstance(expression, str) or not expression.strip():
        return "Give a cron expression, e.g. 0 3 * * * (every day at 03:00)."
    text = expression.strip()
    if len(text) > MAX_CRON_LENGTH:
        return f"A cron expression takes at most {MAX_CRON_LENGTH} characters."
    if not text.startswith("@") and len(text.split()) != 5:
        return (f"{text!r} is not a cron expression of five fields (minute hour day-of-month "
                "month day-of-week), e.g. 0 3 * * *.")
    try:
        valid = croniter.is_valid(text)
    except Exception:  # noqa: BLE001 - croniter's own errors are the verdict
        valid = False
    if not valid:
        return f"{text!r} is not a valid cron expression (e.g. 0 3 * * * or */15 * * * *)."
    return None


def zone_problem(name) -> str | None:
    """Why ``name`` is not a known IANA time zone (``Europe/Paris``, ``UTC``), or None."""
    if not isinstance(name, str) or not name.strip():
        return "Give a time zone, e.g. UTC or Europe/Paris."
    if len(name) > MAX_ZONE_LENGTH:
        return f"A time-zone name takes at most {MAX_ZONE_LENGTH} characters."
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"{name!r} is not a known time zone (use an IANA name such as Europe/Paris)."
    return None


def latest_slot(cron: str, timezone: str, now: datetime) -> datetime:
    """The latest moment at or before ``now`` that ``cron`` names in ``timezone`` (UTC)."""
    from croniter import croniter

    local = now.astimezone(ZoneInfo(timezone))
    previous = croniter(cron, local).get_prev(datetime)
    # croniter's get_prev is strictly before its start: a slot exactly at now counts as due.
    following = croniter(cron, previous).get_next(datetime)
    return (following if following <= local else previous).astimezone(UTC)


def next_slot(cron: str, timezone: str, now: datetime) -> datetime:
    """The first moment after ``now`` that ``cron`` names in ``timezone`` (UTC)."""
    from croniter import croniter

    local = now.astimezone(ZoneInfo(timezone))
    return croniter(cron, local).get_next(datetime).astimezone(UTC)


@dataclass
class RetrainingSchedule:
    """One schedule of a project: retrain at every slot of ``cron`` in ``timezone``."""

    project_id: str
    cron: str
    timezone: str = "UTC"
    enabled: bool = True
    description: str = ""
    created_by: str | None = None
    #: the slot that fired last (or the one before the schedule was made or changed)
    last_slot: datetime | None = None
    next_run_at: datetime | None = None
    last_fired_at: datetime | None = None
    last_execution_id: str | None = None
    #: why the last due slot started nothing (an execution was active...), or None
    last_outcome: str | None = None
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def reset_slots(self, now: datetime) -> None:
        """After creation or a change of cron or zone: the slots up to ``now`` count as past,
        and the next run is recomputed in the (new) zone."""
        self.last_slot = latest_slot(self.cron, self.timezone, now)
        self.next_run_at = next_slot(self.cron, self.timezone, now)

    def due_slot(self, now: datetime) -> datetime | None:
        """The slot to fire now (the latest one not after ``now``) if it is after
        ``last_slot``, else None."""
        slot = latest_slot(self.cron, self.timezone, now)
        if self.last_slot is not None and slot <= self.last_slot:
            return None
        return slot

    def to_document(self) -> dict:
        return {"_id": self.id, "project_id": self.project_id, "cron": self.cron,
                "timezone": self.timezone, "enabled": self.enabled,
                "description": self.description, "created_by": self.created_by,
                "last_slot": to_iso(self.last_slot), "next_run_at": to_iso(self.next_run_at),
                "last_fired_at": to_iso(self.last_fired_at),
                "last_execution_id": self.last_execution_id,
                "last_outcome": self.last_outcome,
                "created_at": to_iso(self.created_at), "updated_at": to_iso(self.updated_at)}

    @classmethod
    def from_document(cls, doc: dict) -> RetrainingSchedule:
        times = ("last_slot", "next_run_at", "last_fired_at", "created_at", "updated_at")
        fields = {k: v for k, v in doc.items() if k != "_id" and k not in times}
        return cls(id=doc["_id"], **fields, **{k: from_iso(doc.get(k)) for k in times})

    def to_public(self) -> dict:
        doc = self.to_document()
        doc["id"] = doc.pop("_id")
        return doc


class RetrainingScheduleRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["project_id"])
        self.collection.ensure_index(["enabled"])

    def add(self, schedule: RetrainingSchedule) -> RetrainingSchedule:
        self.collection.insert(schedule.to_document())
        return schedule

    def get(self, schedule_id: str) -> RetrainingSchedule | None:
        doc = self.collection.get(schedule_id)
        return RetrainingSchedule.from_document(doc) if doc else None

    def list_for_project(self, project_id: str) -> list[RetrainingSchedule]:
        docs = self.collection.find({"project_id": project_id}, sort=[("created_at", 1)])
        return [RetrainingSchedule.from_document(d) for d in docs]

    def count_for_project(self, project_id: str) -> int:
        return self.collection.count({"project_id": project_id})

    def list_enabled(self) -> list[RetrainingSchedule]:
        docs = self.collection.find({"enabled": True}, sort=[("created_at", 1)])
        return [RetrainingSchedule.from_document(d) for d in docs]

    def save(self, schedule: RetrainingSchedule) -> None:
        """Store a changed schedule (its cron, zone, switch, description and slots)."""
        schedule.updated_at = utcnow()
        doc = schedule.to_document()
        doc.pop("_id")
        self.collection.update_one({"_id": schedule.id}, doc)

    def mark_fired(self, schedule: RetrainingSchedule, slot: datetime, now: datetime) -> bool:
        """Take ``slot`` of ``schedule``: True for exactly one caller, in any process, and only
        while the stored ``last_slot`` is still the one ``schedule`` was read with (so a slot
        fires once, and a schedule changed meanwhile does not fire on its old rules)."""
        return self.collection.update_one(
            {"_id": schedule.id, "last_slot": to_iso(schedule.last_slot),
             "cron": schedule.cron, "timezone": schedule.timezone, "enabled": True},
            {"last_slot": to_iso(slot), "last_fired_at": to_iso(now),
             "next_run_at": to_iso(next_slot(schedule.cron, schedule.timezone, now))})

    def record_outcome(self, schedule_id: str, *, execution_id: str | None,
                       outcome: str | None) -> None:
        """What the slot just fired started (an execution), or why it started nothing."""
        self.collection.update_one({"_id": schedule_id}, {"last_execution_id": execution_id,
                                                          "last_outcome": outcome})

    def delete(self, schedule_id: str) -> bool:
        return self.collection.delete_many({"_id": schedule_id}) == 1

    def delete_for_project(self, project_id: str) -> int:
        return self.collection.delete_many({"project_id": project_id})
