"""The errors the client raises. Every one is a :class:`TrainyardError` whose ``str()`` is a
plain message fit to show to a person."""

from __future__ import annotations

from typing import Any


class TrainyardError(Exception):
    """Base of every error of the client."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class ApiError(TrainyardError):
    """The server answered with an error.

    Attributes:
        status: the HTTP status code (e.g. 404, 409, 422).
        code: the server's error code (``not_found``, ``validation_failed``,
            ``execution_in_progress``...), or ``http_<status>`` when the answer had no JSON body.
        message: the server's plain-words message.
        details: the server's details (field errors, the conflicting execution...), or None.
    """

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        self.status = status
        self.code = code
        self.details = details
        super().__init__(message)

    def __repr__(self) -> str:
        return f"ApiError(status={self.status!r}, code={self.code!r}, message={self.message!r})"

    @classmethod
    def from_response(cls, response) -> ApiError:
        """Build the error from a ``requests`` response: the ``{"error": {...}}`` body when
        there is one, else the status line and the start of the body."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return cls(status, str(error.get("code") or f"http_{status}"),
                       str(error["message"]), error.get("details"))
        text = " ".join((response.text or "").split())[:200]
        reason = response.reason or "error"
        message = f"HTTP {status} {reason}" + (f": {text}" if text else "")
        return cls(status, f"http_{status}", message)


class ConnectionFailed(TrainyardError):
    """The server could not be reached (refused, unknown host, timeout, broken connection)."""

    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach Trainyard at {url}: {reason}")


class ExecutionFailed(TrainyardError):
    """An execution ended other than ``succeeded`` (raised by helpers that need success).

    Attributes:
        execution: the execution's final state.
    """

    def __init__(self, execution: dict):
        self.execution = execution
        super().__init__(failure_message(execution))


class NotLoggedIn(TrainyardError):
    """The command line has no URL or token (run ``trainyard login`` first)."""


def failure_message(execution: dict) -> str:
    """The plain message of an execution that did not succeed."""
    status = execution.get("status")
    if execution.get("error"):
        return str(execution["error"])
    if status == "cancelled":
        return f"execution {execution.get('id')} was cancelled"
    if status == "interrupted":
        return f"execution {execution.get('id')} was interrupted (the server stopped)"
    return f"execution {execution.get('id')} ended with status {status}"
