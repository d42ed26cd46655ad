"""Small helpers shared by the entities: ids and UTC timestamps as ISO strings."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(value: datetime | None) -> str | None:
    """Store datetimes as ISO-8601 UTC strings (they sort and compare on every backend)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_iso(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def new_id() -> str:
    """A random, URL-safe id."""
    return secrets.token_hex(8)


def new_sortable_id(now: datetime | None = None) -> str:
    """An id that sorts by creation time and reads well in folder names: 20261122T171620-a1b2c3d4
    (32 random bits, so that ids made in the same second practically never collide)."""
    now = now or utcnow()
    return f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
