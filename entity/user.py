"""Users of the platform and their repository."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from entity.base import from_iso, new_id, to_iso, utcnow
from entity.store import Collection

PLATFORM_ROLES = ("admin", "member")


@dataclass
class User:
    email: str
    name: str
    password_hash: str
    role: str = "member"
    active: bool = True
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    last_login_at: datetime | None = None
    #: bumped when the password changes or the account is deactivated: ends every session
    session_version: int = 0
    #: the ids of the user's teams, read from the team memberships whenever the user is read
    #: (not part of the user's document)
    team_ids: frozenset[str] = field(default_factory=frozenset, compare=False)
    #: ``<issuer> <subject>`` of the single sign-on identity linked to this account, or None
    sso_subject: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    # Flask-Login's protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}.{self.session_version}"

    def to_document(self) -> dict:
        return {"_id": self.id, "email": self.email, "name": self.name,
                "password_hash": self.password_hash, "role": self.role, "active": self.active,
                "created_at": to_iso(self.created_at), "last_login_at": to_iso(self.last_login_at),
                "session_version": self.session_version, "sso_subject": self.sso_subject}

    @classmethod
    def from_document(cls, doc: dict) -> User:
        return cls(id=doc["_id"], email=doc["email"], name=doc["name"],
                   password_hash=doc["password_hash"], role=doc.get("role", "member"),
                   active=doc.get("active", True), created_at=from_iso(doc["created_at"]),
                   last_login_at=from_iso(doc.get("last_login_at")),
                   session_version=doc.get("session_version", 0),
                   sso_subject=doc.get("sso_subject"))

    def to_public(self) -> dict:
        """What the API shows (never the password hash)."""
        return {"id": self.id, "email": self.email, "name": self.name, "role": self.role,
                "active": self.active, "created_at": to_iso(self.created_at)}


def normalise_email(email: str) -> str:
    """Emails are stored and looked up trimmed and lower-cased, so that the unique index holds
    whatever case a person types."""
    return email.strip().lower()


class UserRepository:
    """Users; with ``teams`` (an ``entity.team.TeamRepository``) every user read carries the
    ids of their teams in ``team_ids``."""

    def __init__(self, collection: Collection, teams=None):
        self.collection = collection
        self.teams = teams

    def _loaded(self, doc: dict | None) -> User | None:
        if not doc:
            return None
        user = User.from_document(doc)
        if self.teams is not None:
            user.team_ids = self.teams.team_ids_of(user.id)
        return user

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["email"], unique=True)
        self.collection.ensure_index(["sso_subject"])

    def add(self, user: User) -> User:
        """Insert ``user`` (email normalised); raises DuplicateKey if the email is taken."""
        user.email = normalise_email(user.email)
        self.collection.insert(user.to_document())
        return user

    def get(self, user_id: str) -> User | None:
        return self._loaded(self.collection.get(user_id))

    def get_by_email(self, email: str) -> User | None:
        return self._loaded(self.collection.find_one({"email": normalise_email(email)}))

    def get_by_sso_subject(self, subject: str) -> User | None:
        """The account linked to this single sign-on identity (``<issuer> <subject>``)."""
        if not subject:
            return None
        return self._loaded(self.collection.find_one({"sso_subject": subject}))

    def list(self) -> list[User]:
        users = [User.from_document(d) for d in self.collection.find(sort=[("email", 1)])]
        if self.teams is not None:
            by_user = self.teams.team_ids_by_user()
            for user in users:
                user.team_ids = by_user.get(user.id, frozenset())
        return users

    def count(self) -> int:
        return self.collection.count()

    def save(self, user: User) -> None:
        """Write ``user`` back; raises DuplicateKey if its new email is taken."""
        user.email = normalise_email(user.email)
        doc = user.to_document()
        doc.pop("_id")
        self.collection.update_one({"_id": user.id}, doc)
