"""Who may see and do what: every page, API call and Socket.IO room goes through here."""

from __future__ import annotations

from flask_login import current_user

from controllers.services import services
from entity.project import Project
from exception_layer import AccessDenied, NotFound, Unauthenticated


def require_user():
    """The logged-in user, or :class:`Unauthenticated`."""
    if not current_user.is_authenticated:
        raise Unauthenticated()
    return current_user._get_current_object()


def require_admin():
    user = require_user()
    if not user.is_admin:
        raise AccessDenied("Only administrators may do this.")
    return user


def load_project(*, slug: str | None = None, project_id: str | None = None,
                 need: str = "viewer") -> Project:
    """The project named by ``slug`` or ``project_id`` if the current user holds ``need``.

    Raises:
        NotFound: no such project, or the user may not see it (a hidden project looks absent).
        AccessDenied: the user may see the project but lacks ``need``.
    """
    user = require_user()
    db = services().db
    project = db.projects.get_by_slug(slug) if slug is not None else db.projects.get(project_id)
    if project is None or project.role_of(user) is None:
        raise NotFound("No such project.")
    if not project.has_role(user, need):
        raise AccessDenied(f"You need the {need} role on this project to do this.")
    return project


def visible_projects() -> list[Project]:
    user = require_user()
    return [p for p in services().db.projects.list() if p.role_of(user) is not None]
