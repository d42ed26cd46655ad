"""Live monitoring in the database: monitor points, alert rules and incidents.

A *monitor point* is what the monitoring job computed for one model version over one period: a
rolling window ending at the job's run (granularity ``window``), or one UTC day (``day``). Every
web process and worker reads the same points, so they agree whichever computed them.

An *alert rule* says when a project's monitors call for attention; an *incident* is one rule
firing for one model version, open until its condition clears.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from entity.base import from_iso, new_id, new_sortable_id, to_iso, utcnow
from entity.store import Collection
from exception_layer import DuplicateKey

GRANULARITIES = ("window", "day")

# -- monitor points ------------------------------------------------------------------------


def point_id(project_id: str, version: int, granularity: str, key: str) -> str:
    return f"{project_id}:v{version}:{granularity}:{key}"


class MonitorPointRepository:
    """Monitor points: ``{"_id", "project_id", "version", "granularity", "start", "end",
    "computed_at", "volume", "latency_ms", "requests", "metrics", "training_metrics", "drift",
    ...}``, one document per project, version and window end or day (a recomputation of the
    same day replaces its point)."""

    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["project_id", "granularity", "end"])

    def save(self, point: dict) -> None:
        """Store ``point`` (with its ``_id``), replacing an earlier one with the same id."""
        try:
            self.collection.insert(point)
        except DuplicateKey:
            self.collection.update_one({"_id": point["_id"]},
                                       {k: v for k, v in point.items() if k != "_id"})

    def list(self, project_id: str, *, granularity: str, version: int | None = None,
             since: datetime | None = None, until: datetime | None = None,
             limit: int = 0) -> list[dict]:
        """Points of a project, oldest first, whose period ends after ``since`` and starts
        before ``until``."""
        query: dict = {"project_id": project_id, "granularity": granularity}
        if version is not None:
            query["version"] = version
        if since is not None:
            query["end"] = {"$gt": to_iso(since)}
        if until is not None:
            query["start"] = {"$lt": to_iso(until)}
        return self.collection.find(query, sort=[("end", 1), ("version", 1)], limit=limit)

    def get(self, doc_id: str) -> dict | None:
        return self.collection.get(doc_id)

    def latest(self, project_id: str, version: int, granularity: str = "window") -> dict | None:
        return self.collection.find_one({"project_id": project_id, "version": version,
                                         "granularity": granularity}, sort=[("end", -1)])

    def delete_for_project(self, project_id: str) -> int:
        return self.collection.delete_many({"project_id": project_id})


# -- alert rules ---------------------------------------------------------------------------

RULE_KINDS = ("feature_drift", "prediction_drift", "metric_threshold", "metric_drop",
              "error_rate", "no_traffic")


@dataclass
class AlertRule:
    """One alert rule of a project.

    Kinds: ``feature_drift`` (a feature's PSI at or above ``threshold``; ``feature`` names one,
    None: any), ``prediction_drift`` (the predictions' PSI), ``metric_threshold`` (``metric``
    on labeled feedback worse than ``threshold``), ``metric_drop`` (``metric`` worse than its
    training value by more than ``threshold``), ``error_rate`` (the share of failed real-time
    requests above ``threshold``), ``no_traffic`` (no prediction for ``hours`` hours after
    traffic was seen). ``min_rows``: the fewest records (labeled ones, for metrics) judged.
    ``retrain``: an incident it opens also starts a retraining.
    """

    project_id: str
    kind: str
    threshold: float | None = None
    metric: str | None = None
    feature: str | None = None
    hours: int | None = None
    min_rows: int | None = None
    retrain: bool = False
    enabled: bool = True
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def to_document(self) -> dict:
        return {"_id": self.id, "project_id": self.project_id, "kind": self.kind,
                "threshold": self.threshold, "metric": self.metric, "feature": self.feature,
                "hours": self.hours, "min_rows": self.min_rows, "retrain": self.retrain,
                "enabled": self.enabled, "created_at": to_iso(self.created_at),
                "updated_at": to_iso(self.updated_at)}

    @classmethod
    def from_document(cls, doc: dict) -> AlertRule:
        fields = {k: v for k, v in doc.items()
                  if k not in ("_id", "created_at", "updated_at", "marker")}
        return cls(id=doc["_id"], created_at=from_iso(doc["created_at"]),
                   updated_at=from_iso(doc["updated_at"]), **fields)

    def to_public(self) -> dict:
        doc = self.to_document()
        doc["id"] = doc.pop("_id")
        return doc


class AlertRuleRepository:
    """A project's alert rules. Its default rules are written once, the first time its rules
    are read (a marker document records it, so that deleted defaults stay deleted)."""

    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["project_id"])

    def for_project(self, project_id: str, defaults=None) -> list[AlertRule]:
        """The project's rules, oldest first; ``defaults()`` makes its first rules when it has
        never had any."""
        if defaults is not None:
            try:
                self.collection.insert({"_id": f"{project_id}:defaults", "marker": True,
                                        "project_id": project_id})
            except DuplicateKey:
                pass
            else:
                for rule in defaults():
                    self.add(rule)
        docs = self.collection.find({"project_id": project_id, "marker": None},
                                    sort=[("created_at", 1), ("_id", 1)])
        return [AlertRule.from_document(d) for d in docs]

    def get(self, project_id: str, rule_id: str) -> AlertRule | None:
        doc = self.collection.find_one({"_id": rule_id, "project_id": project_id,
                                        "marker": None})
        return AlertRule.from_document(doc) if doc else None

    def add(self, rule: AlertRule) -> AlertRule:
        self.collection.insert(rule.to_document())
        return rule

    def save(self, rule: AlertRule) -> None:
        rule.updated_at = utcnow()
        doc = rule.to_document()
        self.collection.update_one({"_id": rule.id}, {k: v for k, v in doc.items()
                                                      if k != "_id"})

    def delete(self, project_id: str, rule_id: str) -> bool:
        return self.collection.delete_many({"_id": rule_id, "project_id": project_id,
                                            "marker": None}) == 1

    def delete_for_project(self, project_id: str) -> int:
        return self.collection.delete_many({"project_id": project_id})


# -- incidents -----------------------------------------------------------------------------

INCIDENT_STATUSES = ("open", "closed")


@dataclass
class Incident:
    """One alert rule firing for one model version of a project, open until it clears."""

    project_id: str
    rule_id: str
    kind: str
    version: int
    summary: str
    value: float | None = None
    threshold: float | None = None
    details: dict = field(default_factory=dict)
    status: str = "open"
    opened_at: datetime = field(default_factory=utcnow)
    closed_at: datetime | None = None
    mailed_at: datetime | None = None
    reminded_at: datetime | None = None
    reminders: int = 0
    retraining: dict | None = None
    id: str = field(default_factory=new_sortable_id)

    def to_document(self) -> dict:
        return {"_id": self.id, "project_id": self.project_id, "rule_id": self.rule_id,
                "kind": self.kind, "version": self.version, "summary": self.summary,
                "value": self.value, "threshold": self.threshold, "details": self.details,
                "status": self.status, "opened_at": to_iso(self.opened_at),
                "closed_at": to_iso(self.closed_at), "mailed_at": to_iso(self.mailed_at),
                "reminded_at": to_iso(self.reminded_at), "reminders": self.reminders,
                "retraining": self.retraining}

    @classmethod
    def from_document(cls, doc: dict) -> Incident:
        fields = {k: v for k, v in doc.items() if k != "_id"}
        for name in ("opened_at", "closed_at", "mailed_at", "reminded_at"):
            fields[name] = from_iso(fields.get(name))
        return cls(id=doc["_id"], **fields)

    def to_public(self) -> dict:
        doc = self.to_document()
        doc["id"] = doc.pop("_id")
        return doc


class IncidentRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["project_id", "status", "opened_at"])

    def add(self, incident: Incident) -> Incident:
        self.collection.insert(incident.to_document())
        return incident

    def save(self, incident: Incident) -> None:
        doc = incident.to_document()
        self.collection.update_one({"_id": incident.id}, {k: v for k, v in doc.items()
                                                          if k != "_id"})

    def get(self, project_id: str, incident_id: str) -> Incident | None:
        doc = self.collection.find_one({"_id": incident_id, "project_id": project_id})
        return Incident.from_document(doc) if doc else None

    def open_for(self, project_id: str, rule_id: str, version: int) -> Incident | None:
        doc = self.collection.find_one({"project_id": project_id, "rule_id": rule_id,
                                        "version": version, "status": "open"})
        return Incident.from_document(doc) if doc else None

    def list(self, project_id: str, *, status: str | None = None, skip: int = 0,
             limit: int = 0) -> tuple[list[Incident], int]:
        """A project's incidents, newest first, and how many there are."""
        query: dict = {"project_id": project_id}
        if status is not None:
            query["status"] = status
        docs = self.collection.find(query, sort=[("opened_at", -1)], skip=skip, limit=limit)
        return [Incident.from_document(d) for d in docs], self.collection.count(query)

    def delete_for_project(self, project_id: str) -> int:
        return self.collection.delete_many({"project_id": project_id})
