"""The platform's services as the controllers reach them: the app's :class:`Platform`, and the
:class:`Context` of this request (who is logged in, from which address) that every use case
in ``services/`` takes."""

from __future__ import annotations

from flask import current_app, has_request_context, request
from flask_login import current_user

from services.context import Context, Platform


def services() -> Platform:
    """The platform of the current app."""
    return current_app.extensions["trainyard"]


def context() -> Context:
    """The context of a use case run for this request (or for no one, outside a request)."""
    if not has_request_context():
        return Context(services())
    user = current_user._get_current_object() if current_user.is_authenticated else None
    return Context(services(), user, request.remote_addr)
