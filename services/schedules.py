"""Retraining schedules of a project: list, create, change, delete (the scheduler that fires
them is ``thread_layer.scheduler``)."""

from __future__ import annotations

from entity.base import utcnow
from entity.project import Project
from entity.retraining_schedule import (
    MAX_SCHEDULES,
    RetrainingSchedule,
    cron_problem,
    zone_problem,
)
from exception_layer import Conflict, NotFound, ValidationFailed
from services.context import Context
from services.resources import ScheduleInput, parse


def list_for_project(ctx: Context, project: Project) -> list[RetrainingSchedule]:
    """The project's schedules, oldest first."""
    return ctx.db.retraining_schedules.list_for_project(project.id)


def load(ctx: Context, project: Project, schedule_id: str) -> RetrainingSchedule:
    """The schedule ``schedule_id`` of ``project`` (NotFound otherwise)."""
    schedule = ctx.db.retraining_schedules.get(schedule_id)
    if schedule is None or schedule.project_id != project.id:
        raise NotFound("No such schedule.")
    return schedule


def _fields(data, *, creating: bool, strict: bool) -> dict:
    """The fields of a schedule body, each checked; ValidationFailed names every wrong one."""
    body = parse(ScheduleInput, data, strict=strict)
    given = {name: getattr(body, name) for name in body.model_fields_set
             if getattr(body, name) is not None}
    if creating:
        given.setdefault("timezone", "UTC")
        given.setdefault("enabled", True)
        given.setdefault("description", "")
    errors: dict[str, str] = {}
    if creating or "cron" in given:
        if problem := cron_problem(given.get("cron")):
            errors["cron"] = problem
        else:
            given["cron"] = " ".join(given["cron"].split())
    if "timezone" in given and (problem := zone_problem(given["timezone"])):
        errors["timezone"] = problem
    if errors:
        raise ValidationFailed("Please correct the marked fields.", details=errors)
    return given


def create(ctx: Context, project: Project, data, *, strict: bool = True) -> RetrainingSchedule:
    """Add a schedule from ``data`` (``cron``, ``timezone``, ``enabled``, ``description``).
    Slots up to now count as past: a new schedule first fires at its next slot.

    Raises:
        ValidationFailed: an invalid cron expression or unknown time zone (the field is named);
            nothing is stored.
        Conflict: the project has the most schedules allowed.
    """
    fields = _fields(data, creating=True, strict=strict)
    if ctx.db.retraining_schedules.count_for_project(project.id) >= MAX_SCHEDULES:
        raise Conflict(f"A project has at most {MAX_SCHEDULES} schedules.")
    schedule = RetrainingSchedule(project_id=project.id, created_by=getattr(ctx.user, "id", None),
                                  **fields)
    schedule.reset_slots(utcnow())
    ctx.db.retraining_schedules.add(schedule)
    ctx.audit("schedule.create", project.slug, details={
        "schedule": schedule.id, "cron": schedule.cron, "timezone": schedule.timezone})
    return schedule


def update(ctx: Context, project: Project, schedule: RetrainingSchedule, data, *,
           strict: bool = True) -> RetrainingSchedule:
    """Change a schedule's fields. A new cron expression or time zone recomputes its next run
    (and the slots up to now count as past under the new rule); turning it on again does too,
    so the slots it slept through do not fire.

    Raises:
        ValidationFailed: as for :func:`create`; nothing changes.
    """
    fields = _fields(data, creating=False, strict=strict)
    rule_changed = any(fields.get(name, getattr(schedule, name)) != getattr(schedule, name)
                       for name in ("cron", "timezone"))
    woken = fields.get("enabled") is True and not schedule.enabled
    for name, value in fields.items():
        setattr(schedule, name, value)
    if rule_changed or woken:
        schedule.reset_slots(utcnow())
    ctx.db.retraining_schedules.save(schedule)
    ctx.audit("schedule.update", project.slug, details={"schedule": schedule.id,
                                                        "fields": sorted(fields)})
    return schedule


def delete(ctx: Context, project: Project, schedule: RetrainingSchedule) -> None:
    """Delete a schedule (a training it started goes on)."""
    ctx.db.retraining_schedules.delete(schedule.id)
    ctx.audit("schedule.delete", project.slug, details={"schedule": schedule.id})
