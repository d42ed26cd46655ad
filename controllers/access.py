"""The access checks of ``services.access`` for the logged-in user of this request."""

from __future__ import annotations

from controllers.services import context
from entity.project import Project
from services import access


def require_user():
    """The logged-in user, or :class:`Unauthenticated`."""
    return access.require_user(context())


def require_admin():
    """The logged-in user if an admin; else Unauthenticated or AccessDenied."""
    return access.require_admin(context())


def load_project(*, slug: str | None = None, project_id: str | None = None,
                 need: str = "viewer") -> Project:
    """The project if the logged-in user holds ``need`` on it (see services.access)."""
    return access.load_project(context(), slug=slug, project_id=project_id, need=need)


def visible_projects() -> list[Project]:
    """The projects the logged-in user may see."""
    return access.visible_projects(context())
