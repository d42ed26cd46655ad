"""Prediction records: one document per predicted row, real-time or batch, and its label.

Every row a model predicts gets a ``prediction_id`` (returned to the caller) and, unless the
project samples real-time traffic, a document here::

    {"_id": prediction_id, "project_id", "version", "source": "realtime" | "batch",
     "execution_id" (batch) | None, "created_at": ISO-8601 UTC, "inputs": {column: value},
     "output", "probabilities": {class: p} | None, "latency_ms" (real time) | None,
     "actual": None | value, "labeled_at": None | ISO-8601 UTC, "shadow": None | {...}}

Feedback sets ``actual`` and ``labeled_at`` once (:meth:`PredictionRecordRepository.label`
refuses a second label atomically). The monitoring and the retraining read these documents;
:func:`new_record` is the one place that builds them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import datetime

from entity.base import to_iso, utcnow
from entity.store import Collection

SOURCES = ("realtime", "batch")


def new_prediction_ids(count: int) -> list[str]:
    """``count`` fresh prediction ids: random 128-bit numbers as 32 hex digits (the form of
    ``uuid4().hex``), read from the system's random source in one call, not one per row."""
    raw = os.urandom(16 * count).hex()
    return [raw[i:i + 32] for i in range(0, 32 * count, 32)]


def new_prediction_id() -> str:
    """One fresh prediction id."""
    return new_prediction_ids(1)[0]


def new_record(prediction_id: str, project_id: str, version: int, source: str, created_at: str,
               inputs: dict, output, probabilities: dict | None = None, *,
               execution_id: str | None = None, latency_ms: float | None = None) -> dict:
    """The document of one predicted row (``created_at`` already an ISO string: a batch of
    rows shares one)."""
    return {"_id": prediction_id, "project_id": project_id, "version": version,
            "source": source, "execution_id": execution_id, "created_at": created_at,
            "inputs": inputs, "output": output, "probabilities": probabilities,
            "latency_ms": latency_ms, "actual": None, "labeled_at": None, "shadow": None}


class PredictionRecordRepository:
    """The ``prediction_records`` collection."""

    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["project_id", "created_at"])
        self.collection.ensure_index(["project_id", "version", "created_at"])
        self.collection.ensure_index(["project_id", "labeled_at"])
        # (no index on created_at alone: retention deletes project by project; each index
        # costs every real-time record's insert a few microseconds)

    def add_many(self, docs: Sequence[dict]) -> None:
        """Insert documents built by :func:`new_record`, in one write."""
        if docs:
            self.collection.insert_many(docs)

    def get(self, prediction_id: str) -> dict | None:
        return self.collection.get(prediction_id)

    def get_many(self, prediction_ids: Sequence[str]) -> dict[str, dict]:
        """The records of these ids that exist, by id (whatever their project)."""
        found: dict[str, dict] = {}
        ids = list(dict.fromkeys(prediction_ids))
        for start in range(0, len(ids), 500):
            for doc in self.collection.find({"_id": {"$in": ids[start:start + 500]}}):
                found[doc["_id"]] = doc
        return found

    @staticmethod
    def _filter(project_id: str, *, version: int | None = None, source: str | None = None,
                since: datetime | None = None, until: datetime | None = None,
                labeled: bool | None = None, labeled_since: datetime | None = None) -> dict:
        query: dict = {"project_id": project_id}
        if version is not None:
            query["version"] = version
        if source is not None:
            query["source"] = source
        created: dict = {}
        if since is not None:
            created["$gte"] = to_iso(since)
        if until is not None:
            created["$lt"] = to_iso(until)
        if created:
            query["created_at"] = created
        if labeled_since is not None:
            query["labeled_at"] = {"$gte": to_iso(labeled_since)}
        elif labeled is True:
            query["labeled_at"] = {"$ne": None}
        elif labeled is False:
            query["labeled_at"] = None
        return query

    def find(self, project_id: str, *, version: int | None = None, source: str | None = None,
             since: datetime | None = None, until: datetime | None = None,
             labeled: bool | None = None, labeled_since: datetime | None = None,
             skip: int = 0, limit: int = 0, newest_first: bool = False) -> list[dict]:
        """A project's records matching the filters (``since`` included, ``until`` excluded;
        ``labeled``: only those with or without a label; ``labeled_since``: labeled at or
        after), oldest first unless ``newest_first``."""
        order = -1 if newest_first else 1
        return self.collection.find(
            self._filter(project_id, version=version, source=source, since=since, until=until,
                         labeled=labeled, labeled_since=labeled_since),
            sort=[("created_at", order), ("_id", order)], skip=skip, limit=limit)

    def iterate(self, project_id: str, *, chunk: int = 1000, **filters) -> Iterator[dict]:
        """Every matching record, oldest first, read ``chunk`` at a time (exports)."""
        skip = 0
        while True:
            docs = self.find(project_id, skip=skip, limit=chunk, **filters)
            yield from docs
            if len(docs) < chunk:
                return
            skip += chunk

    def count(self, project_id: str, *, version: int | None = None, source: str | None = None,
              since: datetime | None = None, until: datetime | None = None,
              labeled: bool | None = None, labeled_since: datetime | None = None) -> int:
        """How many records :meth:`find` would give."""
        return self.collection.count(self._filter(
            project_id, version=version, source=source, since=since, until=until,
            labeled=labeled, labeled_since=labeled_since))

    def label(self, project_id: str, prediction_id: str, actual,
              labeled_at: datetime | None = None) -> bool:
        """Set the ground truth of one of ``project_id``'s records, if it has none yet (one
        atomic conditional update: of two racing labels, one wins). False: unknown id,
        another project's record, or labeled already."""
        return self.collection.update_one(
            {"_id": prediction_id, "project_id": project_id, "labeled_at": None},
            {"actual": actual, "labeled_at": to_iso(labeled_at or utcnow())})

    def set_shadow(self, prediction_id: str, shadow: dict) -> bool:
        """Attach a challenger's answer to a record (shadow mode)."""
        return self.collection.update_one({"_id": prediction_id}, {"shadow": shadow})

    def delete_older_than(self, moment: datetime, project_id: str | None = None) -> int:
        """Delete the records created before ``moment`` (of one project, or of all)."""
        query: dict = {"created_at": {"$lt": to_iso(moment)}}
        if project_id is not None:
            query["project_id"] = project_id
        return self.collection.delete_many(query)

    def delete_for_execution(self, project_id: str, execution_id: str) -> int:
        """Forget the records of one batch prediction (it failed or was cancelled)."""
        return self.collection.delete_many({"project_id": project_id,
                                            "execution_id": execution_id})

    def delete_for_project(self, project_id: str, version: int | None = None) -> int:
        """Forget a project's records (or one version's): the project or version is gone."""
        query: dict = {"project_id": project_id}
        if version is not None:
            query["version"] = version
        return self.collection.delete_many(query)
