"""Storage connections as admins manage them: create, edit, test, delete, re-encrypt.
Secrets are encrypted before they are stored and masked whenever they are shown."""

from __future__ import annotations

from entity.storage_connection import StorageConnection
from exception_layer import Conflict, DuplicateKey, NotFound, ValidationFailed
from integration.credentials import (
    check_connection_fields,
    location_fields,
    masked,
    storage_location,
)
from services.context import Context


def load_connection(ctx: Context, connection_id: str) -> StorageConnection:
    """The connection ``connection_id`` (NotFound otherwise)."""
    connection = ctx.db.storage_connections.get(connection_id)
    if connection is None:
        raise NotFound("No such storage connection.")
    return connection


def list_connections(ctx: Context) -> list[dict]:
    """Every connection, secrets masked."""
    box = ctx.platform.box
    return [masked(c, box) for c in ctx.db.storage_connections.list()]


def create_connection(ctx: Context, data: dict) -> StorageConnection:
    """Create a connection from its fields; its secrets are encrypted (ValidationFailed when a
    field is wrong)."""
    settings, secrets = check_connection_fields(str(data.get("kind", "")), data.get("name"),
                                                _values(data))
    connection = StorageConnection(name=str(data["name"]).strip(), kind=data["kind"],
                                   settings=settings, secrets=ctx.platform.box.encrypt(secrets))
    try:
        ctx.db.storage_connections.add(connection)
    except DuplicateKey:
        raise ValidationFailed("Please correct the marked fields.", details={
            "name": "A connection with this name already exists."}) from None
    ctx.audit("storage.create", connection.name, details={"kind": connection.kind})
    return connection


def update_connection(ctx: Context, connection: StorageConnection,
                      data: dict) -> StorageConnection:
    """Change a connection; a secret left empty or masked keeps its stored value.

    Where a connection points (the fields its backend declares as locating its files) cannot
    change while projects use it: their files would be left behind. Move the projects first.
    """
    box = ctx.platform.box
    # Fields left out keep their stored values (PATCH semantics).
    settings, secrets = check_connection_fields(
        connection.kind, data.get("name", connection.name),
        {**connection.settings, **_values(data)}, stored_secrets=box.decrypt(connection.secrets))
    moved = any(settings.get(k) != connection.settings.get(k)
                for k in location_fields(connection.kind))
    if moved and _in_use(ctx, connection):
        raise Conflict("Projects use this connection: move them before changing where it "
                       "points.")
    connection.name = str(data.get("name", connection.name)).strip()
    connection.settings, connection.secrets = settings, box.encrypt(secrets)
    ctx.db.storage_connections.save(connection)
    ctx.platform.resolver.clear()
    ctx.audit("storage.update", connection.name)
    return connection


def _in_use(ctx: Context, connection: StorageConnection) -> list[str]:
    return [p.name for p in ctx.db.projects.list()
            if p.storage_connection_id == connection.id]


def delete_connection(ctx: Context, connection: StorageConnection) -> None:
    """Delete a connection no project uses (Conflict otherwise)."""
    users = _in_use(ctx, connection)
    if users:
        raise Conflict(f"Projects use this connection: {', '.join(users)}. Move them first.")
    ctx.db.storage_connections.delete(connection.id)
    ctx.platform.resolver.clear()
    ctx.audit("storage.delete", connection.name)


def test_connection(ctx: Context, connection: StorageConnection) -> str:
    """Reach the storage with the stored credentials; raises a StorageError saying what is
    wrong (bad credentials, missing bucket, unreachable endpoint, permission denied)."""
    uri, credentials = storage_location(connection, ctx.platform.box)
    storage = ctx.platform.resolver.storage(uri, credentials)
    storage.check()
    ctx.audit("storage.test", connection.name)
    return f"Connected to {connection.name}: the storage answered and the credentials work."


def _values(data: dict) -> dict:
    nested = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    secrets = data.get("secrets") if isinstance(data.get("secrets"), dict) else {}
    flat = {k: v for k, v in data.items() if k not in ("settings", "secrets", "name", "kind",
                                                         "csrf_token", "action")}
    return {**flat, **nested, **secrets}


def shown(ctx: Context, connection: StorageConnection) -> dict:
    """``connection`` as it may be shown: its secrets masked."""
    return masked(connection, ctx.platform.box)


def choices(ctx: Context) -> list[StorageConnection]:
    """The connections a project may be created on."""
    return ctx.db.storage_connections.list()


def default_uri(ctx: Context) -> str:
    """Where projects without a connection keep their files."""
    return ctx.platform.resolver.default_uri


def rotate_secrets(ctx: Context) -> int:
    """Re-encrypt every stored credential with the first key of the secret box; answers how
    many connections were re-encrypted."""
    count = 0
    for connection in ctx.db.storage_connections.list():
        connection.secrets = ctx.platform.box.rotate(connection.secrets)
        ctx.db.storage_connections.save(connection)
        count += 1
    return count
