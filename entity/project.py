"""Projects, their batch-file schema, and their repository."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from entity.base import from_iso, new_id, to_iso, utcnow
from entity.file_name_pattern import pattern_problem
from entity.store import Collection
from exception_layer import ValidationFailed

PROBLEM_TYPES = ("classification", "regression")
COLUMN_TYPES = ("integer", "float", "category", "boolean", "date")
PROJECT_ROLES = ("viewer", "editor", "owner")  # in increasing order of power
#: the selection metrics a project may choose, the default first (``f1`` is macro F1)
METRICS = {
    "classification": ("accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
#: the metrics that are better lower (errors); every other metric is better higher. The one
#: table of metric directions: the model search, its leaderboard and promotion all read it.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse", "baseline_rmse", "log_loss", "mape"})
#: the algorithms the model search may try; a project may restrict it to some of them
ALGORITHMS = {
    "classification": ("LogisticRegression", "RandomForestClassifier",
                       "HistGradientBoostingClassifier", "LGBMClassifier",
                       "KNeighborsClassifier"),
    "regression": ("Ridge", "RandomForestRegressor", "HistGradientBoostingRegressor",
                   "LGBMRegressor"),
}
_SLUG = re.compile(r"[^a-z0-9]+")
MAX_COLUMNS = 2000


def lower_is_better(metric: str) -> bool:
    """True if a lower value of ``metric`` is better (an error such as ``rmse``)."""
    return metric in LOWER_IS_BETTER


def slugify(name: str) -> str:
    """A folder-safe slug: lower case letters, digits and dashes."""
    return _SLUG.sub("-", name.lower()).strip("-")[:60]


@dataclass
class ColumnSpec:
    name: str
    type: str

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type}


@dataclass
class BatchSchema:
    """What every batch file of a project must look like."""

    filename_pattern: str
    columns: list[ColumnSpec]
    target: str | None
    ignored: list[str] = field(default_factory=list)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def feature_columns(self) -> list[ColumnSpec]:
        """Columns the model learns from: all but the target and the ignored ones."""
        return [c for c in self.columns if c.name != self.target and c.name not in self.ignored]

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)

    def pattern_problem(self) -> str | None:
        """Why the file-name pattern cannot be used, or None (a stored project may hold a
        pattern from before patterns ran on RE2; see entity.file_name_pattern)."""
        return pattern_problem(self.filename_pattern)

    def validate(self) -> BatchSchema:
        """Raise :class:`ValidationFailed` with one message per wrong field; return self."""
        errors: dict[str, str] = {}
        if not self.filename_pattern:
            errors["filename_pattern"] = "A file-name pattern is required."
        elif problem := self.pattern_problem():
            errors["filename_pattern"] = problem
        names = self.column_names
        if not names:
            errors["columns"] = "Add at least one column."
        elif len(names) > MAX_COLUMNS:
            errors["columns"] = f"At most {MAX_COLUMNS} columns are supported."
        elif any(not n or not n.strip() for n in names):
            errors["columns"] = "Every column needs a name."
        elif any(any(ord(ch) < 32 for ch in n) for n in names):
            errors["columns"] = "Column names may not contain control characters."
        elif len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            errors["columns"] = f"Column names must be unique; repeated: {', '.join(dupes)}."
        else:
            bad = [f"{c.name} ({c.type})" for c in self.columns if c.type not in COLUMN_TYPES]
            if bad:
                errors["columns"] = (f"Unknown column types: {', '.join(bad)}; use one of "
                                     f"{', '.join(COLUMN_TYPES)}.")
        if not self.target:
            errors["target"] = "Choose the target column (the one to predict)."
        elif self.target not in names:
            errors["target"] = f"The target {self.target!r} is not one of the columns."
        elif self.target in self.ignored:
            errors["target"] = "The target cannot also be ignored."
        unknown = [n for n in self.ignored if n not in names]
        if unknown:
            errors["ignored"] = f"Ignored columns not in the schema: {', '.join(unknown)}."
        elif names and self.target and not self.feature_columns:
            errors["ignored"] = "At least one column besides the target must be used."
        if errors:
            raise ValidationFailed("The batch-file schema is not valid.", details=errors)
        return self

    def to_dict(self) -> dict:
        return {"filename_pattern": self.filename_pattern,
                "columns": [c.to_dict() for c in self.columns],
                "target": self.target, "ignored": list(self.ignored)}

    @classmethod
    def from_dict(cls, data: dict) -> BatchSchema:
        """Build from a document or an API body; raises ValidationFailed on a wrong shape."""
        if not isinstance(data, dict):
            raise ValidationFailed("The schema must be an object.")
        raw_columns = data.get("columns") or []
        if not isinstance(raw_columns, list) or not all(
                isinstance(c, dict) and isinstance(c.get("name"), str)
                and isinstance(c.get("type", "category"), str) for c in raw_columns):
            raise ValidationFailed("The schema is not valid.", details={
                "columns": "columns must be a list of {name, type} objects."})
        ignored = data.get("ignored") or []
        if not isinstance(ignored, list) or not all(isinstance(n, str) for n in ignored):
            raise ValidationFailed("The schema is not valid.", details={
                "ignored": "ignored must be a list of column names."})
        target = data.get("target")
        if target is not None and not isinstance(target, str):
            raise ValidationFailed("The schema is not valid.", details={
                "target": "target must be a column name."})
        pattern = data.get("filename_pattern") or ""
        if not isinstance(pattern, str):
            raise ValidationFailed("The schema is not valid.", details={
                "filename_pattern": "filename_pattern must be text."})
        return cls(filename_pattern=pattern,
                   columns=[ColumnSpec(c["name"].strip(), c.get("type", "category"))
                            for c in raw_columns],
                   target=target or None, ignored=list(ignored))


@dataclass
class Project:
    name: str
    slug: str
    problem_type: str
    schema: BatchSchema
    owner_id: str
    description: str = ""
    recipients: list[str] = field(default_factory=list)
    storage_connection_id: str | None = None
    members: dict[str, str] = field(default_factory=dict)  # user id -> project role
    #: team id -> project role: every member of the team holds it (the higher of a person's
    #: own role and their teams' roles counts)
    teams: dict[str, str] = field(default_factory=dict)
    metric: str | None = None
    time_budget_seconds: int | None = None
    algorithms: list[str] = field(default_factory=list)  # empty: all that suit the problem
    active_execution_id: str | None = None
    active_version: int | None = None
    next_version: int = 1
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    #: the plain settings the resource model declares with no handling of their own
    #: (``services.resources.ProjectSettings``), by name: stored as top-level keys of the
    #: document beside the fields above, so a new one needs no change here
    settings: dict = field(default_factory=dict)

    @property
    def selection_metric(self) -> str:
        return self.metric or METRICS[self.problem_type][0]

    def role_of(self, user) -> str | None:
        """The project role of ``user`` (admins act as owners), or None: the strongest of their
        own membership and the roles of their teams (``user.team_ids``)."""
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        if getattr(user, "is_admin", False) or user.id == self.owner_id:
            return "owner"
        own = self.members.get(user.id)
        through_team = self.team_role_of(user)
        if through_team is None:
            return own  # (an unknown stored role: visible, allows nothing, as before)
        if own in PROJECT_ROLES:
            return max(own, through_team, key=PROJECT_ROLES.index)
        return through_team

    def team_role_of(self, user) -> str | None:
        """The strongest role ``user`` holds on the project through a team, or None."""
        roles = [self.teams[t] for t in getattr(user, "team_ids", ()) or ()
                 if self.teams.get(t) in PROJECT_ROLES]
        return max(roles, key=PROJECT_ROLES.index) if roles else None

    def has_role(self, user, needed: str) -> bool:
        """True if ``user``'s project role is ``needed`` or stronger.

        An unknown stored role grants nothing; an unknown ``needed`` role raises ValueError.
        """
        floor = PROJECT_ROLES.index(needed)
        role = self.role_of(user)
        return role in PROJECT_ROLES and PROJECT_ROLES.index(role) >= floor

    def to_document(self) -> dict:
        return {
            **self.settings,
            "_id": self.id, "name": self.name, "slug": self.slug,
            "problem_type": self.problem_type, "schema": self.schema.to_dict(),
            "owner_id": self.owner_id, "description": self.description,
            "recipients": list(self.recipients),
            "storage_connection_id": self.storage_connection_id,
            "members": dict(self.members), "teams": dict(self.teams), "metric": self.metric,
            "time_budget_seconds": self.time_budget_seconds,
            "algorithms": list(self.algorithms),
            "active_execution_id": self.active_execution_id,
            "active_version": self.active_version, "next_version": self.next_version,
            "created_at": to_iso(self.created_at), "updated_at": to_iso(self.updated_at),
        }

    @classmethod
    def from_document(cls, doc: dict) -> Project:
        return cls(
            id=doc["_id"], name=doc["name"], slug=doc["slug"],
            problem_type=doc["problem_type"], schema=BatchSchema.from_dict(doc["schema"]),
            owner_id=doc["owner_id"], description=doc.get("description", ""),
            recipients=list(doc.get("recipients") or []),
            storage_connection_id=doc.get("storage_connection_id"),
            members=dict(doc.get("members") or {}), teams=dict(doc.get("teams") or {}),
            metric=doc.get("metric"),
            time_budget_seconds=doc.get("time_budget_seconds"),
            algorithms=list(doc.get("algorithms") or []),
            active_execution_id=doc.get("active_execution_id"),
            active_version=doc.get("active_version"), next_version=doc.get("next_version", 1),
            created_at=from_iso(doc["created_at"]), updated_at=from_iso(doc["updated_at"]),
            settings={key: value for key, value in doc.items() if key not in DOCUMENT_KEYS},
        )

    def to_public(self) -> dict:
        doc = self.to_document()
        doc["id"] = doc.pop("_id")
        # the metric the project uses, never null: the problem type's default when none chosen
        doc["metric"] = self.selection_metric if self.problem_type in METRICS else self.metric
        return doc


#: the keys of a project's document that its own fields fill (every other key is a setting)
DOCUMENT_KEYS = frozenset({
    "_id", "name", "slug", "problem_type", "schema", "owner_id", "description", "recipients",
    "storage_connection_id", "members", "teams", "metric", "time_budget_seconds", "algorithms",
    "active_execution_id", "active_version", "next_version", "created_at", "updated_at"})


class ProjectRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["slug"], unique=True)

    def add(self, project: Project) -> Project:
        self.collection.insert(project.to_document())
        return project

    def get(self, project_id: str) -> Project | None:
        doc = self.collection.get(project_id)
        return Project.from_document(doc) if doc else None

    def get_by_slug(self, slug: str) -> Project | None:
        doc = self.collection.find_one({"slug": slug})
        return Project.from_document(doc) if doc else None

    def list(self) -> list[Project]:
        return [Project.from_document(d) for d in self.collection.find(sort=[("name", 1)])]

    def save(self, project: Project) -> None:
        project.updated_at = utcnow()
        doc = project.to_document()
        # _id is the filter, not a change; the execution claim and the version counter are
        # owned by claim/release/set_versions.
        for owned in ("_id", "active_execution_id", "next_version", "active_version"):
            doc.pop(owned)
        self.collection.update_one({"_id": project.id}, doc)

    def delete(self, project_id: str) -> None:
        self.collection.delete_many({"_id": project_id})

    def claim(self, project_id: str, execution_id: str) -> bool:
        """Atomically make ``execution_id`` the project's one active execution."""
        return self.collection.update_one({"_id": project_id, "active_execution_id": None},
                                          {"active_execution_id": execution_id})

    def release(self, project_id: str, execution_id: str) -> bool:
        """Free the project if ``execution_id`` still holds it."""
        return self.collection.update_one(
            {"_id": project_id, "active_execution_id": execution_id},
            {"active_execution_id": None})

    def set_versions(self, project_id: str, *, next_version: int | None = None,
                     active_version: int | None | bool = False) -> None:
        """Update the version counter and/or the active version (False: leave unchanged)."""
        changes: dict = {}
        if next_version is not None:
            changes["next_version"] = next_version
        if active_version is not False:
            changes["active_version"] = active_version
        if changes:
            self.collection.update_one({"_id": project_id}, changes)
