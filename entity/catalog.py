"""The model catalog: tags, listings (a published model version), subscriptions of consumers
with their keys and quotas, and the record of each consumer call.

A listing's document keeps, beside what its owner chose (title, summary, readme, visibility,
teams, template, a pinned version or none to follow the project's active version), a snapshot
of what search filters on: the answering version's problem type, metrics (as top-level
``metric_<name>`` numbers, so range filters are plain comparisons), input columns, tags, its
freshness, and its ``audience``: the principals that may see it (``public``, ``org``,
``team:<id>``, ``user:<id>``), matched with ``$overlaps`` against the caller's own. The
snapshot is written by :func:`refresh_listings` whenever what it copies changes (publishing,
editing, promotion after training, promote, rollback, tags).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from entity.base import from_iso, new_id, to_iso, utcnow
from entity.security import hash_secret
from entity.store import Collection
from exception_layer import ValidationFailed

#: the most tags one project, version or listing carries, and the longest tag
MAX_TAGS = 20
MAX_TAG_LENGTH = 40
_TAG = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")
_SPACES = re.compile(r"\s+")

#: who may see a listing: everyone logged in, chosen teams, or also anonymous callers (the
#: card only: predicting always needs a consumer key)
VISIBILITIES = ("organisation", "teams", "public")
LISTING_STATUSES = ("published", "unpublished")
#: the text a search matches (the database's own full-text index covers these fields)
TEXT_FIELDS = ("title", "summary", "readme", "project_name", "columns", "tags")
#: the fields search filters on by value, indexed beside the text (see Collection.search)
KEYWORD_FIELDS = ("status", "audience", "tags", "columns", "problem_type", "owner_id",
                  "owner_teams")
#: quota bounds: requests per minute and per day of one consumer
MAX_PER_MINUTE = 10_000
MAX_PER_DAY = 10_000_000


def normalise_tag(raw) -> str:
    """One tag as stored: trimmed, lower-cased, inner spaces as one ``-``.

    Raises:
        ValidationFailed: not text, empty, longer than :data:`MAX_TAG_LENGTH`, or with other
            characters than letters, digits and ``- _ . +`` (details under ``tags``).
    """
    if not isinstance(raw, str):
        raise ValidationFailed("Tags must be text.", details={"tags": "Each tag must be text."})
    tag = _SPACES.sub("-", raw.strip().lower())
    if not tag:
        problem = "A tag cannot be empty."
    elif len(tag) > MAX_TAG_LENGTH:
        problem = f"A tag has at most {MAX_TAG_LENGTH} characters; {tag[:20]!r}... is longer."
    elif not _TAG.match(tag):
        problem = (f"The tag {tag[:MAX_TAG_LENGTH]!r} may hold only letters, digits and "
                   "- _ . + (and start with a letter or digit).")
    else:
        return tag
    raise ValidationFailed("A tag is not valid.", details={"tags": problem})


def normalise_tags(raw) -> list[str]:
    """A list of tags, each normalised (:func:`normalise_tag`), each once, in order.

    Raises:
        ValidationFailed: not a list, more than :data:`MAX_TAGS`, or a bad tag.
    """
    if not isinstance(raw, list):
        raise ValidationFailed("Tags must be a list.", details={"tags": "Send a list of tags."})
    tags = list(dict.fromkeys(normalise_tag(t) for t in raw))
    if len(tags) > MAX_TAGS:
        raise ValidationFailed("Too many tags.", details={
            "tags": f"At most {MAX_TAGS} tags; {len(tags)} were sent."})
    return tags


def metric_field(name: str) -> str:
    """The top-level field of a listing that holds metric ``name``."""
    return f"metric_{name}"


@dataclass
class Listing:
    """A model version published to the catalog (see the module's note)."""

    project_id: str
    owner_id: str
    title: str
    summary: str = ""
    readme: str = ""
    visibility: str = "organisation"
    teams: list[str] = field(default_factory=list)
    template: bool = False
    pinned_version: int | None = None
    tags: list[str] = field(default_factory=list)  # the listing's own tags
    status: str = "published"
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    #: what search reads, written by refresh_listings (see the module's note)
    snapshot: dict = field(default_factory=dict)

    @property
    def version(self) -> int | None:
        """The version that answers: the pinned one, else the project's active one."""
        return self.snapshot.get("version")

    def to_document(self) -> dict:
        return {**self.snapshot, "_id": self.id, "project_id": self.project_id,
                "owner_id": self.owner_id, "title": self.title, "summary": self.summary,
                "readme": self.readme, "visibility": self.visibility, "teams": list(self.teams),
                "template": self.template, "pinned_version": self.pinned_version,
                "own_tags": list(self.tags), "status": self.status,
                "created_at": to_iso(self.created_at), "updated_at": to_iso(self.updated_at)}

    @classmethod
    def from_document(cls, doc: dict) -> Listing:
        own = {"_id", "project_id", "owner_id", "title", "summary", "readme", "visibility",
               "teams", "template", "pinned_version", "own_tags", "status", "created_at",
               "updated_at"}
        return cls(id=doc["_id"], project_id=doc["project_id"], owner_id=doc["owner_id"],
                   title=doc["title"], summary=doc.get("summary", ""),
                   readme=doc.get("readme", ""), visibility=doc.get("visibility", "organisation"),
                   teams=list(doc.get("teams") or []), template=bool(doc.get("template")),
                   pinned_version=doc.get("pinned_version"), tags=list(doc.get("own_tags") or []),
                   status=doc.get("status", "published"), created_at=from_iso(doc["created_at"]),
                   updated_at=from_iso(doc["updated_at"]),
                   snapshot={k: v for k, v in doc.items() if k not in own})

    def audience(self, project_member_ids, project_team_ids=()) -> list[str]:
        """The principals that may see this listing (its owner and the project's people and
        teams always, whatever the visibility)."""
        people = [f"user:{self.owner_id}"] + [f"user:{m}" for m in sorted(project_member_ids)]
        people += [f"team:{t}" for t in sorted(project_team_ids) if t not in self.teams]
        if self.visibility == "public":
            return ["public", "org", *people]
        if self.visibility == "organisation":
            return ["org", *people]
        return [f"team:{t}" for t in self.teams] + people


def audience_of(user) -> list[str]:
    """The principals a caller acts as when searching (anonymous: ``public`` only)."""
    if user is None or getattr(user, "id", None) is None:
        return ["public"]
    return ["public", "org", f"user:{user.id}",
            *(f"team:{t}" for t in sorted(getattr(user, "team_ids", ()) or ()))]


class ListingRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["project_id"])
        self.collection.ensure_index(["status", "fresh_at"])
        self.collection.ensure_text_index(TEXT_FIELDS, keywords=KEYWORD_FIELDS)

    def add(self, listing: Listing) -> Listing:
        self.collection.insert(listing.to_document())
        return listing

    def get(self, listing_id: str) -> Listing | None:
        doc = self.collection.get(listing_id)
        return Listing.from_document(doc) if doc else None

    def for_project(self, project_id: str) -> list[Listing]:
        return [Listing.from_document(d) for d in
                self.collection.find({"project_id": project_id}, sort=[("created_at", 1)])]

    def save(self, listing: Listing) -> None:
        listing.updated_at = utcnow()
        doc = listing.to_document()
        doc.pop("_id")
        self.collection.update_one({"_id": listing.id}, doc)

    def search(self, text: str, filter: dict, *, sort, skip: int, limit: int
               ) -> tuple[list[Listing], int]:
        docs, total = self.collection.search(text, filter, sort=sort, skip=skip, limit=limit)
        return [Listing.from_document(d) for d in docs], total

    def delete(self, listing_id: str) -> int:
        return self.collection.delete_many({"_id": listing_id})

    def delete_for_project(self, project_id: str) -> int:
        return self.collection.delete_many({"project_id": project_id})


# -- consumers ---------------------------------------------------------------------------------

KEY_PREFIX = "tyc_"


@dataclass
class Subscription:
    """A consumer's use of one listing: the key (stored hashed), its quotas, its state."""

    listing_id: str
    user_id: str
    key_hash: str
    per_minute: int
    per_day: int
    status: str = "active"  # active | revoked
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    revoked_at: datetime | None = None

    @staticmethod
    def issue(listing_id: str, user_id: str, per_minute: int, per_day: int
              ) -> tuple[Subscription, str]:
        """A new subscription and its clear key ``tyc_<id>_<secret>`` (shown once)."""
        import secrets

        secret = secrets.token_urlsafe(32)
        sub = Subscription(listing_id=listing_id, user_id=user_id,
                           key_hash=hash_secret(secret), per_minute=per_minute, per_day=per_day)
        return sub, f"{KEY_PREFIX}{sub.id}_{secret}"

    @staticmethod
    def split(value: str) -> tuple[str, str] | None:
        """``(subscription id, secret)`` of a clear key, or None when it is not one."""
        if not value.startswith(KEY_PREFIX):
            return None
        sub_id, _, secret = value[len(KEY_PREFIX):].partition("_")
        return (sub_id, secret) if sub_id and secret else None

    def matches(self, secret: str) -> bool:
        import hmac

        return self.status == "active" and hmac.compare_digest(self.key_hash,
                                                               hash_secret(secret))

    def to_document(self) -> dict:
        return {"_id": self.id, "listing_id": self.listing_id, "user_id": self.user_id,
                "key_hash": self.key_hash, "per_minute": self.per_minute,
                "per_day": self.per_day, "status": self.status,
                "created_at": to_iso(self.created_at), "revoked_at": to_iso(self.revoked_at)}

    @classmethod
    def from_document(cls, doc: dict) -> Subscription:
        return cls(id=doc["_id"], listing_id=doc["listing_id"], user_id=doc["user_id"],
                   key_hash=doc["key_hash"], per_minute=doc["per_minute"],
                   per_day=doc["per_day"], status=doc.get("status", "active"),
                   created_at=from_iso(doc["created_at"]),
                   revoked_at=from_iso(doc.get("revoked_at")))


class SubscriptionRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["listing_id"])
        self.collection.ensure_index(["user_id"])

    def add(self, sub: Subscription) -> Subscription:
        self.collection.insert(sub.to_document())
        return sub

    def get(self, sub_id: str) -> Subscription | None:
        doc = self.collection.get(sub_id)
        return Subscription.from_document(doc) if doc else None

    def for_listing(self, listing_id: str) -> list[Subscription]:
        return [Subscription.from_document(d) for d in
                self.collection.find({"listing_id": listing_id}, sort=[("created_at", 1)])]

    def for_user(self, user_id: str) -> list[Subscription]:
        return [Subscription.from_document(d) for d in
                self.collection.find({"user_id": user_id}, sort=[("created_at", 1)])]

    def save_quota(self, sub: Subscription) -> None:
        self.collection.update_one({"_id": sub.id}, {"per_minute": sub.per_minute,
                                                     "per_day": sub.per_day})

    def revoke(self, sub_id: str) -> bool:
        return self.collection.update_one({"_id": sub_id, "status": "active"},
                                          {"status": "revoked", "revoked_at": to_iso(utcnow())})

    def delete_for_listing(self, listing_id: str) -> int:
        return self.collection.delete_many({"listing_id": listing_id})


class ConsumerCallRepository:
    """One document per consumer call (what the owner's usage page sums up)."""

    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["subscription_id", "at"])
        self.collection.ensure_index(["listing_id"])

    def record(self, sub: Subscription, kind: str, rows: int, ok: bool,
               milliseconds: float) -> None:
        self.collection.insert({"_id": new_id(), "subscription_id": sub.id,
                                "listing_id": sub.listing_id, "kind": kind, "rows": rows,
                                "ok": ok, "ms": round(milliseconds, 3), "at": to_iso(utcnow())})

    def for_subscription(self, sub_id: str, since: datetime | None = None) -> list[dict]:
        query: dict = {"subscription_id": sub_id}
        if since is not None:
            query["at"] = {"$gte": to_iso(since)}
        return self.collection.find(query, sort=[("at", 1)])

    def delete_for_listing(self, listing_id: str) -> int:
        return self.collection.delete_many({"listing_id": listing_id})


# -- the snapshot search reads ---------------------------------------------------------------

def snapshot_of(listing: Listing, project, version, project_tags: list[str],
                owner_name: str, owner_team_ids) -> dict:
    """What search filters on, copied from the project and its answering ``version``
    (None while the project has no model)."""
    metrics = version.metrics if version is not None else {}
    numbers = {metric_field(name): float(value) for name, value in metrics.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)
               and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name)}
    # "f1" is what people write: the selection metric's macro F1
    if "metric_f1_macro" in numbers and "metric_f1" not in numbers:
        numbers["metric_f1"] = numbers["metric_f1_macro"]
    version_tags = list(getattr(version, "tags", []) or []) if version is not None else []
    features = [c for c in project.schema.feature_columns]
    return {
        **numbers,
        "metric_names": sorted(n[len("metric_"):] for n in numbers),
        "version": version.version if version is not None else None,
        "problem_type": project.problem_type,
        "project_name": project.name,
        "columns": [c.name.lower() for c in features],
        "tags": list(dict.fromkeys([*listing.tags, *project_tags, *version_tags])),
        "fresh_at": to_iso(version.created_at) if version is not None else None,
        "owner_name": owner_name,
        "owner_teams": sorted({*owner_team_ids, *getattr(project, "teams", {}).keys()}),
        "audience": listing.audience(project.members.keys(),
                                     getattr(project, "teams", {}).keys()),
    }


def refresh_listings(db, project_id: str) -> int:
    """Rewrite the search snapshot of every listing of a project (after anything it copies
    changed); returns how many. ``db`` is the :class:`entity.database.Database`."""
    listings = db.listings.for_project(project_id)
    if not listings:
        return 0
    project = db.projects.get(project_id)
    if project is None:
        return 0
    owner = db.users.get(project.owner_id)
    teams = getattr(owner, "team_ids", ()) or ()
    for listing in listings:
        number = listing.pinned_version or project.active_version
        version = db.model_versions.get(project.id, number) if number else None
        listing.owner_id = project.owner_id
        listing.snapshot = snapshot_of(listing, project, version,
                                       list(project.settings.get("tags") or []),
                                       owner.name if owner else "", teams)
        db.listings.save(listing)
    return len(listings)


def forget_project_listings(db, project_id: str) -> int:
    """Delete a project's listings with their subscriptions (every key stops) and calls."""
    listings = db.listings.for_project(project_id)
    for listing in listings:
        db.subscriptions.delete_for_listing(listing.id)
        db.consumer_calls.delete_for_listing(listing.id)
        db.listings.delete(listing.id)
    return len(listings)
