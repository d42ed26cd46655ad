"""Registering a trained model version and deciding whether it becomes the active one."""

from __future__ import annotations

from datetime import datetime, timedelta

from entity.base import to_iso, utcnow
from entity.catalog import refresh_listings
from entity.database import Database
from entity.execution import Execution
from entity.model_version import ModelVersion
from entity.project import Project, lower_is_better
from entity.security import AuditEvent
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
        problem_type=project.problem_type, origin=result.get("origin", {}))
    db.model_versions.add(version)
    db.projects.set_versions(project.id, next_version=number + 1)
    return version


# -- champion and challenger ---------------------------------------------------------------

#: the promotion policies of a project (``ProjectSettings.promotion_policy``)
POLICIES = ("auto", "manual")
#: days of labeled predictions a challenger is compared on, by default
DEFAULT_WINDOW_DAYS = 30


def challenger_payload(db: Database, project: Project, now: datetime | None = None) -> dict:
    """What a training's worker needs to compare its model with the active one: the champion's
    registry entry and the project's labeled predictions of the comparison window (newest
    first, at most ``challenger.MAX_FEEDBACK_ROWS``). Empty when nothing is active."""
    from project_library.challenger import MAX_FEEDBACK_ROWS

    current = db.projects.get(project.id) or project
    if current.active_version is None:
        return {}
    champion = db.model_versions.get(project.id, current.active_version)
    if champion is None:
        return {}
    days = int(current.settings.get("comparison_window_days") or DEFAULT_WINDOW_DAYS)
    since = (now or utcnow()) - timedelta(days=days)
    records = db.prediction_records.find(project.id, labeled=True, since=since,
                                         limit=MAX_FEEDBACK_ROWS, newest_first=True)
    return {"champion": champion.to_document(), "comparison_window_days": days,
            "feedback": [{"_id": r["_id"], "inputs": r.get("inputs") or {},
                          "actual": r.get("actual")} for r in records]}


def _better_by(new: float | None, old: float | None, metric: str, margin: float) -> bool:
    """``new`` beats ``old`` on ``metric`` by at least ``margin`` (a tie wins at margin 0)."""
    if new is None or old is None:
        return new is not None
    return new <= old - margin if lower_is_better(metric) else new >= old + margin


def _words(source: str, rows: int | None, days: int | None) -> str:
    if source == "feedback":
        return f"the same {rows} labeled predictions of the last {days} days"
    if source == "holdout":
        return f"the same {rows} held-out training rows (no feedback labels yet)"
    return "each version's own held-out rows (the comparison on the same rows failed)"


def judge(project: Project, version: ModelVersion, champion: ModelVersion,
          comparison: dict | None, *, window_days: int | None = None) -> dict:
    """The decision on challenger ``version`` against ``champion``: ``{"status": "promoted" |
    "refused" | "pending", "policy", "metric", "margin", "champion_version",
    "champion_value", "challenger_value", "better", "source", "rows", "rows_sha256",
    "reason", "decided_at", "comparison"}``. Under the ``manual`` policy every challenger
    waits for a person (``better`` says what the numbers recommend)."""
    metric = project.selection_metric
    policy = project.settings.get("promotion_policy") or "auto"
    margin = float(project.settings.get("promotion_margin") or 0.0)
    usable = (comparison and not comparison.get("error")
              and (comparison.get("champion") or {}).get("version") == champion.version)
    if usable:
        source, rows = comparison["source"], comparison.get("rows")
        new = metric_value(comparison["challenger"].get("metrics") or {}, metric)
        old = metric_value(comparison["champion"].get("metrics") or {}, metric)
    else:
        source, rows = "training_metrics", None
        new, old = metric_value(version.metrics, metric), metric_value(champion.metrics, metric)
    better = _better_by(new, old, metric, margin)
    status = "pending" if policy == "manual" else ("promoted" if better else "refused")

    def shown(value):
        return "none" if value is None else f"{value:.4g}"
    numbers = (f"v{version.version} scores {metric} {shown(new)} against the active "
               f"v{champion.version}'s {shown(old)} on {_words(source, rows, window_days)}")
    need = f" (by at least {margin:g})" if margin else ""
    if status == "promoted":
        reason = f"{numbers}: better{need}, promoted automatically."
    elif status == "refused":
        reason = f"{numbers}: not better{need}; v{champion.version} stays active."
    else:
        reason = (f"{numbers}: {'better' if better else 'not better'}{need}; waiting for a "
                  "person's approval (manual promotion policy).")
    if comparison and comparison.get("error"):
        reason += f" The comparison on the same rows failed: {comparison['error']}"
    return {"status": status, "policy": policy, "metric": metric, "margin": margin,
            "champion_version": champion.version, "champion_value": old,
            "challenger_value": new, "better": better, "source": source, "rows": rows,
            "rows_sha256": (comparison or {}).get("rows_sha256") if usable else None,
            "window_days": window_days if source == "feedback" else None,
            "reason": reason, "decided_at": to_iso(utcnow()),
            "comparison": comparison or {}}


def record_decision(db: Database, project: Project, number: int, challenge: dict, *,
                    actor=None, address: str | None = None) -> None:
    """Store a challenger's decision on its version and in the audit log
    (``model.challenger.<status>``, with its numbers and reason)."""
    db.model_versions.set_challenge(project.id, number, challenge)
    db.audit.add(AuditEvent(
        action=f"model.challenger.{challenge['status']}", actor_id=getattr(actor, "id", None),
        actor_email=getattr(actor, "email", None), target=project.slug, address=address,
        details={"version": number, "champion": challenge.get("champion_version"),
                 "metric": challenge.get("metric"),
                 "challenger_value": challenge.get("challenger_value"),
                 "champion_value": challenge.get("champion_value"),
                 "source": challenge.get("source"), "rows": challenge.get("rows"),
                 "reason": challenge.get("reason")}))


def promote_if_better(db: Database, project: Project, result: dict,
                      logger: ExecutionLogger) -> dict:
    """Decide what the new version (``result["version"]``) becomes: the active model when
    there is none yet; otherwise a challenger of the active one, judged by :func:`judge` on
    the comparison the worker made (``result["comparison"]``) and the project's promotion
    policy. The decision is recorded on the version, in the audit log and in the result
    (``promoted``, ``challenge``), which the training's mail reports. Returns the result."""
    number = result["version"]
    version = db.model_versions.get(project.id, number)
    current = db.projects.get(project.id)
    active = (db.model_versions.get(project.id, current.active_version)
              if current.active_version else None)
    if active is None:
        db.projects.set_versions(project.id, active_version=number)
        refresh_listings(db, project.id)  # catalog listings that follow the active version
        logger.log(f"Model v{number} ({version.algorithm}) is now the active model.",
                   stage="saving")
        return {**result, "promoted": True}
    comparison = result.get("comparison")
    challenge = judge(current, version, active, comparison,
                      window_days=(comparison or {}).get("window_days"))
    promoted = challenge["status"] == "promoted"
    if promoted:
        db.projects.set_versions(project.id, active_version=number)
    record_decision(db, current, number, challenge)
    logger.log(challenge["reason"], stage="saving",
               level="INFO" if challenge["status"] != "refused" else "WARNING")
    return {**result, "promoted": promoted, "challenge": _summary(challenge)}


def _summary(challenge: dict) -> dict:
    """The decision without the full comparison (the execution's result keeps it short)."""
    return {k: v for k, v in challenge.items() if k != "comparison"}
