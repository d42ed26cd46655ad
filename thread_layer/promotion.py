"""Registering a trained model version and deciding whether it becomes the active one."""

from __future__ import annotations

from entity.database import Database
from entity.execution import Execution
from entity.model_version import ModelVersion
from entity.project import Project, lower_is_better
from logging_layer.execution_logger import ExecutionLogger


def metric_value(metrics: dict, metric: str) -> float | None:
    """The value of the selection ``metric`` in a metrics dict (``f1`` means macro F1)."""
    for name in (metric, f"{metric}_macro"):
        value = metrics.get(name)
        if isinstance(value, (int, float)):
            return float(value)
    return None


def is_better(candidate: dict, incumbent: dict, metric: str) -> bool:
    """True if ``candidate`` metrics score at least as well as ``incumbent`` on ``metric``."""
    new, old = metric_value(candidate, metric), metric_value(incumbent, metric)
    if new is None or old is None:
        return new is not None
    return new <= old if lower_is_better(metric) else new >= old


def register_version(db: Database, execution: Execution, project: Project,
                     result: dict) -> ModelVersion:
    """Store the model version a training produced (its number was reserved at its start)."""
    number = db.executions.get(execution.id).result["version"]
    version = ModelVersion(
        project_id=project.id, version=number, execution_id=execution.id,
        algorithm=result["algorithm"], metrics=result.get("metrics", {}),
        leaderboard=result.get("leaderboard", []), params=result.get("params", {}),
        schema=result.get("schema", {}), data_fingerprint=result.get("data_fingerprint", {}),
        library_versions=result.get("library_versions", {}),
        artifacts=result.get("artifacts", {}), plots=result.get("plots", []),
        problem_type=project.problem_type)
    db.model_versions.add(version)
    db.projects.set_versions(project.id, next_version=number + 1)
    return version


def promote_if_better(db: Database, project: Project, result: dict,
                      logger: ExecutionLogger) -> dict:
    """Make the new version (``result["version"]``) active unless it scores worse than the
    active one on the project's selection metric; returns ``result`` with ``promoted``."""
    number = result["version"]
    version = db.model_versions.get(project.id, number)
    current = db.projects.get(project.id)
    active = (db.model_versions.get(project.id, current.active_version)
              if current.active_version else None)
    metric = project.selection_metric
    promoted = active is None or is_better(version.metrics, active.metrics, metric)
    if promoted:
        db.projects.set_versions(project.id, active_version=number)
        logger.log(f"Model v{number} ({version.algorithm}) is now the active model.",
                   stage="saving")
    else:
        logger.log(f"Model v{number} scores worse than the active v{active.version} on "
                   f"{metric}; v{active.version} stays active (promote v{number} on its "
                   f"page if you prefer it).", stage="saving", level="WARNING")
    return {**result, "promoted": promoted}
