"""Storage connections as admins manage them: create, edit, grant, test, delete, re-encrypt.
Secrets are encrypted before they are stored and masked whenever they are shown. A connection
is usable (to create projects on, or move projects to) only by admins and the principals it is
granted to, or by everyone when it is available to all projects; to the others it is hidden."""

from __future__ import annotations

from entity.storage_connection import PRINCIPAL_TYPES, StorageConnection
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
    """Every connection, secrets masked, with its grants (for admins)."""
    return [shown(ctx, c) for c in ctx.db.storage_connections.list()]


def _grants(ctx: Context, data: dict, connection: StorageConnection | None) -> tuple[list, bool]:
    """The grants and the "available to all projects" switch in ``data`` (those of
    ``connection``, or none, where ``data`` leaves them out).

    Raises:
        ValidationFailed: a grant is not ``{"type": "user", "id": <a user's id>}`` or
            ``{"type": "team", "id": <a team's id>}``.
    """
    grants = list(connection.grants) if connection else []
    available = connection.available_to_all if connection else False
    errors: dict[str, str] = {}
    if "grants" in data:
        raw = data["grants"]
        if not isinstance(raw, list) or not all(
                isinstance(g, dict) and set(g) == {"type", "id"} for g in raw):
            errors["grants"] = 'A list of principals such as {"type": "user", "id": "..."}.'
        else:
            grants = []
            for grant in raw:
                kind, principal = grant["type"], grant["id"]
                if kind not in PRINCIPAL_TYPES:
                    errors["grants"] = f"A principal's type is one of {', '.join(PRINCIPAL_TYPES)}."
                elif kind == "user" and (not isinstance(principal, str)
                                         or ctx.db.users.get(principal) is None):
                    errors["grants"] = f"No such user: {str(principal)[:40]}."
                elif kind == "team" and (not isinstance(principal, str)
                                         or ctx.db.teams.get(principal) is None):
                    errors["grants"] = f"No such team: {str(principal)[:40]}."
                elif {"type": kind, "id": principal} not in grants:
                    grants.append({"type": kind, "id": principal})
    if "available_to_all" in data:
        if not isinstance(data["available_to_all"], bool):
            errors["available_to_all"] = "true or false."
        else:
            available = data["available_to_all"]
    if errors:
        raise ValidationFailed("Please correct the marked fields.", details=errors)
    return grants, available


def _audit_grants(ctx: Context, connection: StorageConnection, before: tuple[list, bool]) -> None:
    if before != (connection.grants, connection.available_to_all):
        ctx.audit("storage.grants", connection.name, details={
            "grants": connection.grants, "available_to_all": connection.available_to_all})


def create_connection(ctx: Context, data: dict) -> StorageConnection:
    """Create a connection from its fields; its secrets are encrypted (ValidationFailed when a
    field is wrong)."""
    settings, secrets = check_connection_fields(str(data.get("kind", "")), data.get("name"),
                                                _values(data))
    grants, available = _grants(ctx, data, None)
    connection = StorageConnection(name=str(data["name"]).strip(), kind=data["kind"],
                                   settings=settings, secrets=ctx.platform.box.encrypt(secrets),
                                   grants=grants, available_to_all=available)
    try:
        ctx.db.storage_connections.add(connection)
    except DuplicateKey:
        raise ValidationFailed("Please correct the marked fields.", details={
            "name": "A connection with this name already exists."}) from None
    ctx.audit("storage.create", connection.name, details={"kind": connection.kind})
    _audit_grants(ctx, connection, ([], False))
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
    grants, available = _grants(ctx, data, connection)
    moved = any(settings.get(k) != connection.settings.get(k)
                for k in location_fields(connection.kind))
    if moved and _in_use(ctx, connection):
        raise Conflict("Projects use this connection: move them before changing where it "
                       "points.")
    connection.name = str(data.get("name", connection.name)).strip()
    connection.settings, connection.secrets = settings, box.encrypt(secrets)
    before = (connection.grants, connection.available_to_all)
    connection.grants, connection.available_to_all = grants, available
    ctx.db.storage_connections.save(connection)
    ctx.platform.resolver.clear()
    ctx.audit("storage.update", connection.name)
    _audit_grants(ctx, connection, before)
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
                                                         "csrf_token", "action", "grants",
                                                         "available_to_all")}
    return {**flat, **nested, **secrets}


def shown(ctx: Context, connection: StorageConnection) -> dict:
    """``connection`` as it may be shown to admins: its secrets masked, its grants."""
    return {**masked(connection, ctx.platform.box),
            "grants": [dict(g) for g in connection.grants],
            "available_to_all": connection.available_to_all}


def choices(ctx: Context, current: str | None = None) -> list[StorageConnection]:
    """The connections the user acting may create projects on or move them to, and the
    connection ``current`` (the one a project shown to them lives on)."""
    return [c for c in ctx.db.storage_connections.list()
            if c.usable_by(ctx.user) or (current and c.id == current)]


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
