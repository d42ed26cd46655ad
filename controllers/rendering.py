"""Turning the plain results of the services into HTTP: file downloads and uploads."""

from __future__ import annotations

import re
from urllib.parse import quote

from flask import Response, flash, redirect, send_file, stream_with_context

from exception_layer import BadRequest, PlatformError, ValidationFailed
from services.files import Download, Upload


def file_response(download: Download) -> Response:
    """Send a :class:`Download`: a redirect to the cloud's signed URL, the file on local disk
    (which gunicorn sends with sendfile(2), with ETag and Range support so a broken download
    can resume), or its bytes streamed."""
    if download.redirect_url:
        return redirect(download.redirect_url, 302)
    if download.local_path is not None:
        response = send_file(download.local_path, mimetype=download.mimetype, conditional=True,
                             etag=True, max_age=0)
    else:
        response = Response(stream_with_context(download.chunks), mimetype=download.mimetype)
        response.headers["Content-Length"] = str(download.size)
    response.headers["Content-Disposition"] = (
        f"{download.disposition}; filename*=UTF-8''{quote(download.name)}")
    return response


#: the quoted filename parameter of a multipart part's Content-Disposition, as sent
_QUOTED_FILENAME = re.compile(r'(?:^|;)\s*filename\s*=\s*"([^"]*)"', re.IGNORECASE)
#: what browsers (HTML's multipart/form-data encoding) send for LF, CR and '"' in a name
_HTML_ESCAPES = re.compile(r"%0A|%0D|%22", re.IGNORECASE)


def sent_file_name(part) -> str:
    """The file name of a multipart part as the client sent it.

    Werkzeug reads a quoted name's backslashes as escapes (``..\\x.csv`` becomes ``..x.csv``)
    and keeps a browser's ``%0A`` for a line break; here the backslash stays and ``%0A``,
    ``%0D`` and ``%22`` become the characters they stand for, so that the name checks refuse
    them with a reason instead of storing another name. An RFC 5987 ``filename*`` is
    Werkzeug's to decode.
    """
    disposition = part.headers.get("Content-Disposition", "") if part.headers else ""
    match = _QUOTED_FILENAME.search(disposition)
    if match is None or "filename*" in disposition.lower():
        return part.filename
    escapes = {"%0a": "\n", "%0d": "\r", "%22": '"'}
    return _HTML_ESCAPES.sub(lambda m: escapes[m.group(0).lower()], match.group(1))


def overwrite_asked(args) -> bool:
    """The ``overwrite`` query parameter: true replaces existing files (default false)."""
    value = str(args.get("overwrite", "false")).strip().lower()
    if value not in ("true", "false", "1", "0", ""):
        raise BadRequest("overwrite must be true or false.")
    return value in ("true", "1")


def uploads(parts) -> list[Upload]:
    """The files of a multipart form (Werkzeug ``FileStorage`` objects) as :class:`Upload`,
    each under the name its client sent (:func:`sent_file_name`)."""
    return [Upload(sent_file_name(part), part.stream, part.mimetype) for part in parts
            if part is not None and part.filename]


def form_failure(exc: PlatformError) -> tuple[dict, int]:
    """What a page form shows for a refused action: the field errors of a ValidationFailed
    (422), or any other platform error flashed above the form with its own status."""
    shown = exc.to_dict()  # messages and details cut where they would echo a huge value
    if isinstance(exc, ValidationFailed):
        return shown.get("details") or {}, 422
    flash(shown["message"], "danger")
    return {}, exc.status
