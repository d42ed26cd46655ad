"""Taking in ground-truth labels, wherever they come from, and retraining when enough arrived.

:func:`record_labels` is the one way labels reach the prediction records: the API (and so the
client and the CLI) and the ``feedback`` execution kind (files of the ``feedback/`` folder) both
call it. After it keeps labels, it counts the project's rows labeled since its newest model
version was trained; when the count reaches the project's ``retrain_after_labels``, it asks
:func:`thread_layer.triggers.start_retraining` for a retraining (which declines when the project
is busy or the setting is off).
"""

from __future__ import annotations

import logging

from entity.database import Database
from entity.project import Project
from exception_layer import ValidationFailed
from project_library.feedback import JoinResult, join_labels
from thread_layer import triggers

log = logging.getLogger("trainyard.feedback")


def target_column(project: Project):
    """The project's target column (what a label gives).

    Raises:
        ValidationFailed: the project has no target column.
    """
    spec = project.schema.column(project.schema.target) if project.schema.target else None
    if spec is None:
        raise ValidationFailed("This project has no target column to give labels for.",
                               details={"actual": "the project's schema has no target"})
    return spec


def labels_since_training(db: Database, project: Project) -> int:
    """How many of the project's rows were labeled since its newest model version."""
    versions = db.model_versions.list_for_project(project.id)
    newest = max((v.created_at for v in versions), default=None)
    if newest is None:
        return db.prediction_records.count(project.id, labeled=True)
    return db.prediction_records.count(project.id, labeled_since=newest)


def record_labels(db: Database, runner, project: Project, labels: list[tuple]) -> JoinResult:
    """Join ``labels`` (``(row, prediction_id, actual)``) to the project's prediction records
    (:func:`project_library.feedback.join_labels`), then start a retraining if the new labels
    reach the project's threshold. ``runner``: the execution runner (None: never retrain)."""
    result = join_labels(db.prediction_records, project.id, target_column(project), labels)
    if result.accepted:
        maybe_retrain(db, runner, project)
    return result


def maybe_retrain(db: Database, runner, project: Project):
    """Start a retraining when the rows labeled since the last training reach
    ``retrain_after_labels``; returns the execution, or None."""
    threshold = project.settings.get(triggers.LABELS_SETTING)
    if not threshold or runner is None:
        return None
    count = labels_since_training(db, project)
    if count < threshold:
        return None
    try:
        return triggers.start_retraining(
            db, runner, project, trigger="labels",
            reason=f"{count} new labeled rows since the last training (threshold {threshold})",
            detail={"labels": count, "threshold": threshold})
    except Exception:  # noqa: BLE001 - labels are kept whatever the retraining does
        log.warning("Could not start the retraining of %s on new labels", project.slug,
                    exc_info=True)
        return None
