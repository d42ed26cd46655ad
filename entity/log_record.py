"""Execution log lines and their repository."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from entity.base import from_iso, to_iso, utcnow
from entity.store import Collection

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass
class LogRecord:
    execution_id: str
    project_id: str
    seq: int
    level: str
    stage: str
    message: str
    time: datetime = field(default_factory=utcnow)

    @property
    def id(self) -> str:
        return f"{self.execution_id}:{self.seq:08d}"

    def to_document(self) -> dict:
        return {"_id": self.id, "execution_id": self.execution_id,
                "project_id": self.project_id, "seq": self.seq, "time": to_iso(self.time),
                "level": self.level, "stage": self.stage, "message": self.message}

    @classmethod
    def from_document(cls, doc: dict) -> LogRecord:
        return cls(execution_id=doc["execution_id"], project_id=doc["project_id"],
                   seq=doc["seq"], time=from_iso(doc["time"]), level=doc["level"],
                   stage=doc["stage"], message=doc["message"])

    def to_public(self) -> dict:
        doc = self.to_document()
        doc.pop("_id")
        return doc


class LogRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["execution_id", "seq"], unique=True)
        self.collection.ensure_index(["time"])

    def add(self, record: LogRecord) -> LogRecord:
        self.collection.insert(record.to_document())
        return record

    def list(self, execution_id: str, *, after_seq: int = 0, limit: int = 0) -> list[LogRecord]:
        docs = self.collection.find({"execution_id": execution_id, "seq": {"$gt": after_seq}},
                                    sort=[("seq", 1)], limit=limit)
        return [LogRecord.from_document(d) for d in docs]

    def last_seq(self, execution_id: str) -> int:
        doc = self.collection.find_one({"execution_id": execution_id}, sort=[("seq", -1)])
        return doc["seq"] if doc else 0

    def prune(self, before: datetime) -> int:
        """Delete the lines logged before ``before``; returns how many."""
        return self.collection.delete_many({"time": {"$lt": to_iso(before)}})

    def delete_for_project(self, project_id: str) -> int:
        return self.collection.delete_many({"project_id": project_id})
