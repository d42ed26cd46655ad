"""The database's schema version and the ordered migrations that bring it up to date.

The version lives in the store itself (collection ``schema``, document ``version``). A database
written before versions existed has no such document: it is at :data:`BASELINE_VERSION`.
:func:`upgrade` runs at every start-up, on every backend alike, because each migration is
written against the document-store contract (:mod:`entity.store`), never against one backend.

Several processes may start at once on one database (web processes, Celery workers, a CLI
command). Before running a migration a process claims it with one conditional update of the
version document; the others wait until the version moves on. The claim is renewed while the
migration runs. A migration must be idempotent: if its process dies half-way, its claim goes
stale and the next process to start runs it again from the beginning.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from entity.base import from_iso, to_iso, utcnow
from entity.store import DocumentStore
from exception_layer import DuplicateKey

log = logging.getLogger(__name__)

COLLECTION = "schema"
VERSION_ID = "version"
#: the schema of every database written before schema versions were recorded
BASELINE_VERSION = 1
#: a claim this old is taken to belong to a process that died while migrating
STALE_CLAIM = timedelta(minutes=10)


class SchemaVersionError(RuntimeError):
    """The database's schema cannot be used by this Trainyard; the message says why."""


@dataclass(frozen=True)
class Migration:
    """Brings a database from ``version - 1`` to ``version``; ``apply`` must be idempotent."""

    version: int
    description: str
    apply: Callable[[DocumentStore], None]


def _sessions_seen_at_upgrade(store: DocumentStore) -> None:
    # Expired sessions are pruned by how long they have been idle; a session opened before
    # its use was recorded counts as seen now, so that an upgrade never ends one early.
    store.collection("login_sessions").update_many({"last_seen_at": None},
                                                   {"last_seen_at": to_iso(utcnow())})


def _connections_granted_to_their_project_owners(store: DocumentStore) -> None:
    # Connections became usable only by the users they are granted to. Each existing one is
    # granted to the owners of the projects on it (a project's creator, and its members with
    # the owner role): they are the ones who put projects there or may move them. Members
    # with other roles keep their access through their projects, which are unchanged; a
    # connection no project uses is left to admins until one grants it. Grants already there
    # are kept, so that running this twice changes nothing.
    owners: dict[str, set[str]] = {}
    for project in store.collection("projects").find():
        connection_id = project.get("storage_connection_id")
        if connection_id:
            held = owners.setdefault(connection_id, set())
            held.add(project["owner_id"])
            held.update(user for user, role in (project.get("members") or {}).items()
                        if role == "owner")
    connections = store.collection("storage_connections")
    for connection in connections.find():
        grants = list(connection.get("grants") or [])
        for user_id in sorted(owners.get(connection["_id"], ())):
            if {"type": "user", "id": user_id} not in grants:
                grants.append({"type": "user", "id": user_id})
        connections.update_one({"_id": connection["_id"]}, {
            "grants": grants, "available_to_all": bool(connection.get("available_to_all"))})


#: in order; each one's version is the one before plus one
MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "login sessions record when they were last used", _sessions_seen_at_upgrade),
    Migration(3, "storage connections are granted to the owners of the projects on them",
              _connections_granted_to_their_project_owners),
)
#: the schema this code reads and writes
SCHEMA_VERSION = MIGRATIONS[-1].version if MIGRATIONS else BASELINE_VERSION


def current_version(store: DocumentStore) -> int:
    """The database's schema version (:data:`BASELINE_VERSION` when none is recorded)."""
    doc = store.collection(COLLECTION).get(VERSION_ID)
    return doc["version"] if doc else BASELINE_VERSION


def upgrade(store: DocumentStore, migrations: tuple[Migration, ...] = MIGRATIONS, *,
            poll_seconds: float = 0.2, stale_after: timedelta = STALE_CLAIM) -> int:
    """Run the migrations the database lacks, in order, each by exactly one process.

    Args:
        store: the database.
        migrations: the ordered migrations (tests pass their own).
        poll_seconds: how often a process waiting on another's migration looks again.
        stale_after: how old a claim must be before another process takes it over.
    Returns:
        the schema version the database is now at.
    Raises:
        SchemaVersionError: the database is newer than this code knows, or its migrations
            are out of order.
    """
    latest = migrations[-1].version if migrations else BASELINE_VERSION
    by_version = {m.version: m for m in migrations}
    if sorted(by_version) != list(range(BASELINE_VERSION + 1, latest + 1)):
        raise SchemaVersionError("Migrations must be numbered one after the other from "
                                 f"{BASELINE_VERSION + 1}")
    versions = store.collection(COLLECTION)
    try:  # a database without a version record is at the baseline
        versions.insert({"_id": VERSION_ID, "version": BASELINE_VERSION, "claim_token": None})
    except DuplicateKey:
        pass
    host, pid = socket.gethostname(), os.getpid()
    while True:
        doc = versions.get(VERSION_ID)
        version = doc["version"]
        if version > latest:
            raise SchemaVersionError(
                f"The database is at schema version {version}, but this Trainyard knows "
                f"versions up to {latest}: run a Trainyard at least as recent as the one "
                "that upgraded this database.")
        if version == latest:
            return version
        held = doc.get("claim_token")
        if held and utcnow() - from_iso(doc["claimed_at"]) < stale_after:
            time.sleep(poll_seconds)  # another process is migrating: wait for it
            continue
        token = uuid.uuid4().hex
        if not versions.update_one(
                {"_id": VERSION_ID, "version": version, "claim_token": held},
                {"claim_token": token, "claimed_at": to_iso(utcnow()), "claimed_by":
                 f"{host} pid {pid}"}):
            continue  # another process claimed it first
        migration = by_version[version + 1]
        if held:
            log.warning("Taking over schema migration %d from %s, whose claim is stale",
                        migration.version, doc.get("claimed_by"))
        _apply_claimed(store, migration, token, stale_after)


def _apply_claimed(store: DocumentStore, migration: Migration, token: str,
                   stale_after: timedelta) -> None:
    """Run ``migration`` under the claim ``token``, renewing the claim while it runs (so that a
    long migration is not taken for a dead one), then record its version."""
    versions = store.collection(COLLECTION)
    done = threading.Event()

    def renew() -> None:
        while not done.wait(stale_after.total_seconds() / 4):
            versions.update_one({"_id": VERSION_ID, "claim_token": token},
                                {"claimed_at": to_iso(utcnow())})

    renewer = threading.Thread(target=renew, name="trainyard-migration-claim", daemon=True)
    log.info("Migrating the database to schema version %d: %s", migration.version,
             migration.description)
    renewer.start()
    try:
        migration.apply(store)
    except BaseException:  # give the claim back: the next start tries again
        versions.update_one({"_id": VERSION_ID, "claim_token": token}, {"claim_token": None})
        raise
    else:
        versions.update_one({"_id": VERSION_ID, "claim_token": token},
                            {"version": migration.version, "claim_token": None})
    finally:
        done.set()
        renewer.join()
