"""gunicorn's own answers in the API's error shape.

A request gunicorn cannot parse (a request line longer than ``limit_request_line``, a header
name with a space, a control character in a header value, too many or too large headers, a
malformed Content-Length) never reaches the app: gunicorn answers it itself, by default with an
HTML page. This worker answers those with ``{"error": {"code", "message"}}`` instead. It cannot
tell an API call from a page there (the request was not parsed, so its path is unknown); no
browser sends such requests, except for a very long address, and the app answers the common
case of that itself (``app.URI_LIMIT``, below gunicorn's limit) with the page or the JSON that
suits the path.

``handle_error`` and the exception classes of ``gunicorn.http.errors`` are gunicorn's worker
API; a request error this table does not name (and every error of the app) goes to gunicorn.
``tests/e2e/test_server.py`` checks the answers through the real server.
"""

from __future__ import annotations

import json

from gunicorn import util
from gunicorn.http import errors
from gunicorn.workers.gthread import ThreadWorker


def _classes(*names: str) -> tuple[type[Exception], ...]:
    """The named classes this gunicorn has (some are newer than others)."""
    return tuple(found for name in names if (found := getattr(errors, name, None)))


#: errors of the app's answer, not of the request: gunicorn's 500 stays
_APP_FAULTS = _classes("InvalidResponseHeader", "InvalidResponseHeaderName")
#: (classes, status, reason, error code); the first match wins
_ANSWERS = (
    (_classes("LimitRequestLine"), 414, "URI Too Long", "uri_too_long"),
    (_classes("LimitRequestHeaders"), 431, "Request Header Fields Too Large",
     "headers_too_large"),
    (_classes("ExpectationFailed"), 417, "Expectation Failed", "expectation_failed"),
    (_classes("UnsupportedTransferCoding"), 501, "Not Implemented", "not_implemented"),
    (_classes("ForbiddenProxyRequest"), 403, "Forbidden", "access_denied"),
    (_classes("InvalidRequestLine", "InvalidRequestMethod", "InvalidHTTPVersion",
              "InvalidHeader", "InvalidHeaderName", "ObsoleteFolding", "InvalidProxyLine",
              "InvalidProxyHeader", "InvalidSchemeHeaders", "InvalidChunkSize",
              "ChunkMissingTerminator", "InvalidChunkExtension"),
     400, "Bad Request", "bad_request"),
)
#: the longest part of gunicorn's own description of the error that the answer repeats
MAX_DETAIL = 200


def error_answer(exc: Exception) -> bytes | None:
    """The whole HTTP answer to the request error ``exc``; None for gunicorn to answer."""
    if isinstance(exc, _APP_FAULTS):
        return None
    for classes, status, reason, code in _ANSWERS:
        if classes and isinstance(exc, classes):
            detail = str(exc)[:MAX_DETAIL]
            body = json.dumps({"error": {"code": code, "message": f"{reason}: {detail}"}})
            head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    "X-Content-Type-Options: nosniff\r\n\r\n")
            return head.encode("latin-1") + body.encode()
    return None


class JsonErrorWorker(ThreadWorker):
    """gunicorn's threaded worker, answering the requests it cannot parse in JSON."""

    def handle_error(self, req, client, addr, exc):
        answer = error_answer(exc)
        if answer is None:
            return super().handle_error(req, client, addr, exc)
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            util.write_nonblock(client, answer)
        except OSError:
            self.log.debug("Failed to send the error answer.")
        return None
