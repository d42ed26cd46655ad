"""Training: searches models on the training batch files and saves a new model version."""

from __future__ import annotations

import contextlib

from integration.file_manager import TRAINING
from thread_layer import promotion
from thread_layer.kinds import MODEL_VERSION, ExecutionKind
from thread_layer.worker import project_files


def run(payload: dict, reporter) -> dict:
    """In the worker process: train and save model version ``payload["version"]``."""
    from entity.project import Project
    from project_library.training import train_project

    project = Project.from_document(payload["project"])
    return train_project(project_files(payload), project=project,
                         execution_id=payload["execution_id"], version=payload["version"],
                         reporter=reporter, candidates=project.algorithms or None)


def payload(runner, execution, project) -> dict:
    """Reserve the next version number (on the execution, so a failure can clean it up)."""
    runner.db.executions.update(execution.id, result={"version": project.next_version})
    return {"version": project.next_version}


def finalize(runner, execution, project, result: dict, logger) -> dict:
    version = promotion.register_version(runner.db, execution, project, result)
    return {"version": version.version, "algorithm": version.algorithm,
            "metrics": version.metrics, "validation": result.get("validation", [])}


def discard(runner, execution, project, logger) -> None:
    """Remove the files of a version that was never registered."""
    number = (runner.db.executions.get(execution.id).result or {}).get("version")
    if number and runner.db.model_versions.get(project.id, number) is None:
        with contextlib.suppress(Exception):
            runner.resolver.files(project).delete_folder(f"models/v{number}/")


def success_lines(result: dict) -> list[str]:
    lines: list[str] = []
    if result.get("version"):
        lines.append(f"Model version: v{result['version']} ({result.get('algorithm')})")
    for name, value in (result.get("metrics") or {}).items():
        if isinstance(value, (int, float)):
            lines.append(f"  {name}: {value:.4g}")
    return lines


KIND = ExecutionKind(
    name="train", label="Training", run=run, needs_folder=TRAINING,
    stages=("validating", "loading", "preprocessing", "training", "evaluating", "saving"),
    produces=MODEL_VERSION, promote=promotion.promote_if_better,
    button="Train", button_class="btn-primary",
    payload=payload, finalize=finalize, discard=discard, success_lines=success_lines)
