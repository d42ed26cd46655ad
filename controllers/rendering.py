"""Turning the plain results of the services into HTTP: file downloads and uploads."""

from __future__ import annotations

from urllib.parse import quote

from flask import Response, redirect, send_file, stream_with_context

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


def uploads(parts) -> list[Upload]:
    """The files of a multipart form (Werkzeug ``FileStorage`` objects) as :class:`Upload`."""
    return [Upload(part.filename, part.stream, part.mimetype) for part in parts
            if part is not None and part.filename]
