"""Storage connections as admins manage them (pages and API): create, edit, test, delete.
Secrets are encrypted before they are stored and masked whenever they are shown."""

from __future__ import annotations

from controllers.auditing import audit
from controllers.services import services
from entity.storage_connection import StorageConnection
from exception_layer import Conflict, DuplicateKey, NotFound, ValidationFailed
from integration.credentials import (
    check_connection_fields,
    location_fields,
    masked,
    storage_location,
)


def load_connection(connection_id: str) -> StorageConnection:
    connection = services().db.storage_connections.get(connection_id)
    if connection is None:
        raise NotFound("No such storage connection.")
    return connection


def list_connections() -> list[dict]:
    box = services().box
    return [masked(c, box) for c in services().db.storage_connections.list()]


def create_connection(data: dict) -> StorageConnection:
    settings, secrets = check_connection_fields(str(data.get("kind", "")), data.get("name"),
                                                _values(data))
    connection = StorageConnection(name=str(data["name"]).strip(), kind=data["kind"],
                                   settings=settings, secrets=services().box.encrypt(secrets))
    try:
        services().db.storage_connections.add(connection)
    except DuplicateKey:
        raise ValidationFailed("Please correct the marked fields.", details={
            "name": "A connection with this name already exists."}) from None
    audit("storage.create", connection.name, details={"kind": connection.kind})
    return connection


def update_connection(connection: StorageConnection, data: dict) -> StorageConnection:
    """Change a connection; a secret left empty or masked keeps its stored value.

    Where a connection points (the fields its backend declares as locating its files) cannot
    change while projects use it: their files would be left behind. Move the projects first.
    """
    box = services().box
    # Fields left out keep their stored values (PATCH semantics).
    settings, secrets = check_connection_fields(
        connection.kind, data.get("name", connection.name),
        {**connection.settings, **_values(data)}, stored_secrets=box.decrypt(connection.secrets))
    moved = any(settings.get(k) != connection.settings.get(k)
                for k in location_fields(connection.kind))
    if moved and _in_use(connection):
        raise Conflict("Projects use this connection: move them before changing where it "
                       "points.")
    connection.name = str(data.get("name", connection.name)).strip()
    connection.settings, connection.secrets = settings, box.encrypt(secrets)
    services().db.storage_connections.save(connection)
    services().resolver.clear()
    audit("storage.update", connection.name)
    return connection


def _in_use(connection: StorageConnection) -> list[str]:
    return [p.name for p in services().db.projects.list()
            if p.storage_connection_id == connection.id]


def delete_connection(connection: StorageConnection) -> None:
    users = _in_use(connection)
    if users:
        raise Conflict(f"Projects use this connection: {', '.join(users)}. Move them first.")
    services().db.storage_connections.delete(connection.id)
    services().resolver.clear()
    audit("storage.delete", connection.name)


def test_connection(connection: StorageConnection) -> str:
    """Reach the storage with the stored credentials; raises a StorageError saying what is
    wrong (bad credentials, missing bucket, unreachable endpoint, permission denied)."""
    uri, credentials = storage_location(connection, services().box)
    storage = services().resolver.storage(uri, credentials)
    storage.check()
    audit("storage.test", connection.name)
    return f"Connected to {connection.name}: the storage answered and the credentials work."


def _values(data: dict) -> dict:
    nested = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    secrets = data.get("secrets") if isinstance(data.get("secrets"), dict) else {}
    flat = {k: v for k, v in data.items() if k not in ("settings", "secrets", "name", "kind",
                                                         "csrf_token", "action")}
    return {**flat, **nested, **secrets}
