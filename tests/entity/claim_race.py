"""The worker of the cross-process claim race (a module of its own so that spawned processes
import it without importing the test module)."""

from __future__ import annotations

import os

from entity.database import Database
from entity.migrations import Migration, upgrade
from entity.store import open_store


def claim_in_own_process(url: str, project_id: str, execution_id: str, barrier, results) -> None:
    """Open a store of our own on ``url``, wait for the others, then try to claim the project."""
    database = Database.from_url(url)
    database.projects.get(project_id)  # connect before the start line
    barrier.wait(timeout=60)
    try:
        results.put((execution_id, database.projects.claim(project_id, execution_id)))
    finally:
        database.close()


def _record_application(version: int):
    def apply(store) -> None:  # one document per process that applied it: twice shows
        store.collection("applied").insert({"_id": f"v{version}-pid{os.getpid()}",
                                            "version": version})
    return apply


RACE_MIGRATIONS = tuple(Migration(v, f"race {v}", _record_application(v)) for v in (2, 3, 4))


def upgrade_in_own_process(url: str, barrier, results) -> None:
    """Open a store of our own on ``url``, wait for the others, then upgrade it."""
    store = open_store(url)
    store.collection("applied").count()  # connect before the start line
    barrier.wait(timeout=60)
    try:
        results.put(upgrade(store, RACE_MIGRATIONS, poll_seconds=0.01))
    finally:
        store.close()


def write_after_fork(store, results) -> None:
    """In a forked child: use the parent's store object (it must open its own connections)."""
    try:
        store.collection("forked").insert({"_id": f"child-{os.getpid()}"})
        results.put(store.collection("forked").count())
    finally:
        store.close()
