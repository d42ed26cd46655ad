"""The worker of the cross-process claim race (a module of its own so that spawned processes
import it without importing the test module)."""

from __future__ import annotations

from entity.database import Database


def claim_in_own_process(url: str, project_id: str, execution_id: str, barrier, results) -> None:
    """Open a store of our own on ``url``, wait for the others, then try to claim the project."""
    database = Database.from_url(url)
    database.projects.get(project_id)  # connect before the start line
    barrier.wait(timeout=60)
    try:
        results.put((execution_id, database.projects.claim(project_id, execution_id)))
    finally:
        database.close()
