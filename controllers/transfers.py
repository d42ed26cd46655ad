"""Streamed file transfers of the API: raw-body uploads piped straight into the storage, and
signed, expiring download links (the cloud's own where it can sign, the app's otherwise)."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app, jsonify, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.spliced_body import spliceable, write_all
from controllers import operations as ops
from controllers.access import load_project
from controllers.api import bp
from controllers.auditing import audit
from controllers.openapi import BINARY, FILE, Body, query, spec
from controllers.services import services
from entity.base import utcnow
from exception_layer import BadRequest, NotFound, PayloadTooLarge, ValidationFailed
from integration.file_manager import TRAINING, batch_folder, check_file_name

HEAD_BYTES = 64 * 1024
LINK_SALT = "trainyard-download-link"
MAX_LINK_SECONDS = 7 * 24 * 3600


class _HeadThenRest:
    """A readable stream: bytes already read (the head), then the rest of ``stream``, with a
    hard cap on the total size."""

    def __init__(self, head: bytes, stream, limit: int):
        self.head, self.stream, self.limit, self.read_so_far = head, stream, limit, 0
        if hasattr(stream, "drain_into"):  # a body the kernel can move into a file
            self.drain_into = self._drain_into

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size is None or size < 0 or size >= len(self.head):
                chunk, self.head = self.head, b""
            else:
                chunk, self.head = self.head[:size], self.head[size:]
        else:
            chunk = self.stream.read(size if size and size > 0 else 1024 * 1024)
        self._count(len(chunk))
        return chunk

    def _count(self, count: int) -> None:
        self.read_so_far += count
        if self.read_so_far > self.limit:
            raise PayloadTooLarge(f"The upload is larger than the "
                                  f"{self.limit // (1024 * 1024)} MB allowed.")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        """``read`` into the caller's buffer: the cloud backends fill each part this way, and a
        body read from the socket (``SplicedBody``) then lands there with no copy in between."""
        readinto = getattr(self.stream, "readinto", None)
        if self.head or readinto is None:
            data = self.read(len(buffer))
            buffer[:len(data)] = data
            return len(data)
        count = readinto(buffer) or 0
        self._count(count)
        return count

    def _drain_into(self, fd: int) -> int:
        """Write the head, then let the body move the rest into ``fd``."""
        moved = write_all(fd, self.head)
        self.head = b""
        moved += self.stream.drain_into(fd)
        self._count(moved)  # the body's Content-Length was checked already
        return moved


@bp.put("/projects/<project_id>/files/content")
@spec("Files", query=(query("path", required=True, description="the file's path"),),
      request=Body("application/octet-stream", FILE, "The file's bytes."),
      responses={201: {"type": "object", "required": ["path", "size"],
                       "properties": {"path": {"type": "string"},
                                      "size": {"type": "integer"}}}},
      errors=(413, 422, 502, 503))
def put_file(project_id):
    """Upload one file as the raw request body (streamed into the storage, never held whole
    in memory): ``PUT ...?path=training_batch_files/name.csv``. Batch files are checked against
    the schema from their first bytes; a refused or interrupted upload stores nothing."""
    from project_library.schema_validation import check_upload

    project = load_project(project_id=project_id, need="editor")
    path = request.args.get("path", "")
    folder, _, name = path.rpartition("/")
    check_file_name(name)
    folder = ops._target_folder(folder + "/" if folder else "")
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The upload is larger than the {limit // (1024 * 1024)} MB "
                              "allowed.")
    # Under gunicorn, the body can go from the socket to a local-disk file inside the kernel.
    stream = spliceable(request.environ, request.stream)
    head = stream.read(HEAD_BYTES)
    if not head:
        raise ValidationFailed(f"Nothing was uploaded: {name} is empty.",
                               details={"file": name, "reasons": ["the file is empty"]})
    batch = batch_folder(folder)
    if batch:
        complete = request.content_length is not None and len(head) >= request.content_length
        check_upload(name, head, project.schema, require_target=batch == TRAINING,
                     is_complete=complete)
    files = services().resolver.files(project)
    info = files.upload(folder + name, _HeadThenRest(head, stream, limit),
                        size=request.content_length, content_type=request.mimetype or None)
    audit("file.upload", project.slug, details={"files": [info.key]})
    return jsonify({"path": info.key, "size": info.size}), 201


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=LINK_SALT)


@bp.get("/projects/<project_id>/files/link")
@spec("Files", query=(query("path", required=True, description="the file's path"),
                      query("expires", {"type": "integer", "minimum": 60,
                                        "maximum": MAX_LINK_SECONDS, "default": 3600},
                            "seconds the link stays valid")),
      responses={200: {"type": "object", "required": ["url", "expires_at"],
                       "properties": {"url": {"type": "string"},
                                      "expires_at": {"type": "string", "format": "date-time"}}}},
      errors=(502, 503))
def file_link(project_id):
    """A signed link to download one file without logging in, valid ``expires`` seconds
    (default 3600): the cloud's own signed URL where the storage can sign, else the app's."""
    project = load_project(project_id=project_id)
    path = request.args.get("path", "")
    try:
        expires = int(request.args.get("expires", 3600))
    except ValueError:
        raise BadRequest("expires must be a whole number of seconds.") from None
    if not 60 <= expires <= MAX_LINK_SECONDS:
        raise BadRequest(f"expires is from 60 to {MAX_LINK_SECONDS} seconds.")
    files = services().resolver.files(project)
    files.stat(path)  # 404 for a missing file
    url = files.storage.signed_url(files.key(path), expires)
    if url is None:
        token = _serializer().dumps({"project": project.id, "path": path, "ttl": expires})
        url = f"{request.host_url.rstrip('/')}/api/v1/download/{token}"
    audit("file.link", project.slug, details={"path": path, "expires": expires})
    return jsonify({"url": url, "expires_at": (utcnow() + timedelta(seconds=expires))
                    .isoformat()})


@bp.get("/download/<token>")
@spec("Files", responses={200: BINARY}, errors=(502, 503), public=True)
def signed_download(token):
    """Download through an app-signed link (no login: the link is the permission)."""
    serializer = _serializer()
    try:
        claims = serializer.loads(token, max_age=MAX_LINK_SECONDS)
        serializer.loads(token, max_age=int(claims.get("ttl", 0)))
    except SignatureExpired:
        raise NotFound("This download link has expired; ask for a new one.") from None
    except (BadSignature, TypeError, ValueError, AttributeError):
        raise NotFound("This download link is not valid.") from None
    project = services().db.projects.get(str(claims.get("project")))
    if project is None:
        raise NotFound("This download link is not valid.")
    return ops.download_response(project, str(claims.get("path", "")))
