"""A project's webhook (where incident events are posted) and the log of its deliveries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from entity.base import from_iso, new_sortable_id, to_iso, utcnow
from entity.store import Collection

DELIVERY_STATUSES = ("pending", "sending", "delivered", "failed")


@dataclass
class Webhook:
    """One per project. ``secret`` is the signing secret encrypted at rest (a
    ``SecretBox`` token): it is shown in clear once, when the webhook is created."""

    project_id: str
    url: str
    secret: str
    enabled: bool = True
    created_at: datetime = field(default_factory=utcnow)

    def to_document(self) -> dict:
        return {"_id": self.project_id, "project_id": self.project_id, "url": self.url,
                "secret": self.secret, "enabled": self.enabled,
                "created_at": to_iso(self.created_at)}

    @classmethod
    def from_document(cls, doc: dict) -> Webhook:
        return cls(project_id=doc["project_id"], url=doc["url"], secret=doc["secret"],
                   enabled=doc.get("enabled", True), created_at=from_iso(doc["created_at"]))

    def to_public(self) -> dict:
        """Without the secret."""
        return {"project_id": self.project_id, "url": self.url, "enabled": self.enabled,
                "created_at": to_iso(self.created_at)}


class WebhookRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        return None

    def get(self, project_id: str) -> Webhook | None:
        doc = self.collection.get(project_id)
        return Webhook.from_document(doc) if doc else None

    def put(self, webhook: Webhook) -> None:
        """Create or replace the project's webhook."""
        self.collection.delete_many({"_id": webhook.project_id})
        self.collection.insert(webhook.to_document())

    def delete(self, project_id: str) -> bool:
        return self.collection.delete_many({"_id": project_id}) == 1

    def delete_for_project(self, project_id: str) -> int:
        return self.collection.delete_many({"_id": project_id})


@dataclass
class Delivery:
    """One event to post to a project's webhook, with every attempt made
    (``{"attempt", "at", "status_code", "error"}``)."""

    project_id: str
    event: str
    body: str
    url: str
    incident_id: str | None = None
    status: str = "pending"
    attempts: list = field(default_factory=list)
    next_attempt_at: datetime | None = field(default_factory=utcnow)
    created_at: datetime = field(default_factory=utcnow)
    id: str = field(default_factory=new_sortable_id)

    def to_document(self) -> dict:
        return {"_id": self.id, "project_id": self.project_id, "event": self.event,
                "body": self.body, "url": self.url, "incident_id": self.incident_id,
                "status": self.status, "attempts": self.attempts,
                "next_attempt_at": to_iso(self.next_attempt_at),
                "created_at": to_iso(self.created_at)}

    @classmethod
    def from_document(cls, doc: dict) -> Delivery:
        fields = {k: v for k, v in doc.items() if k not in ("_id", "claimed_at")}
        fields["next_attempt_at"] = from_iso(fields.get("next_attempt_at"))
        fields["created_at"] = from_iso(fields["created_at"])
        return cls(id=doc["_id"], **fields)

    def to_public(self) -> dict:
        doc = self.to_document()
        doc["id"] = doc.pop("_id")
        return doc


class DeliveryRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["status", "next_attempt_at"])
        self.collection.ensure_index(["project_id", "created_at"])

    def add(self, delivery: Delivery) -> Delivery:
        self.collection.insert(delivery.to_document())
        return delivery

    def due(self, now: datetime, limit: int = 20) -> list[Delivery]:
        docs = self.collection.find({"status": "pending",
                                     "next_attempt_at": {"$lte": to_iso(now)}},
                                    sort=[("next_attempt_at", 1)], limit=limit)
        return [Delivery.from_document(d) for d in docs]

    def claim(self, delivery: Delivery, now: datetime) -> bool:
        """Take a due delivery for one attempt: True for one caller in any process."""
        return self.collection.update_one(
            {"_id": delivery.id, "status": "pending",
             "next_attempt_at": to_iso(delivery.next_attempt_at)},
            {"status": "sending", "claimed_at": to_iso(now)})

    def release_stale(self, before: datetime) -> int:
        """Put back deliveries whose sender died mid-attempt (claimed before ``before``)."""
        return self.collection.update_many({"status": "sending",
                                            "claimed_at": {"$lt": to_iso(before)}},
                                           {"status": "pending"})

    def finish(self, delivery: Delivery) -> None:
        doc = delivery.to_document()
        self.collection.update_one({"_id": delivery.id}, {k: v for k, v in doc.items()
                                                          if k != "_id"})

    def list(self, project_id: str, *, skip: int = 0, limit: int = 50) -> tuple[list, int]:
        query = {"project_id": project_id}
        docs = self.collection.find(query, sort=[("created_at", -1)], skip=skip, limit=limit)
        return [Delivery.from_document(d) for d in docs], self.collection.count(query)

    def delete_for_project(self, project_id: str) -> int:
        return self.collection.delete_many({"project_id": project_id})
