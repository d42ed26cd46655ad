"""Training: searches models on the training batch files and saves a new model version."""

from __future__ import annotations

import contextlib

from integration.file_manager import TRAINING
from thread_layer import promotion
from thread_layer.kinds import MODEL_VERSION, ExecutionKind
from thread_layer.worker import project_files


def run(payload: dict, reporter) -> dict:
    """In the worker process: train and save model version ``payload["version"]``; with a
    champion in the payload, compare the new model with it on the same rows."""
    from entity.project import Project
    from project_library.training import train_project

    project = Project.from_document(payload["project"])
    files = project_files(payload)
    challenge = None
    if payload.get("champion"):
        def challenge(data, model) -> dict:
            return _compare(payload, files, project, data, model, reporter)
    return train_project(files, project=project, execution_id=payload["execution_id"],
                         version=payload["version"], reporter=reporter,
                         candidates=project.algorithms or None, challenge=challenge,
                         feedback_rows=payload.get("feedback_rows"))


def _compare(payload: dict, files, project, data, model, reporter) -> dict:
    """The champion/challenger comparison (``project_library.challenger``), logged."""
    from entity.model_version import ModelVersion
    from project_library import challenger

    champion = ModelVersion.from_document(payload["champion"])
    comparison = challenger.compare(
        files=files, champion=champion, challenger_model=model,
        challenger_schema=project.schema, problem_type=project.problem_type,
        feedback=payload.get("feedback") or [], holdout=(data.X_test, data.y_test),
        y_train=data.y_train)
    comparison["window_days"] = payload.get("comparison_window_days")
    if comparison.get("error"):
        reporter.log(f"Could not score the active v{champion.version} on the same rows: "
                     f"{comparison['error']}", stage="evaluating", level="WARNING")
    else:
        where = ("labeled predictions" if comparison["source"] == "feedback"
                 else "held-out training rows")
        reporter.log(f"Compared with the active v{champion.version} on the same "
                     f"{comparison['rows']} {where}.", stage="evaluating")
    return comparison


def payload(runner, execution, project) -> dict:
    """Reserve the next version number (on the execution, so a failure can clean it up), and
    hand the worker the champion and the labeled rows to compare the new model on; with the
    project's ``train_on_feedback``, also the labeled prediction records to add to the
    training data (the worker has no database)."""
    runner.db.executions.update(execution.id, result={"version": project.next_version})
    extra: dict = {}
    if project.settings.get("train_on_feedback") and project.schema.target:
        from project_library.feedback import feedback_rows

        extra["feedback_rows"] = feedback_rows(runner.db.prediction_records, project.id,
                                               project.schema.target)
    return {"version": project.next_version,
            **promotion.challenger_payload(runner.db, project), **extra}


def finalize(runner, execution, project, result: dict, logger) -> dict:
    version = promotion.register_version(runner.db, execution, project, result)
    kept = {"version": version.version, "algorithm": version.algorithm,
            "metrics": version.metrics, "validation": result.get("validation", []),
            "column_warnings": result.get("column_warnings", [])}
    if "comparison" in result:
        kept["comparison"] = result["comparison"]
    return kept


def discard(runner, execution, project, logger) -> None:
    """Remove the files of a version that was never registered."""
    number = (runner.db.executions.get(execution.id).result or {}).get("version")
    if number and runner.db.model_versions.get(project.id, number) is None:
        with contextlib.suppress(Exception):
            runner.resolver.files(project).delete_folder(f"models/v{number}/")


def staged(payload: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """It reads the active version (the challenger comparison); it archives the training files
    (bad ones move out) and saves a version."""
    active = payload["project"].get("active_version")
    return ((f"models/v{active}/",) if active else ()), (TRAINING, f"models/v{payload['version']}/",
                f"archive/{payload['execution_id']}/")


def success_lines(result: dict) -> list[str]:
    lines: list[str] = []
    if result.get("version"):
        lines.append(f"Model version: v{result['version']} ({result.get('algorithm')})")
    challenge = result.get("challenge")
    if challenge:
        outcome = {"promoted": "promoted: it is now the active model",
                   "refused": "refused: the active model stays",
                   "pending": "waiting for approval on the project's Retraining page"}
        lines.append(f"Challenger {outcome.get(challenge.get('status'), challenge.get('status'))}.")
        lines.append(challenge.get("reason", ""))
    for name, value in (result.get("metrics") or {}).items():
        if isinstance(value, (int, float)):
            lines.append(f"  {name}: {value:.4g}")
    return lines


KIND = ExecutionKind(
    name="train", label="Training", run=run, needs_folder=TRAINING,
    stages=("validating", "loading", "preprocessing", "training", "evaluating", "saving"),
    produces=MODEL_VERSION, promote=promotion.promote_if_better,
    button="Train", button_class="btn-primary",
    payload=payload, finalize=finalize, discard=discard, success_lines=success_lines,
    staged=staged)
