"""The exception hierarchy of Trainyard.

Every error a user may see is a :class:`PlatformError`. Its ``message`` is safe to show to a
client: it never carries a traceback, a path outside the project, a connection string or a secret.
Internals go to the server log through the exception's ``__cause__`` instead.
"""

from __future__ import annotations

from typing import Any

#: the longest text an error answer repeats: a message or a string in its details is cut there,
#: so a client that sent a huge value does not get it echoed back whole
MAX_ECHOED_CHARACTERS = 1000


def bounded(value: Any, limit: int = MAX_ECHOED_CHARACTERS) -> Any:
    """``value`` with every string in it (in lists and dicts too) cut to ``limit`` characters."""
    if isinstance(value, str):
        return value if len(value) <= limit else (
            f"{value[:limit]}... (cut: {len(value)} characters in all)")
    if isinstance(value, dict):
        return {bounded(key, limit): bounded(item, limit) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [bounded(item, limit) for item in value]
    return value


class PlatformError(Exception):
    """Base of all errors that may reach a client.

    Args:
        message: a plain-words explanation, safe to show.
        details: optional JSON-serialisable details (field errors, the id of a conflicting
            execution...), also safe to show.
    """

    code = "platform_error"
    status = 500
    default_message = "Something went wrong on our side."

    def __init__(self, message: str | None = None, *, details: Any = None):
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict:
        """The error body of the API: ``{"code": ..., "message": ...[, "details": ...]}``."""
        body: dict[str, Any] = {"code": self.code, "message": bounded(self.message)}
        if self.details is not None:
            body["details"] = bounded(self.details)
        return body


class BadRequest(PlatformError):
    code = "bad_request"
    status = 400
    default_message = "The request is malformed."


class ValidationFailed(PlatformError):
    """Input that is well-formed but wrong; ``details`` maps field names to messages."""

    code = "validation_failed"
    status = 422
    default_message = "Some fields are not valid."


class Unauthenticated(PlatformError):
    code = "unauthenticated"
    status = 401
    default_message = "Please log in."


class AccessDenied(PlatformError):
    code = "access_denied"
    status = 403
    default_message = "You are not allowed to do this."


class ReadOnlyFolder(AccessDenied):
    """A user asked to change a folder only the platform writes (a model version)."""

    code = "read_only_folder"


class NotFound(PlatformError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class Conflict(PlatformError):
    code = "conflict"
    status = 409
    default_message = "This conflicts with the current state."


class ExecutionInProgress(Conflict):
    """A project already has an active execution; ``details`` names it."""

    code = "execution_in_progress"

    def __init__(self, execution_id: str, kind: str | None = None):
        what = f"a {kind} execution" if kind else "an execution"
        super().__init__(
            f"{what[0].upper()}{what[1:]} of this project is already in progress "
            f"({execution_id}); wait for it to finish or cancel it.",
            details={"execution_id": execution_id},
        )
        self.execution_id = execution_id


class DuplicateKey(Conflict):
    code = "duplicate"
    default_message = "An item with this key already exists."


class PathConflict(Conflict):
    """A file where a folder must go, or the reverse (on local disk a name is one or the other;
    in a bucket both may exist)."""

    code = "path_conflict"
    default_message = "A file and a folder cannot have the same name here."


class PayloadTooLarge(PlatformError):
    code = "payload_too_large"
    status = 413
    default_message = "The upload is larger than allowed."


class TooManyRequests(PlatformError):
    code = "too_many_requests"
    status = 429
    default_message = "Too many attempts; wait a while and try again."


class ArtifactIntegrityError(PlatformError):
    """A stored model artifact does not match the SHA-256 recorded in the registry."""

    code = "artifact_integrity"
    status = 409
    default_message = "A model file does not match its recorded checksum; it was not loaded."


class StorageError(PlatformError):
    """A storage operation failed for a reason that retrying will not fix."""

    code = "storage_error"
    status = 502
    default_message = "The storage refused the operation."


class StorageUnavailable(StorageError):
    code = "storage_unavailable"
    status = 503
    default_message = "The storage cannot be reached right now."


class StorageFull(StorageError):
    """The storage has no room left for a write (a full disk, a quota)."""

    code = "storage_full"
    status = 507
    default_message = "The storage is full; nothing was stored."


class StorageAuthError(StorageError):
    code = "storage_auth"
    status = 502
    default_message = "The storage rejected the credentials."


class ObjectNotFound(NotFound):
    code = "object_not_found"
    default_message = "No such file or folder."


class InvalidKey(BadRequest):
    """A file name or path that is unsafe or malformed (``..``, control characters...)."""

    code = "invalid_path"
    default_message = "This file name or path is not allowed."


class InvalidStorageUri(BadRequest):
    code = "invalid_storage_uri"
    default_message = "This storage address is not valid."
