"""Executions (a background run of a project: a training, a prediction, a storage move...) and
their repository. What each kind of execution does is declared in ``thread_layer.kinds``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from entity.base import from_iso, new_sortable_id, to_iso, utcnow
from entity.store import Collection

ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("succeeded", "failed", "cancelled", "interrupted")
#: what can start an execution (``Execution.trigger["by"]``)
TRIGGERS = ("user", "schedule", "alert", "labels")


def legacy_trigger(started_by: str | None) -> dict:
    """The trigger of an execution stored before triggers were recorded: a person's click."""
    if not started_by:
        return {}
    return {"by": "user", "user_id": started_by, "reason": "Started by a person."}


@dataclass
class Execution:
    project_id: str
    kind: str
    started_by: str | None
    status: str = "queued"
    stage: str = "queued"
    progress: int = 0
    error: str | None = None
    result: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    runner: dict = field(default_factory=dict)  # who runs it: {"host", "pid", "instance"}
    #: who or what started it and why: {"by": "user" | "schedule" | "alert" | "labels",
    #: "reason": text, "user_id"?, "via"?: "page" | "api" | "cli", ...} (``TRIGGERS``)
    trigger: dict = field(default_factory=dict)
    id: str = field(default_factory=new_sortable_id)
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    cancel_requested: bool = False
    #: what the execution used (thread_layer.sandbox): peak_memory_mb, cpu_seconds,
    #: wall_seconds, written_mb, processes; and the limits it ran under
    usage: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)
    #: why a queued execution is still waiting (admission control, a strict sandbox)
    waiting_reason: str | None = None

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or utcnow()
        return round((end - self.started_at).total_seconds(), 1)

    def to_document(self) -> dict:
        return {
            "_id": self.id, "project_id": self.project_id, "kind": self.kind,
            "started_by": self.started_by, "status": self.status, "stage": self.stage,
            "progress": self.progress, "error": self.error, "result": self.result,
            "options": self.options, "runner": self.runner, "trigger": self.trigger,
            "created_at": to_iso(self.created_at), "started_at": to_iso(self.started_at),
            "finished_at": to_iso(self.finished_at), "heartbeat_at": to_iso(self.heartbeat_at),
            "cancel_requested": self.cancel_requested,
            "usage": self.usage, "limits": self.limits, "waiting_reason": self.waiting_reason,
        }

    @classmethod
    def from_document(cls, doc: dict) -> Execution:
        return cls(
            id=doc["_id"], project_id=doc["project_id"], kind=doc["kind"],
            started_by=doc.get("started_by"), status=doc["status"], stage=doc.get("stage", ""),
            progress=doc.get("progress", 0), error=doc.get("error"),
            result=doc.get("result") or {}, options=doc.get("options") or {},
            runner=doc.get("runner") or {},
            trigger=(doc.get("trigger") or {}) if "trigger" in doc
            else legacy_trigger(doc.get("started_by")),
            created_at=from_iso(doc["created_at"]),
            started_at=from_iso(doc.get("started_at")),
            finished_at=from_iso(doc.get("finished_at")),
            heartbeat_at=from_iso(doc.get("heartbeat_at")),
            cancel_requested=doc.get("cancel_requested", False),
            usage=doc.get("usage") or {}, limits=doc.get("limits") or {},
            waiting_reason=doc.get("waiting_reason"),
        )

    def to_public(self) -> dict:
        doc = self.to_document()
        doc["id"] = doc.pop("_id")
        doc.pop("runner")
        doc["duration_seconds"] = self.duration_seconds
        return doc


class ExecutionRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["project_id", "created_at"])
        self.collection.ensure_index(["status"])

    def add(self, execution: Execution) -> Execution:
        self.collection.insert(execution.to_document())
        return execution

    def get(self, execution_id: str) -> Execution | None:
        doc = self.collection.get(execution_id)
        return Execution.from_document(doc) if doc else None

    def list_for_project(self, project_id: str, *, skip: int = 0,
                         limit: int = 50) -> list[Execution]:
        docs = self.collection.find({"project_id": project_id}, sort=[("created_at", -1)],
                                    skip=skip, limit=limit)
        return [Execution.from_document(d) for d in docs]

    def count_for_project(self, project_id: str) -> int:
        return self.collection.count({"project_id": project_id})

    def list_active(self) -> list[Execution]:
        docs = self.collection.find({"status": {"$in": list(ACTIVE_STATUSES)}})
        return [Execution.from_document(d) for d in docs]

    def update(self, execution_id: str, **changes) -> None:
        """Set fields (datetimes converted); use for status, stage, progress, result..."""
        doc = {k: to_iso(v) if isinstance(v, datetime) else v for k, v in changes.items()}
        self.collection.update_one({"_id": execution_id}, doc)

    def start(self, execution_id: str, runner: dict) -> bool:
        """Atomically move a queued execution to running under ``runner``; False if it is no
        longer queued (cancelled, or taken by another worker)."""
        now = to_iso(utcnow())
        return self.collection.update_one(
            {"_id": execution_id, "status": "queued"},
            {"status": "running", "started_at": now, "heartbeat_at": now, "stage": "validating",
             "runner": runner})

    def requeue(self, execution_id: str) -> bool:
        """Atomically move a running execution back to queued, for a broker worker to take it
        again from the start (its worker was asked to stop); False if it is no longer running
        or its cancellation was asked. Its heartbeat is now: the time it went back on the queue,
        from which the sweeper counts how long it waits for a worker."""
        return self.collection.update_one(
            {"_id": execution_id, "status": "running", "cancel_requested": {"$ne": True}},
            {"status": "queued", "started_at": None, "heartbeat_at": to_iso(utcnow()),
             "stage": "queued", "progress": 0, "runner": {"mode": "broker"}})

    def finish(self, execution_id: str, status: str, *, error: str | None = None,
               result: dict | None = None) -> bool:
        """Move an active execution to a final status; False if it was already final."""
        changes = {"status": status, "finished_at": to_iso(utcnow()), "error": error}
        if result is not None:
            changes["result"] = result
        if status == "succeeded":
            changes.update(stage="done", progress=100)
        return self.collection.update_one(
            {"_id": execution_id, "status": {"$in": list(ACTIVE_STATUSES)}}, changes)

    def delete_for_project(self, project_id: str) -> int:
        return self.collection.delete_many({"project_id": project_id})
