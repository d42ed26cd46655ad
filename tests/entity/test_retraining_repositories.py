"""The scheduler's lease, a schedule's slot claim and a challenger's conditional decision, on
every document-store backend: each is one conditional update that exactly one caller wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from entity.model_version import ModelVersion
from entity.retraining_schedule import RetrainingSchedule

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def test_a_lease_has_one_holder_until_it_expires_or_is_given_up(db):
    leases, ttl = db.job_schedule, timedelta(seconds=60)
    assert leases.acquire_lease("scheduler", "a", ttl, NOW)
    assert not leases.acquire_lease("scheduler", "b", ttl, NOW + timedelta(seconds=30))
    assert leases.acquire_lease("scheduler", "a", ttl, NOW + timedelta(seconds=30))  # renewed
    assert not leases.acquire_lease("scheduler", "b", ttl, NOW + timedelta(seconds=89))
    assert leases.acquire_lease("scheduler", "b", ttl, NOW + timedelta(seconds=91))
    assert leases.lease_holder("scheduler", NOW + timedelta(seconds=91)) == "b"
    assert not leases.release_lease("scheduler", "a")  # not a's any more
    assert leases.release_lease("scheduler", "b")
    assert leases.lease_holder("scheduler", NOW + timedelta(seconds=92)) is None
    assert leases.acquire_lease("scheduler", "a", ttl, NOW + timedelta(seconds=92))


def test_a_slot_is_taken_once_and_not_on_a_changed_rule(db, make_project):
    project = make_project()
    schedule = RetrainingSchedule(project_id=project.id, cron="0 3 * * *")
    schedule.reset_slots(NOW - timedelta(days=2))
    db.retraining_schedules.add(schedule)
    read_by_a = db.retraining_schedules.get(schedule.id)
    read_by_b = db.retraining_schedules.get(schedule.id)
    slot = read_by_a.due_slot(NOW)
    assert slot == datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    assert db.retraining_schedules.mark_fired(read_by_a, slot, NOW)
    assert not db.retraining_schedules.mark_fired(read_by_b, slot, NOW)  # b read it before
    stored = db.retraining_schedules.get(schedule.id)
    assert stored.last_slot == slot and stored.due_slot(NOW) is None
    assert stored.next_run_at == datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    assert [s.id for s in db.retraining_schedules.list_enabled()] == [schedule.id]
    # a schedule changed meanwhile (another zone) does not fire on its old rule
    stale = db.retraining_schedules.get(schedule.id)
    stored.timezone = "Asia/Tokyo"
    db.retraining_schedules.save(stored)
    assert not db.retraining_schedules.mark_fired(stale, slot + timedelta(days=1),
                                                  NOW + timedelta(days=1))
    assert db.retraining_schedules.delete_for_project(project.id) == 1


def test_a_challenger_is_decided_once(db, make_project):
    project = make_project()
    db.model_versions.add(ModelVersion(project_id=project.id, version=2, execution_id="e",
                                       algorithm="lr", challenge={"status": "pending"}))
    db.model_versions.add(ModelVersion(project_id=project.id, version=1, execution_id="e",
                                       algorithm="lr"))
    assert [v.version for v in db.model_versions.list_challengers(project.id)] == [2]
    assert db.model_versions.set_challenge(project.id, 2, {"status": "approved"},
                                           expected_status="pending")
    assert not db.model_versions.set_challenge(project.id, 2, {"status": "rejected"},
                                               expected_status="pending")
    assert db.model_versions.get(project.id, 2).challenge_status == "approved"
    assert db.model_versions.list_challengers(project.id, "pending") == []
