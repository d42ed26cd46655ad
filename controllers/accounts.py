"""Account rules shared by the first-run set-up, the login and the API."""

from __future__ import annotations

from werkzeug.security import check_password_hash, generate_password_hash

from controllers.operations import _EMAIL
from controllers.services import services
from entity.base import utcnow
from entity.user import User
from exception_layer import Conflict, Unauthenticated, ValidationFailed

MIN_PASSWORD = 10
# A real hash to compare against when the account does not exist, so that the time taken does
# not tell whether an e-mail address is registered.
_DUMMY_HASH = generate_password_hash("not a real password")


def check_new_account(email: str, name: str, password: str, confirm: str | None) -> dict:
    errors = {}
    email = (email or "").strip().lower()
    if not _EMAIL.match(email):
        errors["email"] = "Enter a valid e-mail address."
    if not (name or "").strip():
        errors["name"] = "Enter your name."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    if len(password or "") < MIN_PASSWORD:
        errors["password"] = f"Use at least {MIN_PASSWORD} characters."
    elif password.strip().lower() == email:
        errors["password"] = "The password cannot be your e-mail address."
    elif len(set(password)) < 4:
        errors["password"] = "This password is too easy to guess."
    if confirm is not None and confirm != password:
        errors["confirm"] = "The two passwords differ."
    if errors:
        raise ValidationFailed("Please correct the marked fields.", details=errors)
    return {"email": email, "name": name.strip(), "password": password}


def create_first_admin(email: str, name: str, password: str, confirm: str | None) -> User:
    """Create the first account (an admin); refused once any account exists."""
    db = services().db
    if db.users.count() > 0:
        raise Conflict("Trainyard is already set up; log in instead.")
    fields = check_new_account(email, name, password, confirm)
    user = User(email=fields["email"], name=fields["name"],
                password_hash=generate_password_hash(fields["password"]), role="admin")
    db.users.add(user)
    return user


def authenticate(email: str, password: str) -> User:
    """The active user with these credentials, or :class:`Unauthenticated`."""
    db = services().db
    user = db.users.get_by_email((email or "").strip().lower())
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        raise Unauthenticated("Wrong e-mail address or password.")
    if not check_password_hash(user.password_hash, password or "") or not user.active:
        raise Unauthenticated("Wrong e-mail address or password.")
    user.last_login_at = utcnow()
    db.users.save(user)
    return user
