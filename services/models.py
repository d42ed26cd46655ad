"""The versions of a project's model: read, compare, promote, roll back, delete."""

from __future__ import annotations

import uuid

from entity.base import utcnow
from entity.catalog import refresh_listings
from entity.execution import Execution
from entity.model_version import ModelVersion
from entity.project import Project
from exception_layer import Conflict, NotFound, ValidationFailed
from integration.file_manager import check_path
from project_library.imported_models import format_of, untrusted_types
from project_library.model_artifacts import verify_version_files
from services import executions
from services.context import Context
from services.files import Upload
from thread_layer.kinds.model_import import IMPORTS, MAX_MODEL_BYTES


def list_for_project(ctx: Context, project: Project) -> list[ModelVersion]:
    """The project's model versions, newest first."""
    return ctx.db.model_versions.list_for_project(project.id)


def load(ctx: Context, project: Project, number) -> ModelVersion:
    """Version ``number`` (3 or "v3") of the project's model (NotFound otherwise)."""
    try:
        number = int(str(number).lstrip("v"))
    except ValueError:
        raise NotFound("No such model version.") from None
    version = ctx.db.model_versions.get(project.id, number)
    if version is None:
        raise NotFound(f"Model version v{number} does not exist.")
    return version


def promote(ctx: Context, project: Project, number) -> ModelVersion:
    """Make version ``number`` the one predictions use, once its files and their checksums
    are verified.

    Raises:
        NotFound: no such version. ArtifactIntegrityError (409): a file is missing or changed.
    """
    version = load(ctx, project, number)
    if version.challenge_status == "pending":  # promoting a waiting challenger approves it
        from services import challengers

        return challengers.approve(ctx, project, version.version)
    verify_version_files(ctx.platform.resolver.files(project), version)
    ctx.db.projects.set_versions(project.id, active_version=version.version)
    refresh_listings(ctx.db, project.id)  # listings following the active version
    ctx.audit("model.promote", project.slug, details={"version": version.version})
    return version


def rollback(ctx: Context, project: Project) -> ModelVersion:
    """Make the newest version older than the active one active again (verified as in
    :func:`promote`)."""
    if project.active_version is None:
        raise Conflict("There is no active model to roll back from.")
    older = [v for v in ctx.db.model_versions.list_for_project(project.id)
             if v.version < project.active_version]
    if not older:
        raise Conflict(f"v{project.active_version} is the oldest version; there is nothing to "
                       "roll back to.")
    target = older[0]
    verify_version_files(ctx.platform.resolver.files(project), target)
    ctx.db.projects.set_versions(project.id, active_version=target.version)
    refresh_listings(ctx.db, project.id)
    ctx.audit("model.rollback", project.slug, details={"from": project.active_version,
                                                    "to": target.version})
    return target


def delete(ctx: Context, project: Project, number) -> None:
    """Delete a model version and its files; the active one must be replaced first."""
    version = load(ctx, project, number)
    if version.version == project.active_version:
        raise Conflict("This is the active model: promote another version first.")
    if project.active_execution_id:
        raise Conflict("Model versions cannot be deleted while an execution runs.")
    if any(listing.pinned_version == version.version
           for listing in ctx.db.listings.for_project(project.id)):
        raise Conflict("A catalog listing pins this version: pin another one first.")
    ctx.platform.resolver.files(project).delete_folder(version.folder)
    ctx.db.model_versions.delete(project.id, version.version)
    ctx.platform.model_server.forget(project.id, version.version)
    ctx.audit("model.delete", project.slug, details={"version": version.version})


def compare(ctx: Context, project: Project, first, second) -> dict:
    """Two versions side by side: metrics (with the difference), algorithm, parameters,
    data."""
    a, b = load(ctx, project, first), load(ctx, project, second)
    names = [n for n in dict.fromkeys([*a.metrics, *b.metrics])
             if isinstance(a.metrics.get(n, 0), (int, float))
             and isinstance(b.metrics.get(n, 0), (int, float))]
    metrics = [{"name": n, "a": a.metrics.get(n), "b": b.metrics.get(n),
                "difference": (b.metrics[n] - a.metrics[n]
                               if isinstance(a.metrics.get(n), (int, float))
                               and isinstance(b.metrics.get(n), (int, float)) else None)}
               for n in names]
    return {"a": a.to_public(), "b": b.to_public(), "metrics": metrics}


def import_model(ctx: Context, project: Project, model: Upload | None,
                 sample: Upload | None = None, *, via: str = "api") -> Execution:
    """Bring in a model trained elsewhere: the skops file ``model`` (and a batch file
    ``sample`` to check it on; default: the training batch files) is stored under
    ``model_imports/`` and an ``import`` execution makes it a model version once it loaded
    safely and predicted right.

    Refused at once, with nothing stored: no file, a pickle or another format, a file over
    the size limit, one that is no skops file, and one naming types skops does not trust (the
    list is in ``details["untrusted_types"]``).

    Raises:
        ValidationFailed: as above (the field ``model`` or ``sample`` is named).
        ExecutionInProgress: the project runs an execution already.
    """
    if model is None:
        raise ValidationFailed("Please correct the marked fields.", details={
            "model": "Choose the skops file of the model to import."})
    format_of(model.filename, field="model")
    data = model.stream.read(MAX_MODEL_BYTES + 1)
    if len(data) > MAX_MODEL_BYTES:
        raise ValidationFailed("Please correct the marked fields.", details={
            "model": f"The largest model file is {MAX_MODEL_BYTES:,} bytes."})
    untrusted = untrusted_types(data, field="model")
    if untrusted:
        raise ValidationFailed(
            f"The model file holds {len(untrusted)} type(s) that are not trusted, so it was "
            "not imported.", details={
                "model": "Only scikit-learn, NumPy and SciPy types can be imported: "
                         + ", ".join(untrusted[:20]),
                "untrusted_types": untrusted})
    folder = f"{IMPORTS}{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}/"
    names = {"model": model.filename, **({"sample": sample.filename} if sample else {})}
    paths = {}
    for field, name in names.items():
        try:
            paths[field] = check_path(folder + name.rsplit("/", 1)[-1])
        except Exception:  # noqa: BLE001 - a name the file manager refuses
            raise ValidationFailed("Please correct the marked fields.", details={
                field: "This file name cannot be stored."}) from None
    files = ctx.platform.resolver.files(project)
    options = {"model_file": paths["model"]}
    try:
        files.upload_bytes(paths["model"], data)
        if sample is not None:
            files.upload(paths["sample"], sample.stream)
            options["sample_file"] = paths["sample"]
        return executions.start(ctx, project, "import", options, via=via)
    except BaseException:
        files.delete_folder(folder)
        raise
