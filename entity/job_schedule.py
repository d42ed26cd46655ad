"""When each periodic job is next due, so that one process among many runs each period's turn."""

from __future__ import annotations

from datetime import datetime, timedelta

from entity.base import to_iso, utcnow
from entity.store import Collection
from exception_layer import DuplicateKey


class JobScheduleRepository:
    """One document per periodic job: ``{"_id": name, "due_at": ...}``."""

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
