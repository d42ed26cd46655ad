"""Model import: a model trained elsewhere (a skops file in the project's files) becomes a
model version like a trained one, once it loaded safely and predicted the sample rows right
(project_library/imported_models.py)."""

from __future__ import annotations

from exception_layer import ValidationFailed
from integration.file_manager import MODELS, TRAINING, check_path
from thread_layer.kinds import MODEL_VERSION, ExecutionKind, KindOption
from thread_layer.kinds.train import discard, finalize, payload, success_lines
from thread_layer.worker import project_files

#: the largest model file an import reads (it is loaded into memory whole)
MAX_MODEL_BYTES = 512 * 1024 * 1024
#: where the API's one-call import stores the uploaded files
IMPORTS = "model_imports/"


def _project_path(field: str, *, folder_allowed: bool):
    def parse(raw, db) -> str:
        text = str(raw or "").strip().lstrip("/")
        try:
            path = check_path(text, folder=text.endswith("/") and folder_allowed)
        except Exception:  # noqa: BLE001 - any path the file manager refuses
            raise ValidationFailed("Please correct the marked fields.", details={
                field: "Not a path of the project's files."}) from None
        if not path or path.startswith(MODELS):
            raise ValidationFailed("Please correct the marked fields.", details={
                field: "Name a file of the project (not in models/)."})
        if path.endswith("/") and not folder_allowed:
            raise ValidationFailed("Please correct the marked fields.", details={
                field: "Name a file, not a folder."})
        return path
    return parse


def check(runner, project, options: dict) -> None:
    """Refuse at once what needs no worker: a missing model file, a pickle, one too large."""
    from project_library.imported_models import format_of

    if "model_file" not in options:
        raise ValidationFailed("Please correct the marked fields.", details={
            "model_file": "Name the model file to import (a skops file in the project's "
                          "files)."})
    format_of(options["model_file"])
    files = runner.resolver.files(project)
    try:
        size = files.stat(options["model_file"]).size
    except Exception:  # noqa: BLE001 - missing, or a storage that cannot tell
        raise ValidationFailed("Please correct the marked fields.", details={
            "model_file": f"{options['model_file']} is not in the project's files."}) from None
    if size > MAX_MODEL_BYTES:
        raise ValidationFailed("Please correct the marked fields.", details={
            "model_file": f"It is {size:,} bytes; the largest model file is "
                          f"{MAX_MODEL_BYTES:,}."})
    options.setdefault("sample_file", TRAINING)


def run(payload: dict, reporter) -> dict:
    """In the worker process: load, check and save model version ``payload["version"]``."""
    from entity.project import Project
    from project_library.imported_models import import_version

    options = payload["options"]
    return import_version(project_files(payload), project=Project.from_document(
        payload["project"]), version=payload["version"], model_path=options["model_file"],
        sample_path=options.get("sample_file") or TRAINING, reporter=reporter)


def promote_if_first(db, project, result: dict, logger) -> dict:
    """An imported version becomes the one predictions use only when the project has none:
    its metrics come from sample rows, not from a held-out part, so they do not compare with
    a trained version's. Otherwise a person promotes it on its page."""
    current = db.projects.get(project.id)
    promoted = current.active_version is None
    if promoted:
        db.projects.set_versions(project.id, active_version=result["version"])
        logger.log(f"Model v{result['version']} ({result.get('algorithm')}) is now the active "
                   "model.", stage="saving")
    else:
        logger.log(f"Model v{result['version']} is imported; v{current.active_version} stays "
                   f"active (promote v{result['version']} on its page to use it).",
                   stage="saving")
    return {**result, "promoted": promoted}


def staged(payload: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """In the sandbox it reads the uploaded model and its sample rows, and writes its version."""
    options = payload["options"]
    return ((options["model_file"], options.get("sample_file") or TRAINING),
            (f"models/v{payload['version']}/",))


KIND = ExecutionKind(
    name="import", label="Model import", run=run,
    options=(KindOption("model_file", {"type": "string"},
                        "import: the skops file in the project's files",
                        parse=_project_path("model_file", folder_allowed=False)),
             KindOption("sample_file", {"type": "string"},
                        "import: a batch file or folder to check it on (default: the "
                        "training batch files)",
                        parse=_project_path("sample_file", folder_allowed=True))),
    stages=("validating", "evaluating", "saving"), produces=MODEL_VERSION,
    promote=promote_if_first, check=check, payload=payload, finalize=finalize, discard=discard,
    success_lines=success_lines, staged=staged)
