"""A project's files: upload (multipart or one streamed body), list, move, delete, download,
and signed download links."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import IO

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from entity.base import utcnow
from entity.project import BatchSchema, Project
from exception_layer import (
    AccessDenied,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from integration.file_manager import (
    FEEDBACK,
    PREDICTION,
    STANDARD_FOLDERS,
    SYSTEM_FOLDERS,
    TRAINING,
    batch_folder,
    check_file_name,
    check_path,
    check_user_may_change,
)
from services.context import Context

UPLOAD_HEAD_BYTES = 64 * 1024
#: downloads at least this large are redirected to the cloud's signed URL where it can sign
REDIRECT_BYTES = 8 * 1024 * 1024
LINK_SALT = "trainyard-download-link"
#: the longest lifetime SHARE_LINK_MAX_SECONDS may allow (the setting can only lower it)
MAX_LINK_SECONDS = 7 * 24 * 3600
#: a cloud's signed URL that a download redirects to is used at once: it lives this long
REDIRECT_URL_SECONDS = 300


@dataclass(frozen=True)
class Upload:
    """One file of a multipart upload: its name as sent, its bytes, its media type."""

    filename: str
    stream: IO[bytes]
    content_type: str | None = None


def target_folder(path: str) -> str:
    """``path`` checked as a folder users may write into (not a system folder)."""
    folder = check_user_may_change(check_path(path, folder=True) if path else "")
    if any(folder.startswith(system) for system in SYSTEM_FOLDERS):
        raise AccessDenied(f"Trainyard writes {folder.split('/')[0]}/ itself; upload batch "
                           f"files into {TRAINING} or {PREDICTION}.")
    return folder


def checked_against(folder: str, project: Project) -> tuple[BatchSchema, bool] | None:
    """The schema files going into ``folder`` must follow, and whether they need the target:
    the project's for the batch folders, ``prediction_id`` plus the target for ``feedback/``
    (:func:`project_library.feedback.feedback_schema`); None for any other folder."""
    batch = batch_folder(folder)
    if batch:
        return project.schema, batch == TRAINING
    if folder.startswith(FEEDBACK):
        from project_library.feedback import feedback_schema

        return feedback_schema(project.schema), True
    return None


def _refuse_replacing(files, paths: list[str]) -> None:
    """Conflict naming the files of ``paths`` that exist already (``details.files``, each with
    its reason, and ``details.existing``, their paths): an upload replaces only when asked."""
    existing = [path for path in paths if files.exists(path)]
    if existing:
        names = ", ".join(existing)
        raise Conflict(f"Nothing was uploaded: {names} already "
                       f"{'exists' if len(existing) == 1 else 'exist'}; upload again with "
                       "overwrite=true to replace.",
                       details={"files": [{"file": path, "reasons": ["a file of this name "
                                                                     "already exists"]}
                                          for path in existing],
                                "existing": existing})


def upload(ctx: Context, project: Project, folder: str, uploads: list[Upload], *,
           overwrite: bool = False) -> list[dict]:
    """Store ``uploads`` in ``folder``: all of them, or none. An existing file is replaced
    only with ``overwrite``.

    Files going into the batch folders are checked against the project's schema first.

    Raises:
        BadRequest: nothing to upload. PayloadTooLarge: too many files.
        ValidationFailed: some file is refused (``details.files`` says why, per file), two
            files of the upload have the same name among them.
        Conflict: without ``overwrite``, some file exists already (``details.existing``).
    """
    from project_library.schema_validation import check_upload

    limit = ctx.platform.settings["MAX_UPLOAD_FILES"]
    uploads = [u for u in uploads if u is not None and u.filename]
    if not uploads:
        raise BadRequest("Choose at least one file to upload.")
    if len(uploads) > limit:
        raise PayloadTooLarge(f"At most {limit} files can be uploaded at once.")
    folder = target_folder(folder)
    checked = checked_against(folder, project)
    problems: list[dict] = []
    names: list[str] = []
    for upload in uploads:
        try:
            name = check_file_name(upload.filename)
            if name in names:
                raise ValidationFailed(f"Two files of this upload are named {name}.",
                                       details={"reasons": ["another file of this upload has "
                                                            "the same name"]})
            if checked:
                head = upload.stream.read(UPLOAD_HEAD_BYTES)
                complete = not upload.stream.read(1)  # the whole file: judged as PUT does
                upload.stream.seek(0)
                check_upload(name, head, checked[0], require_target=checked[1],
                             is_complete=complete)
            names.append(name)
        except (ValidationFailed, BadRequest) as exc:
            problems.append(_problem(upload.filename, exc))
    if problems:
        raise _nothing_done("uploaded", problems)
    files = ctx.platform.resolver.files(project)
    if not overwrite:
        _refuse_replacing(files, [folder + name for name in names])
    stored = []
    for name, upload in zip(names, uploads, strict=True):
        stream = upload.stream
        stream.seek(0, 2)
        size = stream.tell()
        stream.seek(0)
        info = files.upload(folder + name, stream, size=size,
                            content_type=upload.content_type or None)
        stored.append({"path": info.key, "size": info.size})
    ctx.audit("file.upload", project.slug, details={"files": [f["path"] for f in stored]})
    return stored


def make_folder(ctx: Context, project: Project, path: str) -> str:
    """Create the folder ``path``; answers its normalised path."""
    created = ctx.platform.resolver.files(project).make_folder(target_folder(path))
    ctx.audit("file.mkdir", project.slug, details={"path": created})
    return created


def delete(ctx: Context, project: Project, path: str) -> None:
    """Delete a file, or a folder when ``path`` ends with '/'; the standard folders stay."""
    if not path:
        raise BadRequest("Say which file or folder to delete.")
    if path in STANDARD_FOLDERS or path + "/" in STANDARD_FOLDERS:
        raise AccessDenied("The standard folders of a project cannot be deleted; "
                           "delete the files inside them instead.")
    check_user_may_change(path)
    if project.active_execution_id and batch_folder(path):
        raise Conflict("Batch files cannot be deleted while an execution runs.")
    ctx.platform.resolver.files(project).delete(path)
    ctx.audit("file.delete", project.slug, details={"path": path})


def move(ctx: Context, project: Project, path: str, to: str, name: str | None = None) -> dict:
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
    check_user_may_change(source)
    if any(source.startswith(system) for system in SYSTEM_FOLDERS):
        raise AccessDenied(f"Trainyard manages {source.split('/')[0]}/ itself; its files "
                           "cannot be moved.")
    folder = target_folder(to.strip())
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
    files = ctx.platform.resolver.files(project)
    if is_folder:
        moving = files.list_files(source)
        if not moving and not files.folder_exists(source):
            raise NotFound(f"No folder named {source}.")
        limit = ctx.platform.settings["MAX_MOVE_FILES"]
        if len(moving) > limit:
            raise ValidationFailed(f"{source} holds {len(moving)} files; a move takes at most "
                                   f"{limit}. Move its sub-folders one at a time.")
    else:
        moving = [files.stat(source)]  # 404 for a missing file
    if files.exists(target.rstrip("/")) or files.folder_exists(target.rstrip("/") + "/"):
        raise Conflict(f"There is already a file or folder named {new_name} in {where}; "
                       "delete or rename one of them first.")
    if checked := checked_against(target, project):
        _check_moved_batch_files(files, moving, source, target, *checked)
    if is_folder:
        count = files.move_folder(source, target)
        ctx.audit("folder.move", project.slug, details={"from": source, "to": target,
                                                        "files": count})
        return {"path": target, "files": count}
    moved = files.move(source, target)
    ctx.audit("file.move", project.slug, details={"from": source, "to": moved.key})
    return {"path": moved.key, "size": moved.size}


def _check_moved_batch_files(files, moving: list, source: str, target: str,
                             schema: BatchSchema, require_target: bool) -> None:
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
            check_upload(new_name, head, schema, require_target=require_target,
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
    summary = " ".join(f"{p['file']}: {'; '.join(r.rstrip('.') for r in p['reasons'])}."
                       for p in problems)
    return ValidationFailed(f"Nothing was {done}. {summary}",
                            details={"files": problems,
                                     "reasons": [f"{p['file']}: {r}" for p in problems
                                                 for r in p["reasons"]]})


def list_folder(ctx: Context, project: Project, path: str,
                page_token: str | None = None) -> dict:
    """One page of the folder ``path`` ('': the root): its sub-folders and files."""
    files = ctx.platform.resolver.files(project)
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




def put(ctx: Context, project: Project, path: str, head: bytes, body, *,
        size: int | None, content_type: str | None, overwrite: bool = False) -> dict:
    """Store one file streamed as ``body`` (which starts with ``head``, its first bytes, and
    is never held whole in memory) at ``path``. Batch files are checked against the schema
    from ``head``; a refused or interrupted upload stores nothing. An existing file is
    replaced only with ``overwrite`` (else Conflict, as :func:`upload`).

    Raises:
        BadRequest / ValidationFailed: a bad name or folder, an empty file, a batch file the
            schema refuses.
        AccessDenied: a system folder.
    """
    from project_library.schema_validation import check_upload

    folder, _, name = path.rpartition("/")
    check_file_name(name)
    folder = target_folder(folder + "/" if folder else "")
    checked = checked_against(folder, project)
    try:  # refused as a multipart upload is: details.files[], one entry with its reasons
        if not head:
            raise ValidationFailed(f"{name} is empty.", details={"reasons": ["the file is empty"]})
        if checked:
            complete = size is not None and len(head) >= size
            check_upload(name, head, checked[0], require_target=checked[1],
                         is_complete=complete)
    except ValidationFailed as exc:
        raise _nothing_done("uploaded", [_problem(name, exc)]) from None
    files = ctx.platform.resolver.files(project)
    if not overwrite:
        _refuse_replacing(files, [folder + name])
    info = files.upload(folder + name, body, size=size, content_type=content_type or None)
    ctx.audit("file.upload", project.slug, details={"files": [info.key]})
    return {"path": info.key, "size": info.size}


@dataclass
class Download:
    """How to send one file: a ``redirect_url`` (a cloud's signed URL), or the file on local
    disk (``local_path``), or its bytes as ``chunks``; with its name, size and media type."""

    name: str
    size: int
    mimetype: str
    disposition: str
    redirect_url: str | None = None
    local_path: str | None = None
    chunks: Iterator[bytes] | None = None


def download(ctx: Context, project: Project, path: str, *, inline: bool = False) -> Download:
    """How to send the file ``path``: a large one goes to the cloud's signed URL (its bytes
    then never pass through this server); only images are ever shown inline."""
    files = ctx.platform.resolver.files(project)
    info = files.stat(path)
    if info.size >= REDIRECT_BYTES and not inline:
        url = files.storage.signed_url(files.key(path), REDIRECT_URL_SECONDS)
        if url:
            return Download(info.name, info.size, "", "attachment", redirect_url=url)
    mimetype = mimetypes.guess_type(info.name)[0] or "application/octet-stream"
    # Only images are shown inline; anything else is an attachment (never rendered as HTML).
    disposition = "inline" if inline and mimetype in ("image/png", "image/jpeg") else "attachment"
    if disposition == "attachment":
        mimetype = "text/csv" if mimetype == "text/csv" else "application/octet-stream"
    on_disk = files.local_path(path)
    if on_disk is not None:
        return Download(info.name, info.size, mimetype, disposition, local_path=str(on_disk))
    return Download(info.name, info.size, mimetype, disposition, chunks=files.iter_read(path))


def _serializer(ctx: Context) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(ctx.platform.settings["SECRET_KEY"], salt=LINK_SALT)


def _fingerprint(info) -> str:
    """What identifies this version of a stored file: the storage's version (ETag, generation,
    inode and modification time), else its size and modification time."""
    if info.version:
        return str(info.version)
    return f"{info.size}/{info.modified.isoformat() if info.modified else ''}"


def share_link(ctx: Context, project: Project, path: str, expires: int) -> dict:
    """A link to download ``path`` without logging in for ``expires`` seconds:
    ``{"token", "expires_at"}`` for the app's download route.

    The link is always the app's, never a cloud's signed URL that nobody could take back: it
    names the user who made it and the version of the file, and :func:`follow_link` checks
    both each time it is used. Its lifetime is capped by the setting SHARE_LINK_MAX_SECONDS.

    Raises:
        BadRequest: ``expires`` is out of range. NotFound: no such file.
    """
    longest = min(int(ctx.platform.settings.get("SHARE_LINK_MAX_SECONDS", MAX_LINK_SECONDS)),
                  MAX_LINK_SECONDS)
    if not 60 <= expires <= longest:
        raise BadRequest(f"expires is from 60 to {longest} seconds.")
    files = ctx.platform.resolver.files(project)
    info = files.stat(path)  # 404 for a missing file
    token = _serializer(ctx).dumps({"project": project.id, "path": path, "ttl": expires,
                                    "user": getattr(ctx.user, "id", None),
                                    "version": _fingerprint(info)})
    ctx.audit("file.link", project.slug, details={"path": path, "expires": expires})
    return {"token": token, "expires_at": (utcnow() + timedelta(seconds=expires)).isoformat()}


def follow_link(ctx: Context, token: str) -> tuple[Project, str]:
    """The project and path an app-signed link names, checked now: the link is unexpired and
    untampered, the user who made it is still active and still holds a role on the project,
    and the file is still the version the link was made for.

    Raises:
        NotFound: any of these fails (the message says which, without naming the file).
    """
    serializer = _serializer(ctx)
    longest = min(int(ctx.platform.settings.get("SHARE_LINK_MAX_SECONDS", MAX_LINK_SECONDS)),
                  MAX_LINK_SECONDS)
    try:
        claims = serializer.loads(token, max_age=longest)
        serializer.loads(token, max_age=int(claims.get("ttl", 0)))
    except SignatureExpired:
        raise NotFound("This download link has expired; ask for a new one.") from None
    except (BadSignature, TypeError, ValueError, AttributeError):
        raise NotFound("This download link is not valid.") from None
    project = ctx.db.projects.get(str(claims.get("project")))
    signer = ctx.db.users.get(str(claims.get("user"))) if claims.get("user") else None
    if project is None or signer is None:
        raise NotFound("This download link is not valid.")
    if not signer.is_active or project.role_of(signer) is None:
        raise NotFound("This download link no longer works: whoever made it has lost access "
                       "to the project.")
    path = str(claims.get("path", ""))
    try:
        info = ctx.platform.resolver.files(project).stat(path)
    except NotFound:
        raise NotFound("This download link no longer works: the file was deleted.") from None
    if _fingerprint(info) != claims.get("version"):
        raise NotFound("This download link no longer works: the file was replaced since; ask "
                       "for a new link.")
    return project, path
