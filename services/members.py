"""Who is on a project, with which role."""

from __future__ import annotations

from entity.project import PROJECT_ROLES, Project
from entity.user import normalise_email
from exception_layer import Conflict, NotFound, ValidationFailed
from services.context import Context


def list_members(ctx: Context, project: Project) -> list[dict]:
    """The project's creator and members with their roles."""
    db = ctx.db
    owner = db.users.get(project.owner_id)
    members = [{"user": owner.to_public(), "role": "owner", "creator": True}] if owner else []
    for user_id, role in sorted(project.members.items()):
        user = db.users.get(user_id)
        if user is not None:
            members.append({"user": user.to_public(), "role": role, "creator": False})
    return members


def set_member(ctx: Context, project: Project, email: str, role: str) -> dict:
    """Give the person with ``email`` a role on the project (owners only)."""
    if role not in PROJECT_ROLES:
        raise ValidationFailed("Please correct the marked fields.",
                               details={"role": f"Choose one of {', '.join(PROJECT_ROLES)}."})
    user = ctx.db.users.get_by_email(normalise_email(str(email or "")))
    if user is None:
        raise ValidationFailed("Please correct the marked fields.", details={
            "email": "No account has this e-mail address; an admin can invite them."})
    if user.id == project.owner_id:
        raise Conflict("The project's creator is always an owner.")
    previous = project.members.get(user.id)
    project.members[user.id] = role
    ctx.db.projects.save(project)
    ctx.platform.live.revoke(user.id, project.id)  # a changed role is checked again on join
    ctx.audit("project.member", project.slug, details={"user": user.email, "role": role,
                                                    "previous": previous})
    return {"user": user.to_public(), "role": role}


def remove_member(ctx: Context, project: Project, user_id: str) -> None:
    """Take the user ``user_id`` off the project (NotFound when not a member)."""
    if user_id not in project.members:
        raise NotFound("This person is not a member of the project.")
    user = ctx.db.users.get(user_id)
    del project.members[user_id]
    ctx.db.projects.save(project)
    ctx.platform.live.revoke(user_id, project.id)
    ctx.audit("project.member_removed", project.slug,
          details={"user": user.email if user else user_id})
