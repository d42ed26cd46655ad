"""One place renders errors: JSON for API clients, a page for browsers."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

from exception_layer.errors import NotFound, PayloadTooLarge, PlatformError

log = logging.getLogger("trainyard.errors")

_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "access_denied",
               404: "not_found", 405: "method_not_allowed", 409: "conflict",
               413: "payload_too_large", 414: "uri_too_long", 415: "unsupported_media_type",
               422: "validation_failed", 429: "too_many_requests", 431: "headers_too_large"}


def wants_json() -> bool:
    """API paths, and requests that prefer JSON (the upload script), get JSON errors."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > \
        request.accept_mimetypes["text/html"]


def render_error(error: PlatformError):
    if wants_json():
        response = make_response(jsonify({"error": error.to_dict()}), error.status)
    else:
        response = make_response(render_template("error.html", error=error,
                                                 shown=error.to_dict()), error.status)
    details = error.details if isinstance(error.details, dict) else {}
    retry_after = details.get("retry_after")
    if isinstance(retry_after, int):
        response.headers["Retry-After"] = str(retry_after)
    return response


def register_error_handlers(app: Flask) -> None:
    """Install the handlers for PlatformError, HTTP errors and anything unexpected."""

    @app.errorhandler(PlatformError)
    def platform_error(error: PlatformError):
        if error.status >= 500:
            log.error("%s: %s", error.code, error.message, exc_info=error.__cause__ or error)
        return render_error(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code == 413:
            limit = app.config.get("MAX_UPLOAD_MB")
            wrapped = PayloadTooLarge(f"The upload is larger than the {limit} MB allowed.")
        elif error.code == 404:
            wrapped = NotFound("No such page or API endpoint.")
        else:
            wrapped = PlatformError(error.description or error.name)
            wrapped.code = _HTTP_CODES.get(error.code, "http_error")
            wrapped.status = error.code or 500
        if error.code == 400 and "CSRF" in (error.description or ""):
            wrapped.code = "csrf_failed"
            wrapped.message = ("The form expired or did not come from Trainyard (CSRF check "
                               "failed); reload the page and try again.")
        response = render_error(wrapped)
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("Unexpected error on %s %s", request.method, request.path)
        return render_error(PlatformError())
