"""Storage connections: where projects' files may live, with their secrets encrypted, and who
may place projects on them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from entity.base import from_iso, new_id, to_iso, utcnow
from entity.store import Collection
from entity.team import (  # noqa: F401 (the principals, defined with teams)
    PRINCIPAL_TYPES,
    principals_of,
    team_principal,
    user_principal,
)


@dataclass
class StorageConnection:
    """A named storage (``kind`` local, s3, azure or gcs).

    ``settings`` holds the non-secret fields (bucket, prefix, region...); ``secrets`` is the
    Fernet token of the JSON of the secret fields, never their clear text.

    Only admins and the principals in ``grants`` (``{"type": "user", "id": ...}``) may create
    projects on the connection or move projects to it (a team principal, ``{"type": "team", "id":
    ...}``, stands for each member of the team), unless ``available_to_all`` is set; to
    anyone else it does not exist.
    """

    name: str
    kind: str
    settings: dict
    secrets: str = ""
    grants: list[dict] = field(default_factory=list)
    available_to_all: bool = False
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def to_document(self) -> dict:
        return {"_id": self.id, "name": self.name, "kind": self.kind, "settings": self.settings,
                "secrets": self.secrets, "grants": [dict(g) for g in self.grants],
                "available_to_all": self.available_to_all, "created_at": to_iso(self.created_at),
                "updated_at": to_iso(self.updated_at)}

    @classmethod
    def from_document(cls, doc: dict) -> StorageConnection:
        return cls(id=doc["_id"], name=doc["name"], kind=doc["kind"],
                   settings=dict(doc.get("settings") or {}), secrets=doc.get("secrets", ""),
                   grants=[dict(g) for g in doc.get("grants") or []],
                   available_to_all=bool(doc.get("available_to_all")),
                   created_at=from_iso(doc["created_at"]), updated_at=from_iso(doc["updated_at"]))

    def usable_by(self, user) -> bool:
        """Whether ``user`` may put projects on this connection (admins always may)."""
        if user is None or not getattr(user, "is_authenticated", True):
            return False
        if getattr(user, "is_admin", False) or self.available_to_all:
            return True
        return any(p in self.grants for p in principals_of(user))


class StorageConnectionRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["name"], unique=True)

    def add(self, connection: StorageConnection) -> StorageConnection:
        self.collection.insert(connection.to_document())
        return connection

    def get(self, connection_id: str) -> StorageConnection | None:
        doc = self.collection.get(connection_id)
        return StorageConnection.from_document(doc) if doc else None

    def list(self) -> list[StorageConnection]:
        return [StorageConnection.from_document(d)
                for d in self.collection.find(sort=[("name", 1)])]

    def save(self, connection: StorageConnection) -> None:
        connection.updated_at = utcnow()
        doc = connection.to_document()
        doc.pop("_id")
        self.collection.update_one({"_id": connection.id}, doc)

    def delete(self, connection_id: str) -> None:
        self.collection.delete_many({"_id": connection_id})
