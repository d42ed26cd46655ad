"""Teams: named groups of users, each member a ``lead`` or a ``member`` of the team; and the
principals a user acts as (themselves and their teams), which every grant to "a user or a team"
compares against (storage connections, project memberships, catalog visibility).

A team's document holds its name and description; each membership is a document of its own
(collection ``team_members``, ``_id`` ``<team id>:<user id>``), so that the teams of a user are
one indexed look-up (``TeamRepository.teams_of``), made each time a user is read from the
database: removing someone from a team ends what the team gave them on their next request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from entity.base import from_iso, new_id, to_iso, utcnow
from entity.store import Collection
from exception_layer import DuplicateKey

#: a member's role in their team, in increasing order of power: leads add and remove members
TEAM_ROLES = ("member", "lead")
#: the kinds of principal a grant can name
PRINCIPAL_TYPES = ("user", "team")
_SLUG = re.compile(r"[^a-z0-9]+")


def team_slug(name: str) -> str:
    """The team's name as it appears in addresses: lower case letters, digits and dashes."""
    return _SLUG.sub("-", name.lower()).strip("-")[:60]


def user_principal(user_id: str) -> dict:
    """The principal that stands for one user in a grant."""
    return {"type": "user", "id": user_id}


def team_principal(team_id: str) -> dict:
    """The principal that stands for every member of one team in a grant."""
    return {"type": "team", "id": team_id}


def principals_of(user) -> list[dict]:
    """Every principal ``user`` acts as: the user, then each of their teams (``user.team_ids``,
    filled when the user is read from the database)."""
    if user is None or getattr(user, "id", None) is None:
        return []
    return [user_principal(user.id)] + [team_principal(t)
                                        for t in sorted(getattr(user, "team_ids", ()) or ())]


@dataclass
class Team:
    """A group of users (its memberships are :class:`TeamMembership` documents)."""

    name: str
    slug: str
    description: str = ""
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def to_document(self) -> dict:
        return {"_id": self.id, "name": self.name, "slug": self.slug,
                "description": self.description, "created_at": to_iso(self.created_at),
                "updated_at": to_iso(self.updated_at)}

    @classmethod
    def from_document(cls, doc: dict) -> Team:
        return cls(id=doc["_id"], name=doc["name"], slug=doc["slug"],
                   description=doc.get("description", ""),
                   created_at=from_iso(doc["created_at"]), updated_at=from_iso(doc["updated_at"]))


@dataclass
class TeamMembership:
    """One user in one team, as ``lead`` or ``member``; ``source`` says who manages it:
    ``local`` (an admin or lead added them) or ``sso`` (the single sign-on claim mapped them,
    and a later login without the claim removes them)."""

    team_id: str
    user_id: str
    role: str = "member"
    source: str = "local"
    added_at: datetime = field(default_factory=utcnow)

    @property
    def id(self) -> str:
        return f"{self.team_id}:{self.user_id}"

    def to_document(self) -> dict:
        return {"_id": self.id, "team_id": self.team_id, "user_id": self.user_id,
                "role": self.role, "source": self.source, "added_at": to_iso(self.added_at)}

    @classmethod
    def from_document(cls, doc: dict) -> TeamMembership:
        return cls(team_id=doc["team_id"], user_id=doc["user_id"],
                   role=doc.get("role", "member"), source=doc.get("source", "local"),
                   added_at=from_iso(doc["added_at"]))


class TeamRepository:
    """Teams and their memberships (two collections)."""

    def __init__(self, teams: Collection, memberships: Collection):
        self.collection = teams
        self.memberships = memberships

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["slug"], unique=True)
        self.memberships.ensure_index(["user_id"])
        self.memberships.ensure_index(["team_id"])

    # -- teams ---------------------------------------------------------------------------
    def add(self, team: Team) -> Team:
        """Insert ``team``; raises DuplicateKey if its slug is taken."""
        self.collection.insert(team.to_document())
        return team

    def get(self, team_id: str) -> Team | None:
        doc = self.collection.get(team_id)
        return Team.from_document(doc) if doc else None

    def get_by_slug(self, slug: str) -> Team | None:
        doc = self.collection.find_one({"slug": slug})
        return Team.from_document(doc) if doc else None

    def get_many(self, team_ids) -> list[Team]:
        """The teams with these ids that exist, by name."""
        ids = sorted(set(team_ids))
        if not ids:
            return []
        return [Team.from_document(d)
                for d in self.collection.find({"_id": {"$in": ids}}, sort=[("name", 1)])]

    def list(self) -> list[Team]:
        return [Team.from_document(d) for d in self.collection.find(sort=[("name", 1)])]

    def save(self, team: Team) -> None:
        """Write ``team`` back; raises DuplicateKey if its new slug is taken."""
        team.updated_at = utcnow()
        doc = team.to_document()
        doc.pop("_id")
        self.collection.update_one({"_id": team.id}, doc)

    def delete(self, team_id: str) -> list[str]:
        """Delete the team and its memberships; returns the ids of the users it had."""
        members = [m.user_id for m in self.members(team_id)]
        self.memberships.delete_many({"team_id": team_id})
        self.collection.delete_many({"_id": team_id})
        return members

    # -- memberships ---------------------------------------------------------------------
    def members(self, team_id: str) -> list[TeamMembership]:
        return [TeamMembership.from_document(d)
                for d in self.memberships.find({"team_id": team_id}, sort=[("user_id", 1)])]

    def membership(self, team_id: str, user_id: str) -> TeamMembership | None:
        doc = self.memberships.get(f"{team_id}:{user_id}")
        return TeamMembership.from_document(doc) if doc else None

    def memberships_of(self, user_id: str) -> list[TeamMembership]:
        return [TeamMembership.from_document(d)
                for d in self.memberships.find({"user_id": user_id})]

    def team_ids_of(self, user_id: str) -> frozenset[str]:
        """The ids of the teams ``user_id`` belongs to (one indexed look-up)."""
        return frozenset(d["team_id"] for d in self.memberships.find({"user_id": user_id}))

    def teams_of(self, user_id: str) -> list[Team]:
        """The teams ``user_id`` belongs to, by name."""
        return self.get_many(self.team_ids_of(user_id))

    def team_ids_by_user(self, user_ids=None) -> dict[str, frozenset[str]]:
        """Team ids per user, for many users in one query (all users when None)."""
        found: dict[str, set[str]] = {}
        query = None if user_ids is None else {"user_id": {"$in": sorted(set(user_ids))}}
        for doc in self.memberships.find(query):
            found.setdefault(doc["user_id"], set()).add(doc["team_id"])
        return {user: frozenset(teams) for user, teams in found.items()}

    def put_member(self, membership: TeamMembership) -> TeamMembership:
        """Add the membership, or change the role and source of an existing one."""
        doc = membership.to_document()
        if self.memberships.get(membership.id) is None:
            try:
                self.memberships.insert(doc)
                return membership
            except DuplicateKey:  # added meanwhile: update it below
                pass
        doc.pop("_id")
        doc.pop("added_at")
        self.memberships.update_one({"_id": membership.id}, doc)
        return membership

    def remove_member(self, team_id: str, user_id: str) -> bool:
        """Take the user out of the team; True if they were in it."""
        return self.memberships.delete_many({"_id": f"{team_id}:{user_id}"}) > 0
