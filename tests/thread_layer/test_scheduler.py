"""The retraining scheduler: a slot missed while no server ran fires once at start-up and not
again at the next start; of two processes on one database exactly one fires; a time-zone change
recomputes the next run; daylight-saving changes move the slot with the local clock. Time comes
from an injected clock; the runner is the real one, its threads not started (executions are
queued, never run: which process fires, and how often, is what is tested)."""

from __future__ import annotations

import multiprocessing
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from entity.database import Database
from entity.project import BatchSchema, ColumnSpec, Project
from entity.retraining_schedule import RetrainingSchedule, latest_slot, next_slot
from tests.factories import cancer_project
from tests.waiting import wait_until
from thread_layer.scheduler import LEASE_NAME

sys.path.insert(0, str(Path(__file__).parent))
from scheduler_race import build_scheduler, tick_in_own_process  # noqa: E402


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'trainyard.db'}"


@pytest.fixture
def db(db_url):
    database = Database.from_url(db_url)
    database.ensure_indexes()
    yield database
    database.close()


def _project(db) -> Project:
    schema = BatchSchema("^x.csv$", [ColumnSpec("a", "float"), ColumnSpec("y", "category")], "y")
    return db.projects.add(Project(name="Nightly", slug="nightly", problem_type="classification",
                                   schema=schema, owner_id="owner"))


def _schedule(db, project, cron="0 3 * * *", timezone="UTC", *, made_at: datetime):
    schedule = RetrainingSchedule(project_id=project.id, cron=cron, timezone=timezone)
    schedule.reset_slots(made_at)
    return db.retraining_schedules.add(schedule)


def _free(db, project) -> None:
    """End the queued training (as if it had run), so the project may train again."""
    current = db.projects.get(project.id)
    if current.active_execution_id:
        db.executions.finish(current.active_execution_id, "succeeded", result={})
        db.projects.release(project.id, current.active_execution_id)


def _trainings(db, project) -> list:
    return [e for e in db.executions.list_for_project(project.id) if e.kind == "train"]


def test_a_slot_missed_while_down_runs_once_at_start_up_and_not_at_the_next_start(db):
    project = _project(db)
    made = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    schedule = _schedule(db, project, made_at=made)
    assert schedule.next_run_at == datetime(2026, 12, 2, 3, 0, tzinfo=UTC)

    # the server was down from Dec 1 to Dec 4 10:00: three slots passed, one run is due
    clock = Clock(datetime(2026, 12, 4, 10, 0, tzinfo=UTC))
    first = build_scheduler(db, clock, owner="first start")
    first.start()  # its first tick runs at once
    try:
        fired = wait_until(lambda: _trainings(db, project), timeout=10,
                           message="the missed slot to fire")
    finally:
        first.shutdown()
    assert len(fired) == 1
    trigger = fired[0].trigger
    assert trigger["by"] == "schedule" and trigger["schedule_id"] == schedule.id
    assert trigger["slot"] == "2026-12-04T03:00:00+00:00"
    assert "0 3 * * *, UTC" in trigger["reason"]
    stored = db.retraining_schedules.get(schedule.id)
    assert stored.last_execution_id == fired[0].id and stored.last_outcome is None
    assert stored.next_run_at == datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    _free(db, project)

    # a second start at the same time (or later the same day) fires nothing
    for later in (clock.now, clock.now + timedelta(hours=12)):
        again = build_scheduler(db, Clock(later), owner=f"restart at {later}")
        assert again.tick() == []
        again.shutdown()
    assert len(_trainings(db, project)) == 1

    # the next day's slot fires again, once
    next_day = build_scheduler(db, Clock(datetime(2026, 12, 5, 3, 0, 30, tzinfo=UTC)),
                               owner="next day")
    assert len(next_day.tick()) == 1 and next_day.tick() == []
    next_day.shutdown()


def test_a_slot_due_while_the_project_trains_is_skipped_with_its_reason(db):
    project = _project(db)
    schedule = _schedule(db, project, made_at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    clock = Clock(datetime(2026, 12, 2, 3, 0, tzinfo=UTC))
    scheduler = build_scheduler(db, clock, owner="one")
    busy = scheduler.runner.submit(project, "train", None, {},
                                   trigger={"by": "user", "reason": "a person's training"})
    assert scheduler.tick() == []
    stored = db.retraining_schedules.get(schedule.id)
    assert stored.last_slot == clock.now and stored.last_execution_id is None
    assert stored.last_outcome.startswith("Skipped")
    assert [e.id for e in _trainings(db, project)] == [busy.id]  # not queued behind it


def test_two_schedulers_one_lease_only_the_holder_fires_and_a_dead_holder_is_replaced(db):
    project = _project(db)
    _schedule(db, project, "*/5 * * * *", made_at=datetime(2026, 12, 4, 9, 58, tzinfo=UTC))
    clock = Clock(datetime(2026, 12, 4, 10, 0, tzinfo=UTC))
    a = build_scheduler(db, clock, owner="a", lease_seconds=600)
    b = build_scheduler(db, clock, owner="b", lease_seconds=600)
    assert len(a.tick()) == 1
    assert db.job_schedule.lease_holder(LEASE_NAME, clock.now) == "a"
    _free(db, project)
    clock.now += timedelta(minutes=5)  # a new slot: b looks first, but a holds the lease
    assert b.tick() == []
    assert len(a.tick()) == 1  # renewed until 10:15
    _free(db, project)
    # a dies (stops renewing); once its lease has run out, b takes over and fires
    clock.now += timedelta(minutes=5)
    assert b.tick() == []  # 10:10: a's lease still runs
    clock.now += timedelta(minutes=5, seconds=1)
    assert len(b.tick()) == 1  # 10:15:01, the 10:15 slot
    assert db.job_schedule.lease_holder(LEASE_NAME, clock.now) == "b"
    assert a.tick() == []  # a comes back: b holds the lease now
    # a stopping holder gives the lease up at once
    b.shutdown()
    assert db.job_schedule.lease_holder(LEASE_NAME, clock.now) is None


@pytest.mark.slow  # two spawned processes import the platform
def test_two_processes_on_one_sqlite_file_fire_a_due_slot_exactly_once(db, db_url):
    project = _project(db)
    _schedule(db, project, made_at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC).isoformat()
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    workers = [spawn.Process(target=tick_in_own_process,
                             args=(db_url, now, owner, barrier, results))
               for owner in ("process one", "process two")]
    for worker in workers:
        worker.start()
    try:
        outcomes = dict(results.get(timeout=90) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    fired = [ids for ids in outcomes.values() if ids]
    assert len(fired) == 1 and len(fired[0]) == 1, outcomes
    assert [e.id for e in _trainings(db, project)] == fired[0]


def test_a_time_zone_change_recomputes_the_next_run(admin_client, api):
    project = api.create_project(cancer_project())
    created = api.post(f"/projects/{project['id']}/schedules",
                       json={"cron": "0 3 * * *", "timezone": "UTC"})
    assert created.status_code == 201, created.get_json()
    schedule = created.get_json()
    utc_next = datetime.fromisoformat(schedule["next_run_at"])
    assert (utc_next.hour, utc_next.minute) == (3, 0)

    moved = api.patch(f"/projects/{project['id']}/schedules/{schedule['id']}",
                      json={"timezone": "Asia/Tokyo"})
    assert moved.status_code == 200, moved.get_json()
    tokyo_next = datetime.fromisoformat(moved.get_json()["next_run_at"])
    assert (tokyo_next.hour, tokyo_next.minute) == (18, 0)  # 03:00 in Tokyo is 18:00 UTC
    assert tokyo_next - datetime.now(UTC) <= timedelta(days=1)
    # the slots up to the change count as past under the new zone
    assert datetime.fromisoformat(moved.get_json()["last_slot"]) == \
        latest_slot("0 3 * * *", "Asia/Tokyo", datetime.now(UTC))
    page = admin_client.get(f"/projects/{project['slug']}/retraining").get_data(as_text=True)
    assert tokyo_next.strftime("%Y-%m-%d %H:%M") in page and 'value="Asia/Tokyo"' in page


@pytest.mark.parametrize("body, field", [
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "0 3 * *"}, "cron"),
    ({"cron": "0 3 * * * *"}, "cron"),
    ({}, "cron"),
    ({"cron": 5}, "cron"),
    ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ({"cron": "0 3 * * *", "timezone": "../../etc/passwd"}, "timezone"),
    ({"cron": "0 3 * * *", "timezone": ""}, "timezone"),
    ({"cron": "0 3 * * *", "enabled": "yes"}, "enabled"),
])
def test_invalid_schedules_are_refused_naming_the_field_and_nothing_is_stored(api, app, body,
                                                                               field):
    project = api.create_project(cancer_project())
    refused = api.post(f"/projects/{project['id']}/schedules", json=body)
    assert refused.status_code == 422, refused.get_json()
    assert field in refused.get_json()["error"]["details"]
    assert app.extensions["trainyard"].db.retraining_schedules.list_for_project(
        project["id"]) == []
    good = api.post(f"/projects/{project['id']}/schedules", json={"cron": "@daily"}).get_json()
    patched = api.patch(f"/projects/{project['id']}/schedules/{good['id']}",
                        json={**body, "cron": body.get("cron", "bad")})
    assert patched.status_code == 422
    assert api.get(f"/projects/{project['id']}/schedules/{good['id']}").get_json() == good


def test_daylight_saving_moves_the_slot_with_the_local_clock():
    # Paris leaves summer time on 2026-10-25: 03:00 local is 01:00 UTC before, 02:00 after
    before = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    assert next_slot("0 3 * * *", "Europe/Paris", before) == \
        datetime(2026, 10, 25, 2, 0, tzinfo=UTC)
    assert latest_slot("0 3 * * *", "Europe/Paris", before) == \
        datetime(2026, 10, 24, 1, 0, tzinfo=UTC)
    # a slot in the hour skipped on 2026-03-29 (02:30 does not exist) runs once, at 03:00
    skipped = next_slot("30 2 * * *", "Europe/Paris", datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    assert skipped == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
