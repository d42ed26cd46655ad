"""When each periodic job is next due, so that one process among many runs each period's turn."""

from __future__ import annotations

from datetime import datetime, timedelta

from entity.base import to_iso, utcnow
from entity.store import Collection
from exception_layer import DuplicateKey


class JobScheduleRepository:
    """One document per periodic job: ``{"_id": name, "due_at": ...}``, and one per lease:
    ``{"_id": name, "owner": ..., "expires_at": ...}``."""

    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        return None

    def claim(self, name: str, every: timedelta, now: datetime | None = None) -> bool:
        """Take the current turn of job ``name``: True for one caller, in any process, until
        ``every`` has passed; False while the turn is someone else's (or already done)."""
        now = now or utcnow()
        due = {"due_at": to_iso(now + every)}
        try:
            self.collection.insert({"_id": name, **due})
            return True
        except DuplicateKey:
            return self.collection.update_one({"_id": name, "due_at": {"$lte": to_iso(now)}},
                                              due)

    def acquire_lease(self, name: str, owner: str, ttl: timedelta,
                      now: datetime | None = None) -> bool:
        """Hold the lease ``name`` for ``owner`` until ``now + ttl``: True if ``owner`` holds it
        now (taken fresh, renewed, or taken over after its holder let it expire), False while
        another owner's lease runs. Each step is one conditional update, so two processes
        never both hold it; the holder renews it well before ``ttl`` (its heartbeat)."""
        now = now or utcnow()
        lease = {"owner": owner, "expires_at": to_iso(now + ttl)}
        try:
            self.collection.insert({"_id": name, **lease})
            return True
        except DuplicateKey:
            pass
        if self.collection.update_one({"_id": name, "owner": owner}, lease):
            return True
        return self.collection.update_one({"_id": name, "expires_at": {"$lte": to_iso(now)}},
                                          lease)

    def release_lease(self, name: str, owner: str) -> bool:
        """Give the lease up at once (a stopping process), if ``owner`` holds it."""
        return self.collection.update_one({"_id": name, "owner": owner},
                                          {"expires_at": to_iso(datetime.min.replace(
                                              tzinfo=utcnow().tzinfo))})

    def lease_holder(self, name: str, now: datetime | None = None) -> str | None:
        """Who holds the lease ``name`` now, or None."""
        doc = self.collection.get(name)
        now = now or utcnow()
        if not doc or not doc.get("owner") or (doc.get("expires_at") or "") <= to_iso(now):
            return None
        return doc["owner"]
