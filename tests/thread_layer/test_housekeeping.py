"""Housekeeping: the retention it applies by default and when configured, one process per turn,
and its thread."""

from __future__ import annotations

from datetime import timedelta

import pytest

from entity.base import to_iso, utcnow
from entity.database import Database
from entity.log_record import LogRecord
from entity.security import AuditEvent, hash_secret
from tests.conftest import wait_until
from thread_layer.housekeeping import Housekeeper, Retention, apply_retention

DAY = timedelta(days=1)


@pytest.fixture
def db(tmp_path):
    database = Database.from_url(f"sqlite:///{tmp_path / 'trainyard.db'}")
    database.upgrade()
    database.ensure_indexes()
    yield database
    database.close()


def _age_everything(db, age: timedelta) -> dict:
    """One record of each kind, ``age`` old, and one fresh; returns the ids of the old ones."""
    then, now = utcnow() - age, utcnow()
    for when in (then, now):
        db.login_failures.collection.insert({"_id": f"f{when:%s}", "key": "account:a",
                                             "time": to_iso(when)})
        db.logs.add(LogRecord("e1", "p1", 1 if when is then else 2, "INFO", "training", "x",
                              time=when))
        db.audit.add(AuditEvent("login", None, "a@example.com", time=when))
    old, fresh = db.sessions.open("u1"), db.sessions.open("u1")
    db.sessions.collection.update_one({"_id": hash_secret(old)}, {"last_seen_at": to_iso(then)})
    return {"old_session": old, "fresh_session": fresh}


def _counts(db) -> dict:
    return {"login_failures": db.login_failures.collection.count(),
            "sessions": db.sessions.collection.count(), "logs": db.logs.collection.count(),
            "audit": db.audit.collection.count()}


def test_by_default_login_failures_and_expired_sessions_go_and_logs_and_audit_stay(db):
    sessions = _age_everything(db, timedelta(days=400))
    deleted = apply_retention(db, Retention())
    assert deleted == {"login_failures": 1, "sessions": 1}
    assert _counts(db) == {"login_failures": 1, "sessions": 1, "logs": 2, "audit": 2}
    assert db.sessions.is_open(sessions["fresh_session"], "u1")


def test_a_session_is_kept_until_its_cookie_can_no_longer_be_used(db):
    old = hash_secret(_age_everything(db, timedelta(days=31, hours=12))["old_session"])
    apply_retention(db, Retention(sessions_days=1))
    assert db.sessions.collection.get(old)  # expired half a day ago: kept one day
    apply_retention(db, Retention(sessions_days=1), utcnow() + DAY)
    assert db.sessions.collection.get(old) is None


def test_configured_retention_deletes_logs_and_audit_and_zero_keeps_everything(db):
    _age_everything(db, timedelta(days=10))
    assert apply_retention(db, Retention(login_failures_days=0, sessions_days=0)) == {}
    assert _counts(db) == {"login_failures": 2, "sessions": 2, "logs": 2, "audit": 2}
    deleted = apply_retention(db, Retention(logs_days=7, audit_days=7))
    assert deleted == {"login_failures": 1, "sessions": 0, "logs": 1, "audit": 1}


def test_retention_is_read_from_the_settings():
    from app.config import load_config

    config = load_config({"RETENTION_LOGS_DAYS": "30", "RETENTION_AUDIT_DAYS": "365"},
                         {"SECRET_KEY": "k", "SECRETS_KEY": _fernet_key(),
                          "PERMANENT_SESSION_LIFETIME": timedelta(days=7)})
    assert Retention.from_config(config) == Retention(
        login_failures_days=1, sessions_days=1, logs_days=30, audit_days=365,
        session_lifetime=timedelta(days=7))


def test_a_bad_retention_setting_stops_start_up_by_name():
    from app.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="RETENTION_AUDIT_DAYS='-1' must be at least 0"):
        load_config({"RETENTION_AUDIT_DAYS": "-1"})


def test_one_process_per_turn_does_the_work(db):
    first, second = Housekeeper(db, Retention()), Housekeeper(db, Retention())
    _age_everything(db, timedelta(days=400))
    now = utcnow()
    assert first.run_once(now) == {"login_failures": 1, "sessions": 1}
    assert second.run_once(now + timedelta(minutes=5)) is None  # the turn was taken
    assert second.run_once(now + timedelta(hours=1)) == {"login_failures": 0, "sessions": 0}


def test_the_thread_applies_the_retention_and_stops(db):
    _age_everything(db, timedelta(days=400))
    keeper = Housekeeper(db, Retention(), every_seconds=0.1, first_delay=0)
    keeper.start()
    try:
        wait_until(lambda: db.login_failures.collection.count() == 1,
                   timeout=30, message="the housekeeper to prune")
    finally:
        keeper.shutdown()
    keeper._thread.join(timeout=30)
    assert not keeper._thread.is_alive()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def test_a_turn_sweeps_the_leftovers_of_uploads_that_never_finished(db, tmp_path):
    """Issue 21, item 8: the hidden file of an upload whose process died is swept once a day
    old, from the default storage and every storage connection, through the storage layer."""
    import os

    from entity.storage_connection import StorageConnection
    from integration.credentials import SecretBox
    from integration.storage_bridge import StorageResolver

    box = SecretBox([SecretBox.generate_key()])
    elsewhere = tmp_path / "elsewhere"
    db.storage_connections.add(StorageConnection(
        name="Disk", kind="local", settings={"directory": str(elsewhere)},
        secrets=box.encrypt({})))
    resolver = StorageResolver(f"file://{tmp_path / 'storage'}", db.storage_connections, box)
    orphans = [tmp_path / "storage" / "p" / "docs" / ".trainyard-upload-abc",
               elsewhere / "q" / ".trainyard-upload-def"]
    fresh = tmp_path / "storage" / ".trainyard-upload-now"
    for path in [*orphans, fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
    two_days_ago = fresh.stat().st_mtime - 2 * 86400
    for path in orphans:
        os.utime(path, (two_days_ago, two_days_ago))
    keeper = Housekeeper(db, Retention(), storages=resolver)
    assert keeper.run_once()["incomplete_uploads"] == 2
    assert not any(p.exists() for p in orphans) and fresh.exists()


def test_prediction_records_go_after_the_projects_own_days_or_the_platforms(db):
    from entity.prediction_record import new_prediction_id, new_record
    from entity.project import BatchSchema, ColumnSpec, Project

    schema = BatchSchema(".+", [ColumnSpec("x", "float"), ColumnSpec("y", "float")], "y")
    own = db.projects.add(Project(name="Own", slug="own", problem_type="regression",
                                  schema=schema, owner_id="u1",
                                  settings={"prediction_record_days": 5}))
    platform = db.projects.add(Project(name="Platform", slug="platform",
                                       problem_type="regression", schema=schema, owner_id="u1"))
    for project in (own, platform):
        db.prediction_records.add_many([
            new_record(new_prediction_id(), project.id, 1, "realtime",
                       to_iso(utcnow() - timedelta(days=age)), {"x": 1.0}, 2.0)
            for age in (1, 7, 40)])
    assert apply_retention(db, Retention())["prediction_records"] == 2
    assert db.prediction_records.count(platform.id) == 3  # the platform's default: forever
    assert db.prediction_records.count(own.id) == 1  # the project's own 5 days
    deleted = apply_retention(db, Retention(prediction_records_days=30))
    assert deleted["prediction_records"] == 1
    assert db.prediction_records.count(platform.id) == 2
    assert db.prediction_records.count(own.id) == 1
