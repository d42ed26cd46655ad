"""Storage move: copies every file of a project to another storage, then switches it there."""

from __future__ import annotations

import logging

from exception_layer import Conflict, ValidationFailed
from integration.project_roots import delete_project_files, root_refusal
from thread_layer.kinds import STORAGE_SWITCH, ExecutionKind, KindOption
from thread_layer.worker import project_files

log = logging.getLogger("trainyard.runner")


def parse_target(raw, db) -> str | None:
    """A storage connection id; "" or None means the platform's default storage."""
    target = str(raw or "") or None
    if target and db.storage_connections.get(target) is None:
        raise ValidationFailed("Please correct the marked fields.", details={
            "target_connection_id": "No such storage connection."})
    return target


def check(runner, project, options: dict) -> None:
    """Refuse a move to where the project already is, or to a folder that is not one it may
    own: not empty, or inside or around another project's root (its own current one
    included) or the default storage."""
    target = options.get("target_connection_id") or None
    options["target_connection_id"] = target
    if target == (project.storage_connection_id or None):
        raise Conflict("The project already lives on this storage.")
    refusal = root_refusal(runner.resolver, runner.db.projects.list(), target, project.slug)
    if refusal:
        raise Conflict(refusal)


def run(payload: dict, reporter) -> dict:
    """In the worker process: copy and verify every file."""
    from integration.project_transfer import copy_project_files

    return copy_project_files(project_files(payload),
                              project_files(payload, "target_uri", "target_credentials"),
                              reporter)


def payload(runner, execution, project) -> dict:
    uri, credentials = runner.resolver.location_of(execution.options.get("target_connection_id"))
    return {"target_uri": uri, "target_credentials": credentials}


def finalize(runner, execution, project, result: dict, logger) -> dict:
    """Switch the project to the new storage, then remove the old copy."""
    current = runner.db.projects.get(project.id)
    current.storage_connection_id = execution.options.get("target_connection_id")
    runner.db.projects.save(current)
    logger.log("The project now uses the new storage.", stage="copying")
    try:
        # only what lies under the old root alone (a root that overlapped another's, made
        # before roots were checked, keeps its files)
        removed = delete_project_files(runner.resolver, runner.db.projects.list(), project)
        logger.log(f"Removed {removed} files from the old storage.", stage="copying")
    except Exception as exc:  # noqa: BLE001 - the move itself succeeded
        logger.log(f"The old files could not all be removed ({type(exc).__name__}); "
                   "delete them from the old storage by hand.", stage="copying",
                   level="WARNING")
    target = execution.options.get("target_connection_id")
    connection = runner.db.storage_connections.get(target) if target else None
    return {**result, "target": connection.name if connection else "the default storage"}


def discard(runner, execution, project, logger) -> None:
    """Remove the partial copy; the project stays where it was."""
    try:
        target = execution.options.get("target_connection_id")
        removed = runner.resolver.files_at(target, project.slug).delete_all()
        logger.log(f"Removed the {removed} files copied so far; the project stays on its "
                   "old storage.", stage="copying", level="WARNING")
    except Exception:  # noqa: BLE001 - best effort cleanup
        log.exception("Could not clean up the partial copy of %s", project.slug)


def success_lines(result: dict) -> list[str]:
    return [f"Moved {result.get('files', 0)} files to {result.get('target')}."]


KIND = ExecutionKind(
    name="move", label="Storage move", run=run, role="owner",
    denied_message="Only owners may move a project to another storage.",
    options=(KindOption("target_connection_id", {"anyOf": [{"type": "string"}, {"type": "null"}]},
                        "move: the storage connection (empty: the default storage)",
                        parse=parse_target, keep_empty=True, storage_connection=True),),
    stages=("validating", "copying"), produces=STORAGE_SWITCH,
    check=check, payload=payload, finalize=finalize, discard=discard,
    success_lines=success_lines, direct_storage=True)
