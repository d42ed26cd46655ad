"""Single sign-on: who an OpenID Connect identity is in Trainyard, and which teams its claim
puts them in.

The protocol (redirect, state, nonce, code exchange, ID-token signature) is Authlib's, in
``controllers/sso.py``; this module gets the verified claims and decides, Flask-free:

- the account: the one linked to the identity (``<issuer> <subject>``); else an existing local
  account with the same e-mail, linked only when ``OIDC_LINK_EXISTING`` is ``verified`` and the
  provider says ``email_verified: true`` (an address the provider has not verified could be
  anyone's, so it never takes over an account) and the account is not linked to another
  identity; else a new account (``OIDC_CREATE_USERS``) with the role ``OIDC_NEW_USER_ROLE`` and
  no password (local accounts keep theirs and may still log in with it);
- the teams: each value of the ``OIDC_GROUPS_CLAIM`` claim that ``OIDC_TEAM_MAPPING`` names
  puts the user in that team (created when missing), at every sign-on; a team the claim gave
  them before and no longer names is left, with what it gave them ending at once. Memberships
  an admin or lead made (``source`` local) are never touched by the claim.
"""

from __future__ import annotations

from entity.base import utcnow
from entity.team import Team, team_slug
from entity.user import User, normalise_email
from exception_layer import AccessDenied, DuplicateKey, Unauthenticated
from services import teams
from services.context import Context

#: the password hash of an account that has none (it signs on through the provider)
NO_PASSWORD = "!"


def identity_of(claims: dict) -> str:
    """The key of an identity across providers: ``<issuer> <subject>``."""
    return f"{claims.get('iss', '')} {claims.get('sub', '')}"


def _claimed_groups(claims: dict, claim: str | None) -> list[str]:
    value = claims.get(claim) if claim else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _account(ctx: Context, claims: dict) -> User:
    settings = ctx.platform.settings
    db = ctx.db
    subject = identity_of(claims)
    user = db.users.get_by_sso_subject(subject)
    if user is not None:
        return user
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise Unauthenticated("The sign-on provider did not give an e-mail address for your "
                              "account; ask your administrator to release the email claim.")
    existing = db.users.get_by_email(normalise_email(email))
    if existing is not None:
        verified = claims.get("email_verified") is True
        if settings.get("OIDC_LINK_EXISTING", "verified") != "verified" or not verified or \
                existing.sso_subject:
            raise AccessDenied("A Trainyard account with this e-mail address already exists "
                               "and cannot be linked to this sign-on (the provider has not "
                               "verified the address, or linking is turned off). Log in with "
                               "your password, or ask an administrator.")
        existing.sso_subject = subject
        db.users.save(existing)
        ctx.audit("user.sso_linked", existing.email, actor=existing,
                  details={"issuer": claims.get("iss")})
        return existing
    if not settings.get("OIDC_CREATE_USERS", True):
        raise AccessDenied("There is no Trainyard account for you yet; ask an administrator "
                           "to invite you.")
    name = claims.get("name") or claims.get("preferred_username") or email.split("@")[0]
    user = User(email=email, name=str(name)[:200], password_hash=NO_PASSWORD,
                role=settings.get("OIDC_NEW_USER_ROLE", "member"), sso_subject=subject)
    try:
        db.users.add(user)
    except DuplicateKey:  # made by a sign-on racing this one
        raced = db.users.get_by_sso_subject(subject)
        if raced is None:
            raise AccessDenied("A Trainyard account with this e-mail address already "
                               "exists; log in with your password.") from None
        return raced
    ctx.audit("user.sso_created", user.email, actor=user, details={"role": user.role})
    return db.users.get(user.id)


def _mapped_team(ctx: Context, name: str) -> Team:
    """The team ``OIDC_TEAM_MAPPING`` names (by name or slug), created when missing."""
    slug = team_slug(name)
    team = ctx.db.teams.get_by_slug(slug)
    if team is not None:
        return team
    team = Team(name=name, slug=slug)
    try:
        ctx.db.teams.add(team)
    except DuplicateKey:  # made meanwhile
        return ctx.db.teams.get_by_slug(slug)
    ctx.audit("team.create", team.slug, details={"by": "single sign-on mapping"})
    return team


def map_teams(ctx: Context, user: User, claims: dict) -> tuple[list[str], list[str]]:
    """Join the teams the claim maps to and leave those it mapped before and no longer does;
    answers the slugs joined and left."""
    settings = ctx.platform.settings
    mapping = settings.get("OIDC_TEAM_MAPPING") or {}
    claim = settings.get("OIDC_GROUPS_CLAIM")
    if not claim:
        return [], []
    wanted = {}
    for value in _claimed_groups(claims, claim):
        if value in mapping:
            team = _mapped_team(ctx, mapping[value])
            wanted[team.id] = team
    joined, left = [], []
    for team in wanted.values():
        if teams.join_team(ctx, team, user.id, source="sso"):
            joined.append(team.slug)
    for membership in ctx.db.teams.memberships_of(user.id):
        if membership.source == "sso" and membership.team_id not in wanted:
            team = ctx.db.teams.get(membership.team_id)
            if team is not None and teams.leave_team(ctx, team, user.id,
                                                     reason="single sign-on claim"):
                left.append(team.slug)
    return joined, left


def sign_on(ctx: Context, claims: dict) -> User:
    """The active account for the verified claims of an ID token (created or linked as the
    settings say), its teams mapped from the claim; the login is audited.

    Raises:
        Unauthenticated: the claims lack what an account needs (a subject, an e-mail).
        AccessDenied: no account may be made or linked, or the account is deactivated.
    """
    if not isinstance(claims, dict) or not claims.get("sub") or not claims.get("iss"):
        raise Unauthenticated("The sign-on provider's answer did not say who you are.")
    user = _account(ctx, claims)
    if not user.active:
        raise AccessDenied("This account is deactivated; ask an administrator.")
    joined, left = map_teams(ctx, user, claims)
    user = ctx.db.users.get(user.id)  # with the teams as they are now
    user.last_login_at = utcnow()
    ctx.db.users.save(user)
    ctx.audit("login.sso", user.email, actor=user,
              details={"issuer": claims.get("iss"), "teams_joined": joined,
                       "teams_left": left})
    return user
