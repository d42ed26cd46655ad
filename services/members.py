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


# -- teams on a project ------------------------------------------------------------------

def list_teams(ctx: Context, project: Project) -> list[dict]:
    """The teams holding a role on the project: ``{team: {id, name, slug}, role}``, by name."""
    teams = ctx.db.teams.get_many(project.teams)
    return [{"team": {"id": t.id, "name": t.name, "slug": t.slug}, "role": project.teams[t.id]}
            for t in teams]


def set_team(ctx: Context, project: Project, team_ref: str, role: str) -> dict:
    """Give every member of the team (named by id or slug) a role on the project (owners).
    A person's own role and their teams' roles add up to the strongest of them."""
    if role not in PROJECT_ROLES:
        raise ValidationFailed("Please correct the marked fields.",
                               details={"role": f"Choose one of {', '.join(PROJECT_ROLES)}."})
    ref = str(team_ref or "")
    team = ctx.db.teams.get(ref) or ctx.db.teams.get_by_slug(ref)
    if team is None:
        raise ValidationFailed("Please correct the marked fields.",
                               details={"team": "No such team."})
    previous = project.teams.get(team.id)
    project.teams[team.id] = role
    ctx.db.projects.save(project)
    for membership in ctx.db.teams.members(team.id):  # a changed role is checked on join
        ctx.platform.live.revoke(membership.user_id, project.id)
    ctx.audit("project.team", project.slug, details={"team": team.slug, "role": role,
                                                  "previous": previous})
    return {"team": {"id": team.id, "name": team.name, "slug": team.slug}, "role": role}


def remove_team(ctx: Context, project: Project, team_id: str) -> None:
    """Take a team's role off the project: its members keep only their own roles, at once."""
    if team_id not in project.teams:
        raise NotFound("This team holds no role on the project.")
    del project.teams[team_id]
    ctx.db.projects.save(project)
    team = ctx.db.teams.get(team_id)
    for membership in ctx.db.teams.members(team_id):
        ctx.platform.live.revoke(membership.user_id, project.id)
    ctx.audit("project.team_removed", project.slug,
              details={"team": team.slug if team else team_id})
