"""Projects: create, change, delete, and infer a batch-file schema from a sample."""

from __future__ import annotations

import json
import re

from entity.catalog import forget_project_listings
from entity.project import ALGORITHMS, METRICS, PROBLEM_TYPES, BatchSchema, Project, slugify
from exception_layer import BadRequest, Conflict, DuplicateKey, ValidationFailed
from integration.project_roots import delete_project_files, root_refusal
from services import resources
from services.access import require_user
from services.context import Context
from services.resources import ProjectInput, ProjectSettings

#: the fields of a project a change (PATCH, the settings page) cannot set, and why
FIXED_FIELDS = {
    "name": "The name cannot change: the project's folder and address are named after it.",
    "storage_connection_id": "Move the project to another storage with a move execution.",
    "members": "Members are managed through the project's members.",
    **{key: "Trainyard keeps this field itself." for key in (
        "id", "slug", "owner_id", "active_execution_id", "active_version", "next_version",
        "created_at", "updated_at")},
}

EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
MAX_NAME, MAX_DESCRIPTION = 100, 2000


# -- projects --------------------------------------------------------------------------------

def parse_recipients(raw) -> list[str]:
    if raw is None or raw == "":
        return []
    items = raw if isinstance(raw, list) else re.split(r"[,;\s]+", str(raw))
    addresses = [str(a).strip() for a in items if str(a).strip()]
    bad = [a for a in addresses if not EMAIL.match(a)]
    if bad:
        raise ValidationFailed("Some recipients are not e-mail addresses.", details={
            "recipients": f"Not an e-mail address: {resources.echo(', '.join(bad))}"})
    return list(dict.fromkeys(addresses))


def _parse_schema(data: dict) -> BatchSchema:
    raw = data.get("schema")
    if raw is None and "schema_json" in data:
        try:
            raw = json.loads(data.get("schema_json") or "{}")
        except (ValueError, RecursionError):
            raise ValidationFailed("The schema could not be read.",
                                   details={"schema": "Not valid JSON."}) from None
    if raw is None:
        raise ValidationFailed("The batch-file schema is missing.",
                               details={"schema": "Describe the columns of the batch files."})
    if isinstance(raw, dict) and data.get("filename_pattern") and not raw.get("filename_pattern"):
        raw = {**raw, "filename_pattern": data["filename_pattern"]}
    return BatchSchema.from_dict(raw).validate()


def _project_fields(ctx: Context, data: dict, *, creating: bool, strict: bool) -> dict:
    """Check the editable fields of a project against :class:`ProjectInput` (types, shapes)
    and the rules that depend on other fields or the database; returns them, or raises
    ValidationFailed."""
    # unknown keys are refused (the resource model forbids them), but not the fields of the
    # project as it is read (sent back whole; the rules below say which may change) nor the
    # service's own "_" keys
    shown = set(resources.known_keys(resources.Project)) - set(resources.known_keys(ProjectInput))
    declared = resources.check(ProjectInput, {k: v for k, v in data.items()
                                              if v is not None and v != ""
                                              and not k.startswith("_")
                                              and k not in shown},
                               strict=strict)
    data = {k: v for k, v in data.items() if k not in declared}
    errors: dict[str, str] = {}
    fields: dict = {}
    if creating or "name" in data:
        name = str(data.get("name") or "").strip()
        if not name:
            errors["name"] = "A project needs a name."
        elif len(name) > MAX_NAME:
            errors["name"] = f"At most {MAX_NAME} characters."
        elif not slugify(name):
            errors["name"] = "The name needs at least one letter or digit."
        fields["name"] = name
    if creating or "description" in data:
        description = str(data.get("description") or "").strip()
        if len(description) > MAX_DESCRIPTION:
            errors["description"] = f"At most {MAX_DESCRIPTION} characters."
        fields["description"] = description
    if creating or "problem_type" in data:
        problem = data.get("problem_type")
        if problem not in PROBLEM_TYPES:
            errors["problem_type"] = "Choose classification or regression."
        fields["problem_type"] = problem
    if "metric" in data:
        metric = data.get("metric") or None
        problem = fields.get("problem_type") or data.get("_current_problem_type")
        if metric and problem in METRICS and metric not in METRICS[problem]:
            errors["metric"] = f"For {problem} choose one of {', '.join(METRICS[problem])}."
        fields["metric"] = metric
    if "time_budget_seconds" in data:
        raw = data.get("time_budget_seconds")
        if raw in (None, ""):
            fields["time_budget_seconds"] = None
        else:
            try:
                budget = int(raw)
                if not 10 <= budget <= 7 * 24 * 3600:
                    raise ValueError
                fields["time_budget_seconds"] = budget
            except (TypeError, ValueError):
                errors["time_budget_seconds"] = "A whole number of seconds from 10 to 604800."
    if "algorithms" in data:
        raw = data.get("algorithms") or []
        if isinstance(raw, str):
            raw = [a for a in re.split(r"[,\s]+", raw) if a]
        problem = fields.get("problem_type") or data.get("_current_problem_type")
        allowed = ALGORITHMS.get(problem, ())
        if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
            errors["algorithms"] = "A list of algorithm names."
        elif any(a not in allowed for a in raw):
            errors["algorithms"] = f"For {problem} choose among {', '.join(allowed)}."
        else:
            fields["algorithms"] = list(dict.fromkeys(raw))
    if creating and data.get("storage_connection_id"):
        connection_id = str(data.get("storage_connection_id"))
        connection = ctx.db.storage_connections.get(connection_id)
        if connection is None or not connection.usable_by(ctx.user):
            # a connection not granted to the user is one they cannot know of
            errors["storage_connection_id"] = "No such storage connection."
        fields["storage_connection_id"] = connection_id
    if creating or "recipients" in data:
        try:
            fields["recipients"] = parse_recipients(data.get("recipients"))
        except ValidationFailed as exc:
            errors.update(exc.details)
    if creating or "schema" in data or "schema_json" in data:
        try:
            fields["schema"] = _parse_schema(data)
        except ValidationFailed as exc:
            errors.update(exc.details or {"schema": exc.message})
    settings = _settings(data, declared, creating=creating, strict=strict)
    if settings:
        fields["settings"] = settings
    errors.update(declared)
    if errors:
        raise ValidationFailed("Please correct the marked fields.", details=errors)
    return fields


def _settings(data: dict, refused: dict, *, creating: bool, strict: bool) -> dict:
    """The plain settings (:class:`ProjectSettings`) in ``data`` that the model accepted, as it
    parses them (empty text is None); creating, the absent ones at their defaults."""
    settings: dict = {}
    for name, info in ProjectSettings.model_fields.items():
        if name in refused:
            continue
        if name in data and data[name] not in (None, ""):
            settings[name] = getattr(ProjectInput.model_validate(
                {name: data[name]}, strict=strict), name)
        elif name in data or creating:
            settings[name] = info.get_default(call_default_factory=True)
    return settings


def create(ctx: Context, data: dict, *, strict: bool = True) -> Project:
    """Create a project owned by the user acting, with its folders, in a new folder of its own
    (:func:`integration.project_roots.root_refusal`) on a storage the user may use, from the
    fields of :class:`ProjectInput` in ``data`` (a JSON body; a page form's fields with
    ``strict=False``).

    Raises:
        ValidationFailed: a field is wrong (``details`` maps fields to messages), the storage
            connection is not one the user may use, or the project's folder is not free.
    """
    user = require_user(ctx)
    fields = _project_fields(ctx, data, creating=True, strict=strict)
    db = ctx.db
    slug = slugify(fields["name"])
    if db.projects.get_by_slug(slug) is not None:
        raise ValidationFailed("Please correct the marked fields.", details={
            "name": "A project with this name already exists."})
    connection_id = fields.get("storage_connection_id")
    refusal = root_refusal(ctx.platform.resolver, db.projects.list(), connection_id, slug)
    if refusal:
        raise ValidationFailed("Please correct the marked fields.", details={
            "storage_connection_id" if connection_id else "name": refusal})
    project = Project(owner_id=user.id, slug=slug, **fields)
    try:
        db.projects.add(project)
    except DuplicateKey:
        raise ValidationFailed("Please correct the marked fields.", details={
            "name": "A project with this name already exists."}) from None
    ctx.platform.resolver.files(project).ensure_layout()
    ctx.audit("project.create", project.slug)
    return project


def update(ctx: Context, project: Project, data: dict, *, strict: bool = True) -> Project:
    """Change a project's settings (its name and folder stay).

    Fields that cannot change here (the name, the storage, who is on it, what the platform
    keeps) may be sent back as they are, but not changed.

    Raises:
        ValidationFailed: a field is wrong, or one that cannot change here differs.
        Conflict: the schema or problem type would change while an execution runs.
    """
    current = project.to_public()
    fixed = {key: FIXED_FIELDS[key] for key in FIXED_FIELDS
             if key in data and data[key] != current.get(key)}
    if fixed:
        raise ValidationFailed("Some fields cannot be changed here.", details=fixed)
    data = {k: v for k, v in data.items() if k not in FIXED_FIELDS}
    data["_current_problem_type"] = project.problem_type
    fields = _project_fields(ctx, data, creating=False, strict=strict)
    if project.active_execution_id and ("schema" in fields or "problem_type" in fields):
        raise Conflict("The schema and problem type cannot change while an execution runs.")
    settings = fields.pop("settings", {})
    for key, value in fields.items():
        setattr(project, key, value)
    project.settings = {**project.settings, **settings}
    ctx.db.projects.save(project)
    ctx.audit("project.update", project.slug, details={"fields": sorted([*fields, *settings])})
    return project


def delete(ctx: Context, project: Project) -> None:
    """Delete a project with its files (only those under its own root), executions, logs and
    model versions.

    Raises:
        Conflict: an execution is running.
    """
    if project.active_execution_id:
        raise Conflict("Cancel the running execution before deleting the project.")
    s = ctx.platform
    delete_project_files(s.resolver, s.db.projects.list(), project)
    s.db.logs.delete_for_project(project.id)
    s.db.executions.delete_for_project(project.id)
    s.db.model_versions.delete_for_project(project.id)
    for repository in s.db.monitoring_repositories():  # points, rules, incidents, webhook
        repository.delete_for_project(project.id)
    s.db.retraining_schedules.delete_for_project(project.id)
    forget_project_listings(s.db, project.id)  # its catalog listings: every key stops
    s.db.projects.delete(project.id)
    s.model_server.forget(project.id)
    ctx.audit("project.delete", project.slug)


def infer_schema(samples) -> dict:
    """Infer a schema from sample CSVs (each its first 8 MB), ``samples`` being
    ``(stream, filename)`` pairs; every row of every sample decides the types.

    Returns:
        ``{"schema", "target_proposals"}``: the schema's target is None (the user chooses it,
        from the ranked proposals).

    Raises:
        BadRequest: no file was given.
        ValidationFailed: a sample cannot be read as a CSV, or the samples differ in columns.
    """
    from project_library.schema_inference import infer_from_samples

    given = [(stream, name) for stream, name in samples if stream is not None and name]
    if not given:
        raise BadRequest("Choose a sample CSV file.")
    return infer_from_samples([(stream.read(8 * 1024 * 1024), name)
                               for stream, name in given]).to_dict()
