"""The worker of the two-process scheduler race (a module of its own so that spawned processes
import it without importing the test module)."""

from __future__ import annotations

from datetime import datetime


def build_scheduler(db, clock, *, owner: str, lease_seconds: float = 120):
    """A real scheduler over ``db`` whose real runner queues trainings without running them
    (nothing here needs a model: what is tested is which process fires, and how often)."""
    from integration.notifications import Notifier
    from integration.storage_bridge import StorageResolver
    from thread_layer.runner import ExecutionRunner
    from thread_layer.scheduler import RetrainingScheduler

    runner = ExecutionRunner(db=db, resolver=StorageResolver("file:///nonexistent"),
                             notifier=Notifier(db.mail, None, "http://trainyard.test"),
                             publish=lambda *args: None)
    runner.start = lambda: None  # submit() queues; nothing takes executions off the queue
    return RetrainingScheduler(db, runner, clock=clock, tick_seconds=1,
                               lease_seconds=lease_seconds, owner=owner)


def tick_in_own_process(url: str, now_iso: str, owner: str, barrier, results) -> None:
    """Open the database on ``url``, wait for the others, then tick a few times at ``now``."""
    from entity.database import Database

    db = Database.from_url(url)
    now = datetime.fromisoformat(now_iso)
    scheduler = build_scheduler(db, lambda: now, owner=owner)
    db.retraining_schedules.list_enabled()  # connect before the start line
    barrier.wait(timeout=60)
    try:
        started = []
        for _ in range(5):
            started += scheduler.tick()
        results.put((owner, started))
    finally:
        db.close()
