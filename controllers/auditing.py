"""The audit log as the controllers write it: who did what, when, from where."""

from __future__ import annotations

from flask import has_request_context, request
from flask_login import current_user

from controllers.services import services
from entity.security import AuditEvent


def audit(action: str, target: str | None = None, *, details: dict | None = None,
          success: bool = True, actor=None) -> None:
    """Record one event. ``actor`` defaults to the logged-in user; ``actor=False`` records an
    anonymous event (a failed login)."""
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user
    if actor is False:
        actor = None
    services().db.audit.add(AuditEvent(
        action=action, actor_id=getattr(actor, "id", None),
        actor_email=getattr(actor, "email", None), target=target, details=details or {},
        success=success, address=request.remote_addr if has_request_context() else None))
