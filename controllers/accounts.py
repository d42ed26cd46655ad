"""Account rules shared by the pages and the API: first-run set-up, login with rate limits,
invitations, password resets, self-registration, personal API tokens."""

from __future__ import annotations

from datetime import timedelta

from werkzeug.security import check_password_hash, generate_password_hash

from controllers.auditing import audit
from controllers.operations import _EMAIL
from controllers.services import services
from entity.base import utcnow
from entity.mail_message import MailMessage
from entity.security import TOKEN_SCOPES, ApiToken
from entity.user import PLATFORM_ROLES, User, normalise_email
from exception_layer import (
    AccessDenied,
    BadRequest,
    Conflict,
    DuplicateKey,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    ValidationFailed,
)

MIN_PASSWORD = 10
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
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
    """Check the fields of a new account (``password=None``: an invitation, no password)."""
    errors = {}
    email = normalise_email(email or "")
    if not _EMAIL.match(email) or len(email) > 254:
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


def _add_user(user: User) -> User:
    try:
        services().db.users.add(user)
    except DuplicateKey:
        raise ValidationFailed("Please correct the marked fields.", details={
            "email": "An account with this e-mail address already exists."}) from None
    return user


def create_first_admin(email: str, name: str, password: str, confirm: str | None) -> User:
    """Create the first account (an admin); refused once any account exists.

    Two set-ups sent at the same moment both find no account; the one-time claim in the
    settings (a unique key) lets exactly one of them create its admin.
    """
    db = services().db
    already = Conflict("Trainyard is already set up; log in instead.")
    if db.users.count() > 0:
        raise already
    fields = check_new_account(email, name, password, confirm)
    password_hash = generate_password_hash(fields["password"])
    if not db.settings.claim_setup():
        raise already
    created = False
    try:
        user = _add_user(User(email=fields["email"], name=fields["name"], role="admin",
                              password_hash=password_hash))
        created = True
    finally:
        if not created:  # give the claim back; the error itself goes on to its handler
            db.settings.release_setup()
    audit("user.setup", user.email, actor=user)
    return user


def register(email: str, name: str, password: str, confirm: str | None) -> User:
    """Self-registration as a member, when an admin has turned it on."""
    if not services().db.settings.get()["self_registration"]:
        raise AccessDenied("Registration is closed; ask an administrator for an invitation.")
    fields = check_new_account(email, name, password, confirm)
    user = _add_user(User(email=fields["email"], name=fields["name"], role="member",
                          password_hash=generate_password_hash(fields["password"])))
    audit("user.register", user.email, actor=user)
    return user


# -- login -------------------------------------------------------------------------------------

def _throttle_keys(email: str, address: str | None) -> tuple[str, str]:
    return f"account:{normalise_email(email or '')}", f"address:{address or 'unknown'}"


def _check_throttle(email: str, address: str | None) -> None:
    failures = services().db.login_failures
    since = utcnow() - FAILURE_WINDOW
    account_key, address_key = _throttle_keys(email, address)
    for key, limit in ((account_key, MAX_FAILURES_PER_ACCOUNT),
                       (address_key, MAX_FAILURES_PER_ADDRESS)):
        if failures.count_since(key, since) >= limit:
            oldest = failures.oldest_since(key, since)
            wait = FAILURE_WINDOW - (utcnow() - oldest) if oldest else FAILURE_WINDOW
            minutes = max(1, int(wait.total_seconds() // 60) + 1)
            raise TooManyRequests(f"Too many failed logins; try again in {minutes} minutes.")


def authenticate(email: str, password: str, address: str | None = None) -> User:
    """The active user with these credentials.

    Raises:
        TooManyRequests: too many recent failures for this account or this address.
        Unauthenticated: wrong credentials (the same message whatever was wrong).
    """
    db = services().db
    email = normalise_email(str(email or ""))
    _check_throttle(email, address)
    user = db.users.get_by_email(email) if email else None
    ok = False
    if user is None or user.password_hash == _NO_PASSWORD:
        check_password_hash(_DUMMY_HASH, password or "")
    else:
        ok = check_password_hash(user.password_hash, str(password or "")) and user.active
    if not ok:
        db.login_failures.record(*_throttle_keys(email, address))
        audit("login", email or None, success=False, actor=False)
        raise Unauthenticated("Wrong e-mail address or password.")
    db.login_failures.clear(_throttle_keys(email, address)[0])
    user.last_login_at = utcnow()
    db.users.save(user)
    audit("login", user.email, actor=user)
    return user


# -- invitations, resets, administration ---------------------------------------------------

def _mail_link(subject: str, to: str, lines: list[str], link: str) -> None:
    notifier = services().notifier
    text = "\n".join([*lines, "", link])
    notifier.deliver(MailMessage(subject=subject, recipients=[to], body_text=text,
                                 secrets=[link]))


def invite_user(email: str, name: str, role: str, by: User) -> User:
    """Create an account without password and mail its owner an expiring link to set one."""
    if role not in PLATFORM_ROLES:
        raise ValidationFailed("Please correct the marked fields.",
                               details={"role": "Choose admin or member."})
    fields = check_new_account(email, name, None, None)
    user = _add_user(User(email=fields["email"], name=fields["name"], role=role,
                          password_hash=_NO_PASSWORD))
    secret = services().db.one_time_tokens.issue("invite", user.id,
                                                 utcnow() + INVITATION_LIFETIME)
    link = f"{services().notifier.public_url}/invite/{secret}"
    _mail_link("[Trainyard] You are invited", user.email,
               [f"{by.name} invited you to Trainyard.",
                "Choose your password with this link (valid for 7 days, once):"], link)
    audit("user.invite", user.email, details={"role": role})
    return user


def _redeem(kind: str, secret: str, password: str, confirm: str | None) -> User:
    db = services().db
    token = db.one_time_tokens.find_valid(kind, secret)
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
    if kind == "invite":
        user.active = True
    db.users.save(user)
    db.one_time_tokens.invalidate_for_user(kind, user.id)
    audit(f"user.{kind}_accepted" if kind == "invite" else "user.password_reset", user.email,
          actor=user)
    return user


def accept_invitation(secret: str, password: str, confirm: str | None) -> User:
    return _redeem("invite", secret, password, confirm)


def reset_password(secret: str, password: str, confirm: str | None) -> User:
    return _redeem("reset", secret, password, confirm)


def request_password_reset(email: str) -> None:
    """Mail a reset link if the address belongs to an active account; says nothing either way."""
    db = services().db
    user = db.users.get_by_email(normalise_email(str(email or "")))
    audit("user.reset_requested", normalise_email(str(email or "")) or None, actor=False)
    if user is None or not user.active:
        return
    secret = db.one_time_tokens.issue("reset", user.id, utcnow() + RESET_LIFETIME)
    link = f"{services().notifier.public_url}/reset/{secret}"
    _mail_link("[Trainyard] Reset your password", user.email,
               ["Someone asked to reset your Trainyard password. If it was not you, ignore "
                "this mail.", "Choose a new password with this link (valid for 1 hour, once):"],
               link)


def change_password(user: User, current: str, new: str, confirm: str | None) -> None:
    if not check_password_hash(user.password_hash, current or ""):
        raise ValidationFailed("Please correct the marked fields.",
                               details={"current": "This is not your current password."})
    reason = check_password_rules(new, user.email)
    if reason or (confirm is not None and confirm != new):
        raise ValidationFailed("Please correct the marked fields.", details={
            "password": reason} if reason else {"confirm": "The two passwords differ."})
    user.password_hash = generate_password_hash(new)
    user.session_version += 1
    services().db.users.save(user)
    services().db.sessions.close_all(user.id)
    audit("user.password_changed", user.email)


def load_user(user_id: str) -> User:
    user = services().db.users.get(user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def update_user(user: User, by: User, *, role: str | None = None,
                active: bool | None = None) -> User:
    """Change a user's platform role or deactivate/reactivate them (admins)."""
    db = services().db
    if role is not None and role not in PLATFORM_ROLES:
        raise ValidationFailed("Please correct the marked fields.",
                               details={"role": "Choose admin or member."})
    if user.id == by.id and (role == "member" or active is False):
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
        audit("user.update", user.email, details=changes)
    return user


# -- sessions ------------------------------------------------------------------------------

def sign_in(user: User, *, api_token_id: str | None = None) -> None:
    """Log ``user`` in on this client: a new server-side session named by the cookie (or, for
    a Socket.IO connection opened with a token, tied to that token)."""
    from flask import session
    from flask_login import login_user

    session["sid"] = (f"token:{api_token_id}" if api_token_id
                      else services().db.sessions.open(user.id))
    login_user(user)


def sign_out() -> None:
    """End this client's session on the server too (a copied cookie stops working)."""
    from flask import session
    from flask_login import logout_user

    sid = session.pop("sid", None)
    if sid and not sid.startswith("token:"):
        services().db.sessions.close(sid)
    logout_user()


def session_is_open(user_id: str) -> bool:
    """True if this request's session is still open on the server."""
    from flask import session

    sid = session.get("sid") or ""
    if sid.startswith("token:"):
        token = services().db.api_tokens.get(sid[6:])
        return token is not None and token.revoked_at is None and token.user_id == user_id
    return services().db.sessions.is_open(sid, user_id)


# -- personal API tokens -------------------------------------------------------------------

def create_token(user: User, name: str, scope: str) -> tuple[ApiToken, str]:
    """Issue a token; its clear value is returned once and never stored."""
    name = (name or "").strip()
    errors = {}
    if not name or len(name) > 100:
        errors["name"] = "Name the token (at most 100 characters), e.g. 'CI pipeline'."
    if scope not in TOKEN_SCOPES:
        errors["scope"] = "Choose read or write."
    if errors:
        raise ValidationFailed("Please correct the marked fields.", details=errors)
    token, clear = ApiToken.issue(user.id, name, scope)
    services().db.api_tokens.add(token)
    audit("token.create", token.id, details={"name": name, "scope": scope})
    return token, clear


def revoke_token(user: User, token_id: str) -> None:
    db = services().db
    token = db.api_tokens.get(token_id)
    if token is None or (token.user_id != user.id and not user.is_admin):
        raise NotFound("No such token.")
    if not db.api_tokens.revoke(token.id):
        raise Conflict("This token is already revoked.")
    audit("token.revoke", token.id, details={"name": token.name})


def user_for_token(value: str) -> tuple[User, ApiToken] | None:
    """The active user and token for an ``Authorization: Bearer`` value, or None."""
    parts = ApiToken.split(value)
    if parts is None:
        return None
    db = services().db
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
