"""What the pages and the API both do, written once: each function takes plain input, checks
it, acts through the services, and raises a PlatformError when the input is wrong."""

from __future__ import annotations

import json
import mimetypes
import re
from urllib.parse import quote

from flask import Response, current_app, redirect, send_file, stream_with_context

from controllers.auditing import audit
from controllers.services import services
from entity.execution import Execution
from entity.project import ALGORITHMS, METRICS, PROBLEM_TYPES, BatchSchema, Project, slugify
from exception_layer import (
    AccessDenied,
    BadRequest,
    Conflict,
    DuplicateKey,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from integration.file_manager import (
    PREDICTION,
    STANDARD_FOLDERS,
    SYSTEM_FOLDERS,
    TRAINING,
    batch_folder,
    check_file_name,
    check_path,
)

_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
UPLOAD_HEAD_BYTES = 64 * 1024
MAX_NAME, MAX_DESCRIPTION = 100, 2000


# -- projects --------------------------------------------------------------------------------

def _parse_recipients(raw) -> list[str]:
    if raw is None or raw == "":
        return []
    items = raw if isinstance(raw, list) else re.split(r"[,;\s]+", str(raw))
    addresses = [str(a).strip() for a in items if str(a).strip()]
    bad = [a for a in addresses if not _EMAIL.match(a)]
    if bad:
        raise ValidationFailed("Some recipients are not e-mail addresses.",
                               details={"recipients": f"Not an e-mail address: {', '.join(bad)}"})
    return list(dict.fromkeys(addresses))


def _parse_schema(data: dict) -> BatchSchema:
    raw = data.get("schema")
    if raw is None and "schema_json" in data:
        try:
            raw = json.loads(data.get("schema_json") or "{}")
        except ValueError:
            raise ValidationFailed("The schema could not be read.",
                                   details={"schema": "Not valid JSON."}) from None
    if raw is None:
        raise ValidationFailed("The batch-file schema is missing.",
                               details={"schema": "Describe the columns of the batch files."})
    if isinstance(raw, dict) and data.get("filename_pattern") and not raw.get("filename_pattern"):
        raw = {**raw, "filename_pattern": data["filename_pattern"]}
    return BatchSchema.from_dict(raw).validate()


def _project_fields(data: dict, *, creating: bool) -> dict:
    """Check the editable fields of a project; returns them, or raises ValidationFailed."""
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
        if services().db.storage_connections.get(connection_id) is None:
            errors["storage_connection_id"] = "No such storage connection."
        fields["storage_connection_id"] = connection_id
    if creating or "recipients" in data:
        try:
            fields["recipients"] = _parse_recipients(data.get("recipients"))
        except ValidationFailed as exc:
            errors.update(exc.details)
    if creating or "schema" in data or "schema_json" in data:
        try:
            fields["schema"] = _parse_schema(data)
        except ValidationFailed as exc:
            errors.update(exc.details or {"schema": exc.message})
    if errors:
        raise ValidationFailed("Please correct the marked fields.", details=errors)
    return fields


def create_project(data: dict, user) -> Project:
    """Create a project owned by ``user`` and its folders."""
    fields = _project_fields(data, creating=True)
    db = services().db
    slug = slugify(fields["name"])
    if db.projects.get_by_slug(slug) is not None:
        raise ValidationFailed("Please correct the marked fields.", details={
            "name": "A project with this name already exists."})
    project = Project(owner_id=user.id, slug=slug, **fields)
    try:
        db.projects.add(project)
    except DuplicateKey:
        raise ValidationFailed("Please correct the marked fields.", details={
            "name": "A project with this name already exists."}) from None
    services().resolver.files(project).ensure_layout()
    audit("project.create", project.slug)
    return project


def update_project(project: Project, data: dict) -> Project:
    """Change a project's settings (its name and folder stay)."""
    data = {k: v for k, v in data.items() if k != "name"}
    data["_current_problem_type"] = project.problem_type
    fields = _project_fields(data, creating=False)
    if project.active_execution_id and ("schema" in fields or "problem_type" in fields):
        raise Conflict("The schema and problem type cannot change while an execution runs.")
    for key, value in fields.items():
        setattr(project, key, value)
    services().db.projects.save(project)
    audit("project.update", project.slug, details={"fields": sorted(fields)})
    return project


def delete_project(project: Project) -> None:
    """Delete a project with its files, executions, logs and model versions."""
    if project.active_execution_id:
        raise Conflict("Cancel the running execution before deleting the project.")
    s = services()
    s.resolver.files(project).delete_all()
    s.db.logs.delete_for_project(project.id)
    s.db.executions.delete_for_project(project.id)
    s.db.model_versions.delete_for_project(project.id)
    s.db.projects.delete(project.id)
    s.model_server.forget(project.id)
    audit("project.delete", project.slug)


def infer_schema(upload) -> dict:
    """Infer a schema from an uploaded sample CSV (a Werkzeug FileStorage)."""
    from project_library.schema_inference import infer_schema as infer

    if upload is None or not upload.filename:
        raise BadRequest("Choose a sample CSV file.")
    data = upload.stream.read(8 * 1024 * 1024)
    return infer(data, upload.filename).to_dict()


# -- files ---------------------------------------------------------------------------------

def _target_folder(path: str) -> str:
    folder = check_path(path, folder=True) if path else ""
    if any(folder.startswith(system) for system in SYSTEM_FOLDERS):
        raise AccessDenied(f"Trainyard writes {folder.split('/')[0]}/ itself; upload batch "
                           f"files into {TRAINING} or {PREDICTION}.")
    return folder


def upload_files(project: Project, folder: str, uploads: list) -> list[dict]:
    """Store ``uploads`` (FileStorage objects) in ``folder``: all of them, or none.

    Files going into the batch folders are checked against the project's schema first.
    """
    from project_library.schema_validation import check_upload

    limit = current_app.config["MAX_UPLOAD_FILES"]
    uploads = [u for u in uploads if u is not None and u.filename]
    if not uploads:
        raise BadRequest("Choose at least one file to upload.")
    if len(uploads) > limit:
        raise PayloadTooLarge(f"At most {limit} files can be uploaded at once.")
    folder = _target_folder(folder)
    batch_kind = batch_folder(folder)
    problems: list[dict] = []
    names = []
    for upload in uploads:
        try:
            name = check_file_name(upload.filename)
            if batch_kind:
                head = upload.stream.read(UPLOAD_HEAD_BYTES)
                upload.stream.seek(0)
                check_upload(name, head, project.schema, require_target=batch_kind == TRAINING)
            names.append(name)
        except (ValidationFailed, BadRequest) as exc:
            problems.append(_problem(upload.filename, exc))
    if problems:
        raise _nothing_done("uploaded", problems)
    files = services().resolver.files(project)
    stored = []
    for name, upload in zip(names, uploads, strict=True):
        stream = upload.stream
        stream.seek(0, 2)
        size = stream.tell()
        stream.seek(0)
        info = files.upload(folder + name, stream, size=size,
                            content_type=upload.mimetype or None)
        stored.append({"path": info.key, "size": info.size})
    audit("file.upload", project.slug, details={"files": [f["path"] for f in stored]})
    return stored


def make_folder(project: Project, path: str) -> str:
    created = services().resolver.files(project).make_folder(_target_folder(path))
    audit("file.mkdir", project.slug, details={"path": created})
    return created


def delete_path(project: Project, path: str) -> None:
    """Delete a file, or a folder when ``path`` ends with '/'; the standard folders stay."""
    if not path:
        raise BadRequest("Say which file or folder to delete.")
    if path in STANDARD_FOLDERS or path + "/" in STANDARD_FOLDERS:
        raise AccessDenied("The standard folders of a project cannot be deleted; "
                           "delete the files inside them instead.")
    if project.active_execution_id and batch_folder(path):
        raise Conflict("Batch files cannot be deleted while an execution runs.")
    services().resolver.files(project).delete(path)
    audit("file.delete", project.slug, details={"path": path})


def move_path(project: Project, path: str, to: str, name: str | None = None) -> dict:
    """Move the file ``path``, or the folder when it ends with '/', into the folder ``to``,
    under ``name`` if given (a rename when ``to`` is where it already is).

    Files going into a batch folder are checked against the schema as uploads would be, and
    nothing is moved unless all of them pass. An existing file or folder of the new name is
    never replaced. A folder is moved whole or not at all (``Storage.move_prefix``).
    """
    is_folder = path.endswith("/")
    if not path.strip("/"):
        raise BadRequest("Say which file or folder to move.")
    source = check_path(path, folder=is_folder)
    if source in STANDARD_FOLDERS:
        raise AccessDenied("The standard folders of a project cannot be moved or renamed.")
    if any(source.startswith(system) for system in SYSTEM_FOLDERS):
        raise AccessDenied(f"Trainyard manages {source.split('/')[0]}/ itself; its files "
                           "cannot be moved.")
    folder = _target_folder(to.strip())
    old_name = source.rstrip("/").rpartition("/")[2]
    new_name = old_name if name is None or not name.strip() else check_file_name(name.strip())
    target = folder + new_name + ("/" if is_folder else "")
    where = folder or "the top folder"
    if target == source:
        raise BadRequest(f"{new_name} is already in {where}.")
    if is_folder and target.startswith(source):
        raise BadRequest(f"{source} cannot be moved into itself.")
    if target in STANDARD_FOLDERS:
        raise Conflict(f"{target} is one of the project's standard folders.")
    batch = batch_folder(target)
    if project.active_execution_id and (batch or batch_folder(source)):
        raise Conflict("Batch files cannot be moved while an execution runs.")
    files = services().resolver.files(project)
    if is_folder:
        moving = files.list_files(source)
        if not moving and not files.folder_exists(source):
            raise NotFound(f"No folder named {source}.")
        limit = current_app.config["MAX_MOVE_FILES"]
        if len(moving) > limit:
            raise ValidationFailed(f"{source} holds {len(moving)} files; a move takes at most "
                                   f"{limit}. Move its sub-folders one at a time.")
    else:
        moving = [files.stat(source)]  # 404 for a missing file
    if files.exists(target.rstrip("/")) or files.folder_exists(target.rstrip("/") + "/"):
        raise Conflict(f"There is already a file or folder named {new_name} in {where}; "
                       "delete or rename one of them first.")
    if batch:
        _check_moved_batch_files(files, moving, source, target, batch, project.schema)
    if is_folder:
        count = files.move_folder(source, target)
        audit("folder.move", project.slug, details={"from": source, "to": target,
                                                    "files": count})
        return {"path": target, "files": count}
    moved = files.move(source, target)
    audit("file.move", project.slug, details={"from": source, "to": moved.key})
    return {"path": moved.key, "size": moved.size}


def _check_moved_batch_files(files, moving: list, source: str, target: str, batch: str,
                             schema: BatchSchema) -> None:
    """Check each file of a move into a batch folder from its first bytes, under the name it
    will have; refuse the whole move, naming every failing file, if one is wrong."""
    from project_library.schema_validation import check_upload

    problems = []
    for info in moving:
        new_path = target + info.key[len(source):] if source.endswith("/") else target
        new_name = new_path.rpartition("/")[2]
        with files.open_read(info.key) as stream:
            head = stream.read(UPLOAD_HEAD_BYTES)
        try:
            check_upload(new_name, head, schema, require_target=batch == TRAINING,
                         is_complete=len(head) >= info.size)
        except ValidationFailed as exc:
            if not source.endswith("/"):
                raise  # one file: the upload's own message
            problems.append(_problem(info.key, exc))
    if problems:
        raise _nothing_done("moved", problems)


def _problem(file: str, exc: ValidationFailed | BadRequest) -> dict:
    reasons = (exc.details or {}).get("reasons") if isinstance(exc.details, dict) else None
    return {"file": file, "reasons": reasons or [exc.message]}


def _nothing_done(done: str, problems: list[dict]) -> ValidationFailed:
    """The error refusing a whole upload or move for the files in ``problems``."""
    summary = "; ".join(f"{p['file']}: {' '.join(p['reasons'])}" for p in problems)
    return ValidationFailed(f"Nothing was {done}. {summary}",
                            details={"files": problems,
                                     "reasons": [f"{p['file']}: {r}" for p in problems
                                                 for r in p["reasons"]]})


def list_folder(project: Project, path: str, page_token: str | None = None) -> dict:
    files = services().resolver.files(project)
    folder = check_path(path, folder=True) if path else ""
    page = files.list(folder, page_token=page_token)
    if folder and not page.objects and not page.folders and not files.folder_exists(folder):
        raise NotFound(f"No folder named {folder}.")
    return {"path": folder,
            "folders": page.folders,
            "files": [{"path": o.key, "name": o.name, "size": o.size,
                       "modified": o.modified.isoformat() if o.modified else None}
                      for o in page.objects],
            "next_token": page.next_token}


#: downloads at least this large are redirected to the cloud's signed URL where it can sign
REDIRECT_BYTES = 8 * 1024 * 1024


def download_response(project: Project, path: str, *, inline: bool = False) -> Response:
    """Stream a project file to the client, or redirect a large one to the cloud's signed URL
    (the bytes then never pass through this server)."""
    files = services().resolver.files(project)
    info = files.stat(path)
    if info.size >= REDIRECT_BYTES and not inline:
        url = files.storage.signed_url(files.key(path), 900)
        if url:
            return redirect(url, 302)
    mimetype = mimetypes.guess_type(info.name)[0] or "application/octet-stream"
    # Only images are shown inline; anything else is an attachment (never rendered as HTML).
    disposition = "inline" if inline and mimetype in ("image/png", "image/jpeg") else "attachment"
    if disposition == "attachment":
        mimetype = "text/csv" if mimetype == "text/csv" else "application/octet-stream"
    on_disk = files.local_path(path)
    if on_disk is not None:
        # Local disk: the file itself, which gunicorn sends with sendfile(2) (no copy through
        # Python), with ETag and Range support (a broken download can resume).
        response = send_file(on_disk, mimetype=mimetype, conditional=True, etag=True,
                             max_age=0)
    else:
        response = Response(stream_with_context(files.iter_read(path)), mimetype=mimetype)
        response.headers["Content-Length"] = str(info.size)
    response.headers["Content-Disposition"] = (
        f"{disposition}; filename*=UTF-8''{quote(info.name)}")
    return response


# -- executions --------------------------------------------------------------------------

def start_execution(project: Project, kind: str, user, version=None,
                    target_connection_id=None) -> Execution:
    """Start a training, a prediction (with model ``version`` or the active one) or a move to
    the storage connection ``target_connection_id`` ("" or None: the default storage)."""
    options: dict = {}
    if kind == "move":
        target = str(target_connection_id or "") or None
        if target and services().db.storage_connections.get(target) is None:
            raise ValidationFailed("Please correct the marked fields.", details={
                "target_connection_id": "No such storage connection."})
        options["target_connection_id"] = target
    if version not in (None, ""):
        try:
            options["version"] = int(str(version).lstrip("v"))
        except ValueError:
            raise ValidationFailed("The model version must be a number.",
                                   details={"version": "Not a number."}) from None
    execution = services().runner.submit(project, kind, user, options)
    audit(f"execution.{kind}", project.slug, details={"execution": execution.id, **options})
    return execution


def cancel_execution(project: Project, execution: Execution) -> Execution:
    cancelled = services().runner.cancel(execution)
    audit("execution.cancel", project.slug, details={"execution": execution.id})
    return cancelled


def load_execution(project: Project, execution_id: str) -> Execution:
    execution = services().db.executions.get(execution_id)
    if execution is None or execution.project_id != project.id:
        raise NotFound("No such execution.")
    return execution


def output_page(project: Project, execution: Execution, page: int, page_size: int = 50) -> dict:
    """One page of a prediction execution's output table."""
    from project_library.prediction import read_output_page

    path = (execution.result or {}).get("output_path")
    if execution.kind != "predict" or execution.status != "succeeded" or not path:
        raise NotFound("This execution has no prediction output.")
    if page < 1:
        raise BadRequest("Pages start at 1.")
    files = services().resolver.files(project)
    # A page past the end has no rows. Every row takes at least two bytes, so a page that
    # starts beyond half the file's size is answered without making the reader skip (and
    # hold in memory) billions of row numbers.
    if (page - 1) * page_size > files.stat(path).size // 2:
        first = read_output_page(files, path, page=1, page_size=page_size)
        return {**first, "rows": [], "page": page}
    return read_output_page(files, path, page=page, page_size=page_size)


# -- model versions ------------------------------------------------------------------------

def load_version(project: Project, number) -> object:
    try:
        number = int(str(number).lstrip("v"))
    except ValueError:
        raise NotFound("No such model version.") from None
    version = services().db.model_versions.get(project.id, number)
    if version is None:
        raise NotFound(f"Model version v{number} does not exist.")
    return version


def promote_version(project: Project, number) -> object:
    """Make version ``number`` the one predictions use."""
    version = load_version(project, number)
    services().db.projects.set_versions(project.id, active_version=version.version)
    audit("model.promote", project.slug, details={"version": version.version})
    return version


def rollback_version(project: Project) -> object:
    """Make the newest version older than the active one active again."""
    if project.active_version is None:
        raise Conflict("There is no active model to roll back from.")
    older = [v for v in services().db.model_versions.list_for_project(project.id)
             if v.version < project.active_version]
    if not older:
        raise Conflict(f"v{project.active_version} is the oldest version; there is nothing to "
                       "roll back to.")
    target = older[0]
    services().db.projects.set_versions(project.id, active_version=target.version)
    audit("model.rollback", project.slug, details={"from": project.active_version,
                                                    "to": target.version})
    return target


def delete_version(project: Project, number) -> None:
    """Delete a model version and its files; the active one must be replaced first."""
    version = load_version(project, number)
    if version.version == project.active_version:
        raise Conflict("This is the active model: promote another version first.")
    if project.active_execution_id:
        raise Conflict("Model versions cannot be deleted while an execution runs.")
    services().resolver.files(project).delete_folder(version.folder)
    services().db.model_versions.delete(project.id, version.version)
    services().model_server.forget(project.id, version.version)
    audit("model.delete", project.slug, details={"version": version.version})


def compare_versions(project: Project, first, second) -> dict:
    """Two versions side by side: metrics (with the difference), algorithm, parameters,
    data."""
    a, b = load_version(project, first), load_version(project, second)
    names = [n for n in dict.fromkeys([*a.metrics, *b.metrics])
             if isinstance(a.metrics.get(n, 0), (int, float))
             and isinstance(b.metrics.get(n, 0), (int, float))]
    metrics = [{"name": n, "a": a.metrics.get(n), "b": b.metrics.get(n),
                "difference": (b.metrics[n] - a.metrics[n]
                               if isinstance(a.metrics.get(n), (int, float))
                               and isinstance(b.metrics.get(n), (int, float)) else None)}
               for n in names]
    return {"a": a.to_public(), "b": b.to_public(), "metrics": metrics}


# -- members -------------------------------------------------------------------------------

def list_members(project: Project) -> list[dict]:
    db = services().db
    owner = db.users.get(project.owner_id)
    members = [{"user": owner.to_public(), "role": "owner", "creator": True}] if owner else []
    for user_id, role in sorted(project.members.items()):
        user = db.users.get(user_id)
        if user is not None:
            members.append({"user": user.to_public(), "role": role, "creator": False})
    return members


def set_member(project: Project, email: str, role: str) -> dict:
    """Give the person with ``email`` a role on the project (owners only)."""
    from entity.project import PROJECT_ROLES
    from entity.user import normalise_email

    if role not in PROJECT_ROLES:
        raise ValidationFailed("Please correct the marked fields.",
                               details={"role": f"Choose one of {', '.join(PROJECT_ROLES)}."})
    user = services().db.users.get_by_email(normalise_email(str(email or "")))
    if user is None:
        raise ValidationFailed("Please correct the marked fields.", details={
            "email": "No account has this e-mail address; an admin can invite them."})
    if user.id == project.owner_id:
        raise Conflict("The project's creator is always an owner.")
    previous = project.members.get(user.id)
    project.members[user.id] = role
    services().db.projects.save(project)
    audit("project.member", project.slug, details={"user": user.email, "role": role,
                                                    "previous": previous})
    return {"user": user.to_public(), "role": role}


def remove_member(project: Project, user_id: str) -> None:
    if user_id not in project.members:
        raise NotFound("This person is not a member of the project.")
    user = services().db.users.get(user_id)
    del project.members[user_id]
    services().db.projects.save(project)
    audit("project.member_removed", project.slug,
          details={"user": user.email if user else user_id})
