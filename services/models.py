"""The versions of a project's model: read, compare, promote, roll back, delete."""

from __future__ import annotations

from entity.model_version import ModelVersion
from entity.project import Project
from exception_layer import Conflict, NotFound
from project_library.model_artifacts import verify_version_files
from services.context import Context


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
