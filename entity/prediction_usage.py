"""Real-time prediction counters, kept in the database so that they outlive a restart and add
up across web processes.

Each web process (an *instance*) owns one document per model version it served: its counts
since it started and its latency histograms per UTC hour. It only ever overwrites its own
documents, so no increment is needed from the store, and the counters of a version are the sum
of its documents.
"""

from __future__ import annotations

from entity.store import Collection
from exception_layer import DuplicateKey


class PredictionUsageRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["project_id", "version"])

    @staticmethod
    def _id(project_id: str, version: int, instance: str) -> str:
        return f"{project_id}:v{version}:{instance}"

    def save(self, project_id: str, version: int, instance: str, counts: dict, *,
             first: bool) -> bool:
        """Write ``instance``'s ``counts`` of a version (``requests``, ``rows``, ``errors``,
        ``latency_hours``). ``first``: this instance has not written them before, so the
        document is created. Returns False when a document written before is gone: the version
        or project was deleted meanwhile, and the counts must not come back."""
        doc_id = self._id(project_id, version, instance)
        if not first:
            return self.collection.update_one({"_id": doc_id}, counts)
        try:
            self.collection.insert({"_id": doc_id, "project_id": project_id, "version": version,
                                    "instance": instance, **counts})
        except DuplicateKey:  # written by an earlier flush that seemed to fail
            return self.collection.update_one({"_id": doc_id}, counts)
        return True

    def for_project(self, project_id: str) -> list[dict]:
        return self.collection.find({"project_id": project_id})

    def delete(self, project_id: str, version: int | None = None) -> int:
        """Forget a version's counters, or all of a project's."""
        query = {"project_id": project_id}
        if version is not None:
            query["version"] = version
        return self.collection.delete_many(query)
