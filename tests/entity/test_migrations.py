"""The schema version and the ordered migrations, over every document-store backend."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from claim_race import upgrade_in_own_process

from entity.base import from_iso, to_iso, utcnow
from entity.database import Database
from entity.migrations import (
    BASELINE_VERSION,
    COLLECTION,
    SCHEMA_VERSION,
    VERSION_ID,
    Migration,
    SchemaVersionError,
    current_version,
    upgrade,
)
from entity.store import open_store
from tests import databases
from tests.conftest import wait_until


def _recording(log: list, version: int) -> Migration:
    def apply(store):
        log.append(version)
        store.collection("things").update_many({}, {f"v{version}": True})
    return Migration(version, f"things gain v{version}", apply)


def test_a_new_database_is_brought_to_the_current_version(store):
    assert current_version(store) == BASELINE_VERSION
    assert upgrade(store) == SCHEMA_VERSION
    assert current_version(store) == SCHEMA_VERSION
    assert upgrade(store) == SCHEMA_VERSION  # again: nothing to do


def test_a_database_without_a_version_is_the_baseline_and_is_migrated(store):
    # login sessions as the baseline wrote them: no last_seen_at
    sessions = store.collection("login_sessions")
    sessions.insert({"_id": "s1", "user_id": "u1", "created_at": "2026-11-01T08:00:00+00:00"})
    before = utcnow()
    assert upgrade(store) == SCHEMA_VERSION
    seen = from_iso(sessions.get("s1")["last_seen_at"])
    assert seen >= before  # counts as seen at the upgrade: never pruned early
    assert store.collection(COLLECTION).get(VERSION_ID)["version"] == SCHEMA_VERSION


def test_migrations_run_in_order_each_once(store):
    store.collection("things").insert({"_id": "t1"})
    applied: list[int] = []
    migrations = (_recording(applied, 2), _recording(applied, 3), _recording(applied, 4))
    assert upgrade(store, migrations[:2]) == 3
    assert applied == [2, 3]
    assert upgrade(store, migrations) == 4
    assert upgrade(store, migrations) == 4
    assert applied == [2, 3, 4]
    assert store.collection("things").get("t1") == {"_id": "t1", "v2": True, "v3": True,
                                                     "v4": True}


def test_a_newer_database_refuses_with_both_versions(store):
    store.collection(COLLECTION).insert({"_id": VERSION_ID, "version": SCHEMA_VERSION + 3,
                                         "claim_token": None})
    with pytest.raises(SchemaVersionError) as refused:
        upgrade(store)
    message = str(refused.value)
    assert f"schema version {SCHEMA_VERSION + 3}" in message
    assert f"up to {SCHEMA_VERSION}" in message
    assert current_version(store) == SCHEMA_VERSION + 3  # untouched


def test_migrations_numbered_with_a_gap_are_refused(store):
    with pytest.raises(SchemaVersionError, match="one after the other"):
        upgrade(store, (_recording([], 2), _recording([], 4)))


def test_a_failed_migration_leaves_the_version_and_runs_again_next_start(store):
    attempts: list[int] = []

    def flaky(store):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        upgrade(store, (Migration(2, "flaky", flaky),))
    assert current_version(store) == BASELINE_VERSION
    assert upgrade(store, (Migration(2, "flaky", flaky),)) == 2  # the claim was given back
    assert len(attempts) == 2


def test_a_stale_claim_of_a_dead_process_is_taken_over(store):
    long_ago = to_iso(utcnow() - timedelta(hours=1))
    store.collection(COLLECTION).insert({"_id": VERSION_ID, "version": BASELINE_VERSION,
                                         "claim_token": "dead", "claimed_at": long_ago,
                                         "claimed_by": "gone pid 1"})
    applied: list[int] = []
    assert upgrade(store, (_recording(applied, 2),)) == 2
    assert applied == [2]


def test_upgrades_raced_by_8_threads_run_each_migration_once(store):
    applied: list[int] = []
    lock = threading.Lock()

    def slow(version):
        def apply(store):
            with lock:
                applied.append(version)
            store.collection("things").insert({"_id": f"t{version}"})  # twice would fail
        return Migration(version, "slow", apply)

    migrations = (slow(2), slow(3), slow(4))
    barrier = threading.Barrier(8)

    def contender(_):
        barrier.wait(timeout=30)
        return upgrade(store, migrations, poll_seconds=0.01)

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(contender, range(8))) == [4] * 8
    assert sorted(applied) == [2, 3, 4]


def test_database_upgrade_reaches_the_current_version(backend):
    database = Database(backend.store)
    assert database.upgrade() == SCHEMA_VERSION


def test_a_long_migration_keeps_renewing_its_claim(store):
    versions = store.collection(COLLECTION)
    renewed: list[bool] = []

    def long_running(store):
        claimed_at = versions.get(VERSION_ID)["claimed_at"]
        renewed.append(bool(wait_until(
            lambda: versions.get(VERSION_ID)["claimed_at"] != claimed_at, timeout=30,
            interval=0.01, message="the claim to be renewed")))

    assert upgrade(store, (Migration(2, "long", long_running),),
                   stale_after=timedelta(seconds=0.2)) == 2
    assert renewed == [True]
    assert versions.get(VERSION_ID)["claim_token"] is None


@pytest.mark.slow  # spawns 4 Python processes
@pytest.mark.parametrize("shared_url", databases.SHARED_BACKENDS, indirect=True)
def test_upgrades_raced_by_4_processes_on_one_database_run_each_migration_once(shared_url):
    url = shared_url
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    workers = [ctx.Process(target=upgrade_in_own_process, args=(url, barrier, results))
               for _ in range(4)]
    for worker in workers:
        worker.start()
    assert [results.get(timeout=120) for _ in workers] == [4] * 4
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    store = open_store(url)
    assert sorted(d["version"] for d in store.collection("applied").find()) == [2, 3, 4]
    store.close()
