"""What retention deletes, repository by repository, and the periodic-job claim, over every
document-store backend."""

from __future__ import annotations

from datetime import timedelta

from entity.base import from_iso, to_iso, utcnow
from entity.log_record import LogRecord
from entity.security import SESSION_SEEN_EVERY, AuditEvent, hash_secret


def test_login_failures_are_pruned_by_time(db):
    now = utcnow()
    db.login_failures.collection.insert({"_id": "old", "key": "account:a",
                                         "time": to_iso(now - timedelta(days=2))})
    db.login_failures.record("account:a")
    assert db.login_failures.prune(now - timedelta(days=1)) == 1
    assert db.login_failures.count_since("account:a", now - timedelta(days=30)) == 1


def test_a_session_records_its_use_at_most_once_per_period(db):
    sid = db.sessions.open("u1")
    doc_id = hash_secret(sid)
    opened = db.sessions.collection.get(doc_id)["last_seen_at"]
    assert db.sessions.is_open(sid, "u1")
    assert db.sessions.collection.get(doc_id)["last_seen_at"] == opened  # no write per view
    long_ago = to_iso(utcnow() - SESSION_SEEN_EVERY - timedelta(minutes=1))
    db.sessions.collection.update_one({"_id": doc_id}, {"last_seen_at": long_ago})
    assert db.sessions.is_open(sid, "u1")
    assert from_iso(db.sessions.collection.get(doc_id)["last_seen_at"]) > from_iso(long_ago)
    assert not db.sessions.is_open(sid, "someone else")


def test_idle_sessions_are_pruned_and_used_ones_kept(db):
    idle, used = db.sessions.open("u1"), db.sessions.open("u1")
    db.sessions.collection.update_one(
        {"_id": hash_secret(idle)}, {"last_seen_at": to_iso(utcnow() - timedelta(days=40))})
    assert db.sessions.prune_idle(utcnow() - timedelta(days=32)) == 1
    assert not db.sessions.is_open(idle, "u1")
    assert db.sessions.is_open(used, "u1")


def test_log_lines_are_pruned_by_time(db):
    now = utcnow()
    db.logs.add(LogRecord("e1", "p1", 1, "INFO", "training", "old",
                          time=now - timedelta(days=10)))
    db.logs.add(LogRecord("e1", "p1", 2, "INFO", "training", "new", time=now))
    assert db.logs.prune(now - timedelta(days=5)) == 1
    assert [r.message for r in db.logs.list("e1")] == ["new"]


def test_audit_events_are_pruned_by_time(db):
    now = utcnow()
    db.audit.add(AuditEvent("login", None, "a@example.com", time=now - timedelta(days=100)))
    db.audit.add(AuditEvent("login", None, "a@example.com", time=now))
    assert db.audit.prune(now - timedelta(days=90)) == 1
    events, total = db.audit.search()
    assert total == 1 and events[0].time == now


def test_a_periodic_job_turn_goes_to_one_caller_per_period(db):
    now, hour = utcnow(), timedelta(hours=1)
    assert db.job_schedule.claim("tidy", hour, now)
    assert not db.job_schedule.claim("tidy", hour, now)  # another process, same turn
    assert not db.job_schedule.claim("tidy", hour, now + timedelta(minutes=59))
    assert db.job_schedule.claim("other", hour, now)  # jobs do not share turns
    assert db.job_schedule.claim("tidy", hour, now + hour)
    assert not db.job_schedule.claim("tidy", hour, now + hour)
