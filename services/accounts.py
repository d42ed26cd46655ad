"""Accounts: first-run set-up, login with rate limits, invitations, password resets,
self-registration, sessions, administration of users, personal API tokens."""

from __future__ import annotations

from datetime import timedelta

from werkzeug.security import check_password_hash, generate_password_hash

from entity.base import utcnow
from entity.login_throttle import LoginThrottle
from entity.mail_message import MailMessage
from entity.security import TOKEN_SCOPES, ApiToken
from entity.user import PLATFORM_ROLES, User, normalise_email
from exception_layer import (
    AccessDenied,
    BadRequest,
    Conflict,
    DuplicateKey,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from services import resources
from services.context import Context
from services.projects import EMAIL

MIN_PASSWORD = 10
INVITATION_LIFETIME = timedelta(days=7)
RESET_LIFETIME = timedelta(hours=1)
# A real hash to compare against when the account does not exist, so that the time taken does
# not tell whether an e-mail address is registered.
_DUMMY_HASH = generate_password_hash("not a real password")
#: the hash of an account that has no password yet (invited): matches nothing
_NO_PASSWORD = "!"


def check_password_rules(password: str, email: str) -> str | None:
    """The reason ``password`` is refused, or None."""
    if len(password or "") < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    if len(password) > 1000:
        return "Use at most 1000 characters."
    if password.strip().lower() == (email or "").strip().lower():
        return "The password cannot be your e-mail address."
    if len(set(password)) < 4:
        return "This password is too easy to guess."
    return None


def check_new_account(email: str, name: str, password: str | None, confirm: str | None) -> dict:
    """Check the fields of a new account (``password=None``: an invitation, no password):
    their types against the body models (a name is one line of text), then their rules."""
    given = {"email": email, "name": name, "password": password}
    resources.check_shape(resources.SetupInput if password is not None else
                          resources.InviteInput, {k: v for k, v in given.items() if v is not None})
    errors = {}
    email = normalise_email(email or "")
    if not EMAIL.match(email) or len(email) > 254:
        errors["email"] = "Enter a valid e-mail address."
    name = (name or "").strip()
    if not name:
        errors["name"] = "Enter a name."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    if password is not None:
        reason = check_password_rules(password, email)
        if reason:
            errors["password"] = reason
        elif confirm is not None and confirm != password:
            errors["confirm"] = "The two passwords differ."
    if errors:
        raise ValidationFailed("Please correct the marked fields.", details=errors)
    return {"email": email, "name": name, "password": password}


def _add_user(ctx: Context, user: User) -> User:
    try:
        ctx.db.users.add(user)
    except DuplicateKey:
        raise ValidationFailed("Please correct the marked fields.", details={
            "email": "An account with this e-mail address already exists."}) from None
    return user


def create_first_admin(ctx: Context, email: str, name: str, password: str,
                       confirm: str | None) -> User:
    """Create the first account (an admin); refused once any account exists.

    Two set-ups sent at the same moment both find no account; the one-time claim in the
    settings (a unique key) lets exactly one of them create its admin.
    """
    db = ctx.db
    already = Conflict("Trainyard is already set up; log in instead.")
    if db.users.count() > 0:
        raise already
    fields = check_new_account(email, name, password, confirm)
    password_hash = generate_password_hash(fields["password"])
    if not db.settings.claim_setup():
        raise already
    created = False
    try:
        user = _add_user(ctx, User(email=fields["email"], name=fields["name"], role="admin",
                              password_hash=password_hash))
        created = True
    finally:
        if not created:  # give the claim back; the error itself goes on to its handler
            db.settings.release_setup()
    ctx.audit("user.setup", user.email, actor=user)
    return user


def register(ctx: Context, email: str, name: str, password: str, confirm: str | None) -> User:
    """Self-registration as a member, when an admin has turned it on."""
    if not ctx.db.settings.get()["self_registration"]:
        raise AccessDenied("Registration is closed; ask an administrator for an invitation.")
    fields = check_new_account(email, name, password, confirm)
    user = _add_user(ctx, User(email=fields["email"], name=fields["name"], role="member",
                          password_hash=generate_password_hash(fields["password"])))
    ctx.audit("user.register", user.email, actor=user)
    return user


# -- login -------------------------------------------------------------------------------------

def authenticate(ctx: Context, email: str, password: str) -> User:
    """The active user with these credentials (throttled: see ``entity.login_throttle``).

    Raises:
        TooManyRequests: the account or the address must wait (see ``entity.login_throttle``).
        Unauthenticated: wrong credentials (the same message whatever was wrong).
    """
    db = ctx.db
    email = normalise_email(str(email or ""))
    address = ctx.address
    throttle = LoginThrottle(db.login_failures)
    throttle.check(email, address)
    user = db.users.get_by_email(email) if email else None
    ok = False
    if user is None or user.password_hash == _NO_PASSWORD:
        check_password_hash(_DUMMY_HASH, password or "")
    else:
        ok = check_password_hash(user.password_hash, str(password or "")) and user.active
    if not ok:
        ctx.audit("login", email or None, success=False, actor=False)
        for lock in throttle.failed(email, address):
            ctx.audit("login.locked", lock.target, success=False, actor=False,
                      details={"scope": lock.scope, "seconds": lock.seconds})
        raise Unauthenticated("Wrong e-mail address or password.")
    throttle.succeeded(email, address)
    user.last_login_at = utcnow()
    db.users.save(user)
    ctx.audit("login", user.email, actor=user)
    return user


# -- invitations, resets, administration ---------------------------------------------------

def _mail_link(ctx: Context, subject: str, to: str, lines: list[str], link: str) -> None:
    notifier = ctx.platform.notifier
    text = "\n".join([*lines, "", link])
    notifier.deliver(MailMessage(subject=subject, recipients=[to], body_text=text,
                                 secrets=[link]))


def invite_user(ctx: Context, email: str, name: str, role: str) -> User:
    """Create an account without password and mail its owner an expiring link to set one."""
    if role not in PLATFORM_ROLES:
        raise ValidationFailed("Please correct the marked fields.",
                               details={"role": "Choose admin or member."})
    fields = check_new_account(email, name, None, None)
    user = _add_user(ctx, User(email=fields["email"], name=fields["name"], role=role,
                          password_hash=_NO_PASSWORD))
    secret = ctx.db.one_time_tokens.issue("invite", user.id,
                                                 utcnow() + INVITATION_LIFETIME)
    link = f"{ctx.platform.notifier.public_url}/invite/{secret}"
    _mail_link(ctx, "[Trainyard] You are invited", user.email,
               [f"{ctx.user.name} invited you to Trainyard.",
                "Choose your password with this link (valid for 7 days, once):"], link)
    ctx.audit("user.invite", user.email, details={"role": role})
    return user


def _redeem(ctx: Context, purpose: str, secret: str, password: str, confirm: str | None, *,
            activates: bool, audit_action: str) -> User:
    """Set the password of the user of the one-time link ``secret`` issued for ``purpose``
    (``invite`` or ``reset``); an invitation (``activates``) also activates the account."""
    db = ctx.db
    token = db.one_time_tokens.find_valid(purpose, secret)
    user = db.users.get(token.user_id) if token else None
    if token is None or user is None:
        raise BadRequest("This link is invalid, expired or already used; ask for a new one.")
    reason = check_password_rules(password, user.email)
    if reason or (confirm is not None and confirm != password):
        raise ValidationFailed("Please correct the marked fields.", details={
            "password": reason} if reason else {"confirm": "The two passwords differ."})
    if not db.one_time_tokens.consume(token):
        raise BadRequest("This link is invalid, expired or already used; ask for a new one.")
    user.password_hash = generate_password_hash(password)
    user.session_version += 1
    db.sessions.close_all(user.id)
    if activates:
        user.active = True
    db.users.save(user)
    ctx.platform.live.revoke(user.id, end=True)
    db.one_time_tokens.invalidate_for_user(purpose, user.id)
    ctx.audit(audit_action, user.email, actor=user)
    return user


def accept_invitation(ctx: Context, secret: str, password: str, confirm: str | None) -> User:
    """Set the password of an invited account from its link; answers the user."""
    return _redeem(ctx, "invite", secret, password, confirm, activates=True,
                   audit_action="user.invite_accepted")


def reset_password(ctx: Context, secret: str, password: str, confirm: str | None) -> User:
    """Set a new password from a reset link; answers the user."""
    return _redeem(ctx, "reset", secret, password, confirm, activates=False,
                   audit_action="user.password_reset")


def request_password_reset(ctx: Context, email: str) -> None:
    """Mail a reset link if the address belongs to an active account; says nothing either way."""
    db = ctx.db
    user = db.users.get_by_email(normalise_email(str(email or "")))
    ctx.audit("user.reset_requested", normalise_email(str(email or "")) or None, actor=False)
    if user is None or not user.active:
        return
    secret = db.one_time_tokens.issue("reset", user.id, utcnow() + RESET_LIFETIME)
    link = f"{ctx.platform.notifier.public_url}/reset/{secret}"
    _mail_link(ctx, "[Trainyard] Reset your password", user.email,
               ["Someone asked to reset your Trainyard password. If it was not you, ignore "
                "this mail.", "Choose a new password with this link (valid for 1 hour, once):"],
               link)


def change_password(ctx: Context, user: User, current: str, new: str,
                    confirm: str | None) -> None:
    """Change ``user``'s password; every other session of theirs ends."""
    if not check_password_hash(user.password_hash, current or ""):
        raise ValidationFailed("Please correct the marked fields.",
                               details={"current": "This is not your current password."})
    reason = check_password_rules(new, user.email)
    if reason or (confirm is not None and confirm != new):
        raise ValidationFailed("Please correct the marked fields.", details={
            "password": reason} if reason else {"confirm": "The two passwords differ."})
    user.password_hash = generate_password_hash(new)
    user.session_version += 1
    ctx.db.users.save(user)
    ctx.db.sessions.close_all(user.id)
    ctx.platform.live.revoke(user.id, end=True)
    ctx.audit("user.password_changed", user.email)


def load_user(ctx: Context, user_id: str) -> User:
    """The user ``user_id`` (NotFound otherwise)."""
    user = ctx.db.users.get(user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def unlock_login(ctx: Context, user: User) -> bool:
    """End the login back-off of ``user``'s account (admins); False if there was none."""
    unlocked = LoginThrottle(ctx.db.login_failures).unlock(user.email)
    ctx.audit("user.unlock", user.email, details={"had_failures": unlocked})
    return unlocked


def login_locks(ctx: Context, users: list[User]) -> dict[str, object]:
    """User id -> when their login back-off ends, for the users who have one now."""
    throttle = LoginThrottle(ctx.db.login_failures)
    return {u.id: until for u in users if (until := throttle.locked_until(u.email))}


def update_user(ctx: Context, user: User, *, role: str | None = None,
                active: bool | None = None) -> User:
    """Change a user's platform role or deactivate/reactivate them (admins)."""
    db = ctx.db
    if role is not None and role not in PLATFORM_ROLES:
        raise ValidationFailed("Please correct the marked fields.",
                               details={"role": "Choose admin or member."})
    if user.id == ctx.user.id and (role == "member" or active is False):
        raise Conflict("You cannot demote or deactivate yourself; ask another admin.")
    changes = {}
    if role is not None and role != user.role:
        changes["role"] = [user.role, role]
        user.role = role
    if active is not None and active != user.active:
        changes["active"] = [user.active, active]
        user.active = active
        if not active:
            user.session_version += 1
            db.api_tokens.revoke_all_for_user(user.id)
            db.sessions.close_all(user.id)
    db.users.save(user)
    if changes:
        db.api_tokens.forget(user_id=user.id)  # API calls see the new role at once
        ctx.platform.live.revoke(user.id, end=not user.active)
        ctx.audit("user.update", user.email, details=changes)
    return user


# -- personal API tokens -------------------------------------------------------------------

def create_token(ctx: Context, user: User, name: str, scope: str) -> tuple[ApiToken, str]:
    """Issue a token; its clear value is returned once and never stored."""
    resources.check_shape(resources.TokenInput, {"name": name, "scope": scope})
    name = (name or "").strip()
    errors = {}
    if not name or len(name) > 100:
        errors["name"] = "Name the token (at most 100 characters), e.g. 'CI pipeline'."
    if scope not in TOKEN_SCOPES:
        errors["scope"] = "Choose read or write."
    if errors:
        raise ValidationFailed("Please correct the marked fields.", details=errors)
    token, clear = ApiToken.issue(user.id, name, scope)
    ctx.db.api_tokens.add(token)
    ctx.audit("token.create", token.id, details={"name": name, "scope": scope})
    return token, clear


def revoke_token(ctx: Context, user: User, token_id: str) -> None:
    """Revoke a token of ``user`` (an admin: anyone's)."""
    db = ctx.db
    token = db.api_tokens.get(token_id)
    if token is None or (token.user_id != user.id and not user.is_admin):
        raise NotFound("No such token.")
    if not db.api_tokens.revoke(token.id):
        raise Conflict("This token is already revoked.")
    ctx.platform.live.revoke(token.user_id, login=f"token:{token.id}", end=True)
    ctx.audit("token.revoke", token.id, details={"name": token.name})


def user_for_token(ctx: Context, value: str) -> tuple[User, ApiToken] | None:
    """The active user and token for an ``Authorization: Bearer`` value, or None."""
    parts = ApiToken.split(value)
    if parts is None:
        return None
    db = ctx.db
    recent = db.api_tokens.recall(parts[0])  # checked in the database a few seconds ago
    if recent is not None:
        token, user = recent
        if not token.matches(parts[1]):
            return None
        db.api_tokens.touch(token)
        return user, token
    token = db.api_tokens.get(parts[0])
    if token is None or not token.matches(parts[1]):
        return None
    user = db.users.get(token.user_id)
    if user is None or not user.active:
        return None
    db.api_tokens.touch(token)
    db.api_tokens.remember(token, user)
    return user, token


# -- sessions and settings -----------------------------------------------------------------

def open_session(ctx: Context, user: User) -> str:
    """Open a server-side session for ``user``; answers its id (the cookie names it)."""
    return ctx.db.sessions.open(user.id)


def close_session(ctx: Context, sid: str | None) -> None:
    """End the session ``sid`` on the server (a copied cookie stops working); the
    ``token:`` sessions of sockets opened with an API token end with their token."""
    if sid and not sid.startswith("token:"):
        ctx.db.sessions.close(sid)
        ctx.platform.live.revoke(getattr(ctx.user, "id", None), login=sid, end=True)


def log_out(ctx: Context, sid: str | None) -> None:
    """The user acting logs out of the session ``sid``."""
    if ctx.user is not None:
        ctx.audit("logout", ctx.user.email)
    close_session(ctx, sid)


def session_is_open(ctx: Context, sid: str, user_id: str) -> bool:
    """True if the session ``sid`` of ``user_id`` is still open on the server."""
    if sid.startswith("token:"):
        token = ctx.db.api_tokens.get(sid[6:])
        return token is not None and token.revoked_at is None and token.user_id == user_id
    return ctx.db.sessions.is_open(sid, user_id)


def is_set_up(ctx: Context) -> bool:
    """True once an account exists (the first-run set-up is done)."""
    return ctx.db.users.count() > 0


def registration_is_open(ctx: Context) -> bool:
    """True if an admin has turned self-registration on."""
    return ctx.db.settings.get()["self_registration"]


def platform_settings(ctx: Context) -> dict:
    """The settings admins change on the users page."""
    return ctx.db.settings.get()


def set_registration(ctx: Context, enabled: bool) -> None:
    """Turn self-registration on or off (admins)."""
    ctx.db.settings.update(self_registration=enabled)
    ctx.audit("settings.update", "self_registration", details={"value": enabled})


def link_is_valid(ctx: Context, kind: str, secret: str) -> bool:
    """True if ``secret`` is an unused, unexpired ``kind`` ("invite", "reset") link."""
    return ctx.db.one_time_tokens.find_valid(kind, secret) is not None


def get_user(ctx: Context, user_id: str) -> User | None:
    """The user ``user_id`` as stored now, or None."""
    return ctx.db.users.get(user_id)


def list_users(ctx: Context) -> list[User]:
    """Every account."""
    return ctx.db.users.list()


def list_tokens(ctx: Context, user: User) -> list[ApiToken]:
    """``user``'s personal API tokens."""
    return ctx.db.api_tokens.list_for_user(user.id)
