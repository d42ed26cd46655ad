"""Retraining started by the platform itself: by a project's schedule, by an alert, by enough
new feedback labels.

:func:`start_retraining` is the one way in for all of them (the scheduler, the monitor's
incidents, the feedback counter): it records on the execution who or what started it and why
(``Execution.trigger``), audits it, and declines (returns None) when the project should not
retrain now, so callers never need to know the rules. A person's click goes through
``services.executions.start`` instead and records ``{"by": "user"}``.
"""

from __future__ import annotations

import logging

from entity.database import Database
from entity.execution import TRIGGERS, Execution
from entity.project import Project
from entity.security import AuditEvent
from exception_layer import ExecutionInProgress

log = logging.getLogger("trainyard.triggers")

#: the kind every trigger starts
RETRAIN_KIND = "train"
#: the project setting that turns retraining on new labels on (a count of labeled rows)
LABELS_SETTING = "retrain_after_labels"
#: the project setting that lets alerts retrain (monitor's rules may ask for it as well)
ALERT_SETTING = "retrain_on_alert"


def trigger_record(trigger: str, reason: str, detail: dict | None = None) -> dict:
    """The ``trigger`` stored on an execution: ``{"by": trigger, "reason": reason, **detail}``
    (``detail`` cannot override ``by`` or ``reason``).

    Raises:
        ValueError: ``trigger`` is not one of :data:`entity.execution.TRIGGERS`.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"Unknown trigger {trigger!r}; use one of {', '.join(TRIGGERS)}.")
    return {**(detail or {}), "by": trigger, "reason": str(reason)}


def allowed(project: Project, trigger: str) -> str | None:
    """Why ``project``'s policy declines a retraining by ``trigger`` now, or None if it allows
    it. A schedule's own switch is its ``enabled`` flag (checked by the scheduler); labels need
    ``retrain_after_labels``; an alert is allowed unless ``retrain_on_alert`` is False (the
    alert rule that fires decides whether to ask)."""
    if project.schema.target is None:
        return "the project has no target column to learn"
    if trigger == "labels" and not project.settings.get(LABELS_SETTING):
        return "retraining on new labels is off"
    if trigger == "alert" and project.settings.get(ALERT_SETTING) is False:
        return "retraining on alerts is off"
    return None


def start_retraining(db: Database, runner, project: Project, *, trigger: str, reason: str,
                     detail: dict | None = None) -> Execution | None:
    """Queue a training of ``project`` started by ``trigger`` (``"schedule"``, ``"alert"``,
    ``"labels"`` or ``"user"``) for ``reason``, recording ``detail`` (e.g. the schedule's id and
    slot, the incident's id, the label count) in the execution's trigger.

    Returns:
        the queued execution, or None when the project does not retrain now: an execution is
        already active (it is not queued behind it: the next turn of the trigger retries), the
        project was deleted, or its policy has retraining on this trigger off. Each decline is
        logged with its reason.
    Raises:
        ValueError: an unknown trigger.
        Conflict and the runner's other refusals (e.g. no training files): the caller records
            them where the trigger is shown (a schedule's last error).
    """
    record = trigger_record(trigger, reason, detail)
    current = db.projects.get(project.id)
    if current is None:
        log.info("No %s retraining: project %s was deleted", trigger, project.id)
        return None
    why_not = allowed(current, trigger)
    if why_not is None and current.active_execution_id:
        holder = db.executions.get(current.active_execution_id)
        if holder is not None and holder.is_active:
            why_not = f"execution {holder.id} ({holder.kind}) is still active"
    if why_not is not None:
        log.info("No %s retraining of %s: %s", trigger, current.slug, why_not)
        return None
    try:
        execution = runner.submit(current, RETRAIN_KIND, None, {}, trigger=record)
    except ExecutionInProgress as busy:  # lost a race with another start
        log.info("No %s retraining of %s: %s", trigger, current.slug, busy.message)
        return None
    db.audit.add(AuditEvent(action=f"execution.{RETRAIN_KIND}", actor_id=None,
                            actor_email=None, target=current.slug,
                            details={"execution": execution.id, "trigger": record}))
    return execution
