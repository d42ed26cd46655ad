"""Per-project overrides of the execution limits (``thread_layer.sandbox.Limits``), set by
administrators only. One document per project: ``{"_id": project_id, "limits": {name: value},
"updated_by": user id, "updated_at": ISO time}``."""

from __future__ import annotations

from entity.base import to_iso, utcnow
from entity.store import Collection


class ExecutionLimitsRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        return None

    def get(self, project_id: str) -> dict:
        """The overrides of ``project_id`` (empty: the install's defaults)."""
        doc = self.collection.get(project_id)
        return dict(doc.get("limits") or {}) if doc else {}

    def set(self, project_id: str, limits: dict, user_id: str | None) -> None:
        doc = {"limits": limits, "updated_by": user_id, "updated_at": to_iso(utcnow())}
        if self.collection.get(project_id) is None:
            self.collection.insert({"_id": project_id, **doc})
        else:
            self.collection.update_one({"_id": project_id}, doc)

    def delete(self, project_id: str) -> None:
        self.collection.delete_many({"_id": project_id})
