"""Teams: groups of users that hold project roles (and catalog visibility) together.

Who manages what: admins create, rename and delete teams and name leads; a team's leads add and
remove its plain members. Every logged-in user may list the teams and see who is in them (to
share a project or a listing with a team one has to find it). Taking someone out of a team, or
deleting a team, ends at once what the team gave them: their sockets leave the rooms of the
team's projects (and rejoin only if another role still lets them), and their share links of
those projects stop, because both are checked against the user read again from the database.
"""

from __future__ import annotations

from entity.team import TEAM_ROLES, Team, TeamMembership, team_principal, team_slug
from entity.user import normalise_email
from exception_layer import AccessDenied, DuplicateKey, NotFound, ValidationFailed
from services.access import require_admin, require_user
from services.context import Context

MAX_NAME = 100
MAX_DESCRIPTION = 2000


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed("Please correct the marked fields.", details={field: message})


def _check_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise _invalid("name", "A team needs a name.")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise _invalid("name", f"At most {MAX_NAME} characters.")
    if any(ord(ch) < 32 for ch in name):
        raise _invalid("name", "A team's name is one line of text.")
    if not team_slug(name):
        raise _invalid("name", "Use at least one letter or digit.")
    return name


def _check_description(description) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise _invalid("description", "Text.")
    if len(description) > MAX_DESCRIPTION:
        raise _invalid("description", f"At most {MAX_DESCRIPTION} characters.")
    return description.strip()


def to_public(ctx: Context, team: Team, *, with_members: bool = False) -> dict:
    """The team as the API shows it (``members`` with each user and role when asked)."""
    memberships = ctx.db.teams.members(team.id)
    shown = {"id": team.id, "name": team.name, "slug": team.slug,
             "description": team.description, "member_count": len(memberships),
             "created_at": team.created_at.isoformat()}
    if with_members:
        shown["members"] = list_members(ctx, team, memberships)
    return shown


def list_teams(ctx: Context) -> list[Team]:
    """Every team, by name (any logged-in user)."""
    require_user(ctx)
    return ctx.db.teams.list()


def teams_of(ctx: Context, user_id: str) -> list[Team]:
    """The teams of the user ``user_id``, by name."""
    return ctx.db.teams.teams_of(user_id)


def load_team(ctx: Context, team_ref: str) -> Team:
    """The team with this id or slug (any logged-in user); NotFound when there is none."""
    require_user(ctx)
    ref = str(team_ref or "")
    team = ctx.db.teams.get(ref) or ctx.db.teams.get_by_slug(ref)
    if team is None:
        raise NotFound("No such team.")
    return team


def is_lead(ctx: Context, team: Team, user) -> bool:
    """True if ``user`` leads ``team``."""
    found = ctx.db.teams.membership(team.id, user.id) if user is not None else None
    return found is not None and found.role == "lead"


def may_manage(ctx: Context, team: Team) -> bool:
    """True if the user acting may add and remove the team's members (admins and leads)."""
    user = ctx.user
    return user is not None and (user.is_admin or is_lead(ctx, team, user))


def create_team(ctx: Context, name, description=None) -> Team:
    """Create a team (admins); ValidationFailed for a bad or taken name."""
    require_admin(ctx)
    name, description = _check_name(name), _check_description(description)
    team = Team(name=name, slug=team_slug(name), description=description)
    try:
        ctx.db.teams.add(team)
    except DuplicateKey:
        raise _invalid("name", "A team with this name already exists.") from None
    ctx.audit("team.create", team.slug)
    return team


def update_team(ctx: Context, team: Team, *, name=None, description=None) -> Team:
    """Rename a team or change its description (admins)."""
    require_admin(ctx)
    if name is not None:
        team.name = _check_name(name)
        team.slug = team_slug(team.name)
    if description is not None:
        team.description = _check_description(description)
    try:
        ctx.db.teams.save(team)
    except DuplicateKey:
        raise _invalid("name", "A team with this name already exists.") from None
    ctx.audit("team.update", team.slug)
    return team


def _projects_of_team(ctx: Context, team_id: str) -> list:
    return [p for p in ctx.db.projects.list() if team_id in p.teams]


def _access_narrowed(ctx: Context, user_id: str, projects) -> None:
    """The user's teams changed: forget the user this process keeps with their recent API
    tokens (read again, with their teams, on the next call), and take their sockets out of the
    rooms of ``projects`` (they may join again, and are checked again)."""
    ctx.db.api_tokens.forget(user_id=user_id)
    for project in projects:
        ctx.platform.live.revoke(user_id, project.id)


def delete_team(ctx: Context, team: Team) -> None:
    """Delete a team (admins): its project roles and grants go with it, and its members lose
    at once what it gave them."""
    require_admin(ctx)
    projects = _projects_of_team(ctx, team.id)
    for project in projects:
        del project.teams[team.id]
        ctx.db.projects.save(project)
    principal = team_principal(team.id)
    for connection in ctx.db.storage_connections.list():
        if principal in connection.grants:
            connection.grants = [g for g in connection.grants if g != principal]
            ctx.db.storage_connections.save(connection)
    for user_id in ctx.db.teams.delete(team.id):
        _access_narrowed(ctx, user_id, projects)
    ctx.audit("team.delete", team.slug)


def list_members(ctx: Context, team: Team, memberships=None) -> list[dict]:
    """The team's members: ``{user, role, source}``, leads first."""
    memberships = ctx.db.teams.members(team.id) if memberships is None else memberships
    shown = []
    for membership in memberships:
        user = ctx.db.users.get(membership.user_id)
        if user is not None:
            shown.append({"user": user.to_public(), "role": membership.role,
                          "source": membership.source})
    return sorted(shown, key=lambda m: (m["role"] != "lead", m["user"]["email"]))


def set_member(ctx: Context, team: Team, email, role="member") -> dict:
    """Add the person with ``email`` to the team, or change their role there.

    Leads add and remove plain members; naming a lead, or changing a lead, is for admins.

    Raises:
        AccessDenied: the user acting is neither an admin nor a lead of the team.
        ValidationFailed: an unknown role, or no account with this address.
    """
    require_user(ctx)
    if not may_manage(ctx, team):
        raise AccessDenied("Only administrators and the team's leads manage its members.")
    if role not in TEAM_ROLES:
        raise _invalid("role", f"Choose one of {', '.join(TEAM_ROLES)}.")
    user = ctx.db.users.get_by_email(normalise_email(str(email or "")))
    if user is None:
        raise _invalid("email", "No account has this e-mail address; an admin can invite "
                                "them.")
    previous = ctx.db.teams.membership(team.id, user.id)
    if not ctx.user.is_admin and (role == "lead" or (previous and previous.role == "lead")):
        raise AccessDenied("Only administrators name or change a team's leads.")
    ctx.db.teams.put_member(TeamMembership(team.id, user.id, role))
    ctx.audit("team.member", team.slug, details={
        "user": user.email, "role": role, "previous": previous.role if previous else None})
    return {"user": user.to_public(), "role": role, "source": "local"}


def remove_member(ctx: Context, team: Team, user_id: str) -> None:
    """Take a user out of the team: what the team gave them on projects ends at once.

    Raises:
        AccessDenied: neither an admin nor a lead; or a lead removing another lead.
        NotFound: the user is not in the team.
    """
    require_user(ctx)
    if not may_manage(ctx, team):
        raise AccessDenied("Only administrators and the team's leads manage its members.")
    membership = ctx.db.teams.membership(team.id, str(user_id or ""))
    if membership is None:
        raise NotFound("This person is not a member of the team.")
    if membership.role == "lead" and not ctx.user.is_admin and membership.user_id != \
            ctx.user.id:
        raise AccessDenied("Only administrators remove a team's leads.")
    leave_team(ctx, team, membership.user_id)


def leave_team(ctx: Context, team: Team, user_id: str, *, reason: str = "removed") -> bool:
    """Take ``user_id`` out of ``team`` with no check of who acts (the single sign-on mapping
    calls it too); True if they were in it. Their sockets leave the team's projects' rooms."""
    if not ctx.db.teams.remove_member(team.id, user_id):
        return False
    _access_narrowed(ctx, user_id, _projects_of_team(ctx, team.id))
    user = ctx.db.users.get(user_id)
    ctx.audit("team.member_removed", team.slug,
              details={"user": user.email if user else user_id, "reason": reason})
    return True


def join_team(ctx: Context, team: Team, user_id: str, *, source: str = "sso") -> bool:
    """Put ``user_id`` in ``team`` as a plain member with no check of who acts (the single
    sign-on mapping); an existing membership is left as it is. True if they were added."""
    if ctx.db.teams.membership(team.id, user_id) is not None:
        return False
    ctx.db.teams.put_member(TeamMembership(team.id, user_id, "member", source=source))
    user = ctx.db.users.get(user_id)
    ctx.audit("team.member", team.slug, details={"user": user.email if user else user_id,
                                                 "role": "member", "source": source})
    return True

