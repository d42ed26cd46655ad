"""The platform's services (built once in ``create_app``) and the context a use case runs in:
the platform, who acts and from where (for the checks and the audit log)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from entity.database import Database
from entity.security import AuditEvent
from integration.credentials import SecretBox
from integration.notifications import Notifier
from integration.storage_bridge import StorageResolver
from logging_layer.live_access import LiveAccess
from thread_layer.model_server import ModelServer
from thread_layer.runner import ExecutionRunner


@dataclass
class Platform:
    """The long-lived services of one app: database, storage resolver, mail, execution runner,
    secret box, model server, the settings, and the live-log access (``live.revoke`` after every
    change that ends or narrows someone's access)."""

    db: Database
    resolver: StorageResolver
    notifier: Notifier
    runner: ExecutionRunner
    box: SecretBox
    model_server: ModelServer
    settings: Mapping[str, Any] = field(default_factory=dict)
    live: LiveAccess = field(default_factory=LiveAccess)  # access changes -> live-log sockets


@dataclass(frozen=True)
class Context:
    """One use case's view of the world: the platform, the user acting (None when anonymous)
    and the network address the request came from (None outside a request)."""

    platform: Platform
    user: Any = None
    address: str | None = None

    @property
    def db(self) -> Database:
        return self.platform.db

    def audit(self, action: str, target: str | None = None, *, details: dict | None = None,
              success: bool = True, actor=None) -> None:
        """Record one event in the audit log. ``actor`` defaults to the user acting;
        ``actor=False`` records an anonymous event (a failed login)."""
        if actor is None:
            actor = self.user
        if actor is False:
            actor = None
        self.platform.db.audit.add(AuditEvent(
            action=action, actor_id=getattr(actor, "id", None),
            actor_email=getattr(actor, "email", None), target=target, details=details or {},
            success=success, address=self.address))
