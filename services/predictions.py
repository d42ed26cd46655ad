"""Real-time predictions with a project's trained model, and their usage counters."""

from __future__ import annotations

from contextlib import AbstractContextManager

from entity.project import Project
from exception_layer import BadRequest
from services.context import Context


def turn(ctx: Context, size: int | None) -> AbstractContextManager:
    """Wait for this request's turn at the model server (small requests: in arrival order)."""
    return ctx.platform.model_server.turn(size)


def predict(ctx: Context, project: Project, data, received_at: float) -> dict:
    """Predict ``data``: ``{"records": [...], "version": N}`` or a bare list of records.

    Raises:
        BadRequest: the body has neither shape, or a version that is not a whole number.
        ValidationFailed: records the schema refuses. Conflict: no model to predict with.
    """
    version = None
    if isinstance(data, dict):
        version = data.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise BadRequest("version must be a whole number.")
        data = data.get("records")
    elif not isinstance(data, list):
        raise BadRequest('The body must be {"records": [...]} or a list of records '
                         "(Content-Type: application/json).")
    return ctx.platform.model_server.predict(project, data, version, received_at)


def usage(ctx: Context, project: Project) -> dict:
    """Prediction counters per model version (keys as text), from every web process."""
    return {str(k): v for k, v in ctx.platform.model_server.usage(project.id).items()}
