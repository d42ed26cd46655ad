"""Who may see and do what: every page, API call and Socket.IO room goes through here."""

from __future__ import annotations

from entity.project import Project
from exception_layer import AccessDenied, NotFound, Unauthenticated
from services.context import Context


def require_user(ctx: Context):
    """The user acting, or :class:`Unauthenticated`."""
    if ctx.user is None:
        raise Unauthenticated()
    return ctx.user


def require_admin(ctx: Context):
    """The user acting if an administrator; raises Unauthenticated or AccessDenied."""
    user = require_user(ctx)
    if not user.is_admin:
        raise AccessDenied("Only administrators may do this.")
    return user


def load_project(ctx: Context, *, slug: str | None = None, project_id: str | None = None,
                 need: str = "viewer") -> Project:
    """The project named by ``slug`` or ``project_id`` if the user holds ``need``.

    Raises:
        Unauthenticated: nobody is logged in.
        NotFound: no such project, or the user may not see it (a hidden project looks absent).
        AccessDenied: the user may see the project but lacks ``need``.
    """
    user = require_user(ctx)
    db = ctx.db
    project = db.projects.get_by_slug(slug) if slug is not None else db.projects.get(project_id)
    if project is None or project.role_of(user) is None:
        raise NotFound("No such project.")
    if not project.has_role(user, need):
        raise AccessDenied(f"You need the {need} role on this project to do this.")
    return project


def visible_projects(ctx: Context) -> list[Project]:
    """The projects the user may see."""
    user = require_user(ctx)
    return [p for p in ctx.db.projects.list() if p.role_of(user) is not None]
