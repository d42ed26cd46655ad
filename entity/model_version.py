"""Trained model versions (the registry) and their repository."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from entity.base import from_iso, to_iso, utcnow
from entity.store import Collection

#: a challenger's outcomes: waiting for a person, promoted or refused by the policy, approved or
#: rejected by a person
CHALLENGE_STATUSES = ("pending", "promoted", "refused", "approved", "rejected")


@dataclass
class ModelVersion:
    """Version ``version`` of a project's model, stored under ``models/v<version>/``.

    ``artifacts`` maps each file name in that folder to its SHA-256: a file is loaded only if it
    still matches.
    """

    project_id: str
    version: int
    execution_id: str
    algorithm: str
    metrics: dict = field(default_factory=dict)
    leaderboard: list = field(default_factory=list)
    params: dict = field(default_factory=dict)
    schema: dict = field(default_factory=dict)
    data_fingerprint: dict = field(default_factory=dict)
    library_versions: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)
    plots: list = field(default_factory=list)
    problem_type: str = ""
    #: where it came from: ``{}`` for a training here, ``{"kind": "imported", "format",
    #: "file", "sha256"}`` for a model brought in from elsewhere
    origin: dict = field(default_factory=dict)
    #: free-text labels (normalised by ``entity.catalog.normalise_tags``)
    tags: list = field(default_factory=list)
    created_at: datetime = field(default_factory=utcnow)
    #: as a challenger of the active version: ``{"status": CHALLENGE_STATUSES, "policy",
    #: "comparison", "reason", "decided_at", "decided_by"?}`` (empty: it never challenged)
    challenge: dict = field(default_factory=dict)

    @property
    def challenge_status(self) -> str | None:
        return self.challenge.get("status") if self.challenge else None

    @property
    def id(self) -> str:
        return f"{self.project_id}:v{self.version}"

    @property
    def folder(self) -> str:
        return f"models/v{self.version}/"

    def to_document(self) -> dict:
        return {"_id": self.id, "project_id": self.project_id, "version": self.version,
                "execution_id": self.execution_id, "algorithm": self.algorithm,
                "metrics": self.metrics, "leaderboard": self.leaderboard, "params": self.params,
                "schema": self.schema, "data_fingerprint": self.data_fingerprint,
                "library_versions": self.library_versions, "artifacts": self.artifacts,
                "plots": self.plots, "problem_type": self.problem_type, "origin": self.origin,
                "tags": list(self.tags),
                "created_at": to_iso(self.created_at), "challenge": self.challenge,
                # top level as well, for the conditional update of a decision
                "challenge_status": self.challenge_status}

    @classmethod
    def from_document(cls, doc: dict) -> ModelVersion:
        fields = {k: v for k, v in doc.items()
                  if k not in ("_id", "created_at", "challenge", "challenge_status")}
        return cls(created_at=from_iso(doc["created_at"]), challenge=doc.get("challenge") or {},
                   **fields)

    def to_public(self) -> dict:
        doc = self.to_document()
        doc["id"] = doc.pop("_id")
        return doc


class ModelVersionRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["project_id", "version"], unique=True)

    def add(self, version: ModelVersion) -> ModelVersion:
        self.collection.insert(version.to_document())
        return version

    def get(self, project_id: str, version: int) -> ModelVersion | None:
        doc = self.collection.get(f"{project_id}:v{version}")
        return ModelVersion.from_document(doc) if doc else None

    def list_for_project(self, project_id: str) -> list[ModelVersion]:
        docs = self.collection.find({"project_id": project_id}, sort=[("version", -1)])
        return [ModelVersion.from_document(d) for d in docs]

    def set_challenge(self, project_id: str, version: int, challenge: dict, *,
                      expected_status: str | None = None) -> bool:
        """Record ``version``'s outcome as a challenger; with ``expected_status``, only while
        its status is still that one (two approvals racing: one wins). True if recorded."""
        query = {"_id": f"{project_id}:v{version}"}
        if expected_status is not None:
            query["challenge_status"] = expected_status
        return self.collection.update_one(query, {"challenge": challenge,
                                                  "challenge_status": challenge.get("status")})

    def list_challengers(self, project_id: str, status: str | None = None
                         ) -> list[ModelVersion]:
        """The project's versions that challenged the active one (with ``status``), newest
        first."""
        query: dict = {"project_id": project_id}
        query["challenge_status"] = status if status else {"$ne": None}
        docs = self.collection.find(query, sort=[("version", -1)])
        return [ModelVersion.from_document(d) for d in docs]

    def set_tags(self, project_id: str, version: int, tags: list[str]) -> bool:
        return self.collection.update_one({"_id": f"{project_id}:v{version}"}, {"tags": tags})

    def delete(self, project_id: str, version: int) -> bool:
        return self.collection.delete_many({"_id": f"{project_id}:v{version}"}) == 1

    def delete_for_project(self, project_id: str) -> int:
        return self.collection.delete_many({"project_id": project_id})
