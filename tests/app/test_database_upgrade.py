"""Upgrading a database: one written by the version before schema versions (no version record)
starts under today's code with its data intact, and a newer one refuses to start; on SQLite,
on a real PostgreSQL and a real MongoDB wire server (SecantusDB) the tests start, and on
mongomock."""

from __future__ import annotations

import secrets

import pytest
from werkzeug.security import generate_password_hash

from app import create_app
from entity.migrations import COLLECTION, SCHEMA_VERSION, VERSION_ID, SchemaVersionError
from entity.store import open_store
from tests import databases

PASSWORD = "correct horse battery"
EXECUTION = "20261120T100000-a1b2c3d4"


def baseline_documents(password_hash: str) -> dict[str, list[dict]]:
    """A database as the baseline schema wrote it: an admin who set up the platform, a project,
    a finished training with its log, an audit trail, a login session, a failed login. Frozen
    here as written then: never built from today's entities."""
    return {
        "settings": [{"_id": "first-run-setup"}],
        "users": [{"_id": "u1", "email": "ada@example.com", "name": "Ada Admin",
                   "password_hash": password_hash, "role": "admin", "active": True,
                   "created_at": "2026-11-20T08:00:00.000000+00:00", "last_login_at": None,
                   "session_version": 0}],
        "projects": [{
            "_id": "p1", "name": "Wafer faults", "slug": "wafer-faults",
            "problem_type": "classification",
            "schema": {"filename_pattern": "^wafer_\\d{8}_\\d{6}\\.csv$",
                       "columns": [{"name": "sensor_1", "type": "float"},
                                   {"name": "wafer", "type": "category"},
                                   {"name": "quality", "type": "category"}],
                       "target": "quality", "ignored": ["wafer"]},
            "owner_id": "u1", "description": "Find faulty wafers.", "recipients": [],
            "storage_connection_id": None, "members": {}, "metric": None,
            "time_budget_seconds": None, "algorithms": [], "active_execution_id": None,
            "active_version": None, "next_version": 1,
            "created_at": "2026-11-20T09:00:00.000000+00:00",
            "updated_at": "2026-11-20T09:00:00.000000+00:00"}],
        "executions": [{
            "_id": EXECUTION, "project_id": "p1", "kind": "train", "started_by": "u1",
            "status": "failed", "stage": "validating", "progress": 10,
            "error": "No batch file passed validation.", "result": {}, "options": {},
            "runner": {"host": "old-host", "pid": 4242, "instance": "0123abcd"},
            "created_at": "2026-11-20T10:00:00.000000+00:00",
            "started_at": "2026-11-20T10:00:01.000000+00:00",
            "finished_at": "2026-11-20T10:00:05.000000+00:00",
            "heartbeat_at": "2026-11-20T10:00:05.000000+00:00", "cancel_requested": False}],
        "log_records": [
            {"_id": f"{EXECUTION}:{seq:08d}", "execution_id": EXECUTION, "project_id": "p1",
             "seq": seq, "time": f"2026-11-20T10:00:0{seq}.000000+00:00", "level": level,
             "stage": "validating", "message": message}
            for seq, level, message in ((1, "INFO", "Validating 2 batch files"),
                                        (2, "ERROR", "No batch file passed validation."))],
        "audit_events": [{"_id": "20261120T090000-0000abcd", "action": "project.create",
                          "actor_id": "u1", "actor_email": "ada@example.com", "target": "p1",
                          "details": {"name": "Wafer faults"}, "success": True,
                          "address": "127.0.0.1", "time": "2026-11-20T09:00:00.000000+00:00"}],
        "login_sessions": [{"_id": "session-hash", "user_id": "u1",
                            "created_at": "2026-11-20T08:00:00.000000+00:00"}],
        "login_failures": [{"_id": "f1", "key": "address:127.0.0.1",
                            "time": "2026-11-20T07:59:00.000000+00:00"}],
    }


@pytest.fixture(params=["sqlite", databases.POSTGRESQL, "mongomock", databases.MONGODB])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'previous.db'}"
        return
    if request.param == "postgresql":  # a real server the tests start
        url, schema = databases.postgres().fresh_url()
        yield url
        databases.postgres().drop(schema)
        return
    if request.param == "mongodb":  # SecantusDB, a MongoDB wire server the tests start
        url = databases.mongodb_url(databases.mongodb().base_url,
                                    f"trainyard_upgrade_{secrets.token_hex(6)}")
    else:
        url = f"mongomock://localhost/trainyard_upgrade_{secrets.token_hex(6)}"
    yield url
    store = open_store(url)  # the in-memory server outlives the test: drop what it wrote
    store.client().drop_database(store.db_name)
    store.close()


def write_database(url: str, collections: dict[str, list[dict]]) -> None:
    store = open_store(url)
    for name, docs in collections.items():
        for doc in docs:
            store.collection(name).insert(doc)
    store.close()


@pytest.fixture
def upgraded_app(app_config, database_url):
    write_database(database_url,
                   baseline_documents(generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")))
    application = create_app({**app_config, "DATABASE_URL": database_url})
    yield application
    application.extensions["trainyard"].runner.shutdown()
    application.extensions["housekeeping"].shutdown()
    application.extensions["scheduler"].shutdown()
    application.extensions["trainyard"].db.close()


def test_a_database_of_the_previous_version_starts_with_its_data(upgraded_app):
    db = upgraded_app.extensions["trainyard"].db
    assert db.store.collection(COLLECTION).get(VERSION_ID)["version"] == SCHEMA_VERSION
    assert db.store.collection("login_sessions").get("session-hash")["last_seen_at"]

    client = upgraded_app.test_client()
    login = client.post("/api/v1/session", json={"email": "ada@example.com",
                                                 "password": PASSWORD})
    assert login.status_code == 200, login.get_json()
    assert login.get_json()["user"]["name"] == "Ada Admin"
    assert client.get("/setup").status_code in (302, 403, 404)  # set up long ago

    projects = client.get("/api/v1/projects").get_json()["items"]
    assert [(p["id"], p["name"], p["description"]) for p in projects] == [
        ("p1", "Wafer faults", "Find faulty wafers.")]
    executions = client.get("/api/v1/projects/p1/executions").get_json()["items"]
    assert [(e["id"], e["status"], e["error"]) for e in executions] == [
        (EXECUTION, "failed", "No batch file passed validation.")]
    logs = client.get(f"/api/v1/projects/p1/executions/{EXECUTION}/logs").get_json()
    assert [(r["seq"], r["message"]) for r in logs["items"]] == [
        (1, "Validating 2 batch files"), (2, "No batch file passed validation.")]
    audit = client.get("/api/v1/audit?action=project.create").get_json()["items"]
    assert [(a["target"], a["details"]) for a in audit] == [("p1", {"name": "Wafer faults"})]


def test_a_database_of_a_newer_version_refuses_to_start(app_config, database_url):
    write_database(database_url, {COLLECTION: [{"_id": VERSION_ID,
                                                "version": SCHEMA_VERSION + 1}]})
    with pytest.raises(SchemaVersionError) as refused:
        create_app({**app_config, "DATABASE_URL": database_url})
    assert f"schema version {SCHEMA_VERSION + 1}" in str(refused.value)
    assert f"up to {SCHEMA_VERSION}" in str(refused.value)


def test_the_server_command_names_both_versions_and_exits(app_config, tmp_path, monkeypatch,
                                                          capsys):
    from app.__main__ import main

    url = f"sqlite:///{tmp_path / 'newer.db'}"
    write_database(url, {COLLECTION: [{"_id": VERSION_ID, "version": SCHEMA_VERSION + 1}]})
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for name in ("DATA_DIR", "INSTANCE_DIR"):
        monkeypatch.setenv(name, app_config[name])
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["run"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("Trainyard cannot start: The database is at schema version "
                            f"{SCHEMA_VERSION + 1}, but this Trainyard knows versions up to "
                            f"{SCHEMA_VERSION}")


def test_storage_connections_stay_usable_by_the_owners_of_the_projects_on_them(
        app_config, database_url, tmp_path):
    """Connections became usable only by the users granted them: the upgrade grants each one
    to the owners of the projects on it (creator, and members with the owner role); the
    other members keep their access through the projects; a connection no project uses is
    left to admins."""
    documents = baseline_documents(generate_password_hash(PASSWORD, "pbkdf2:sha256:1000"))
    user = documents["users"][0]
    documents["users"] += [{**user, "_id": uid, "email": f"{uid}@example.com", "name": uid,
                            "role": "member"} for uid in ("u2", "u3", "u4", "u5")]
    connection = {"name": "Lake", "kind": "local", "settings": {"directory": str(tmp_path)},
                  "secrets": "", "created_at": "2026-11-20T08:30:00.000000+00:00",
                  "updated_at": "2026-11-20T08:30:00.000000+00:00"}
    documents["storage_connections"] = [{**connection, "_id": "c1"},
                                        {**connection, "_id": "c2", "name": "Unused"}]
    project = documents["projects"][0]
    documents["projects"].append({**project, "_id": "p2", "name": "On the lake",
                                  "slug": "on-the-lake", "owner_id": "u2",
                                  "storage_connection_id": "c1",
                                  "members": {"u3": "editor", "u5": "owner"}})
    write_database(database_url, documents)
    application = create_app({**app_config, "DATABASE_URL": database_url})
    try:
        db = application.extensions["trainyard"].db
        lake, unused = db.storage_connections.get("c1"), db.storage_connections.get("c2")
        assert lake.grants == [{"type": "user", "id": "u2"}, {"type": "user", "id": "u5"}]
        assert unused.grants == [] and not lake.available_to_all
        users = {uid: db.users.get(uid) for uid in ("u1", "u2", "u3", "u4", "u5")}
        assert [uid for uid, u in users.items() if lake.usable_by(u)] == ["u1", "u2", "u5"]
        assert [uid for uid, u in users.items() if unused.usable_by(u)] == ["u1"]
        assert db.projects.get("p2").storage_connection_id == "c1"
    finally:
        application.extensions["trainyard"].runner.shutdown()
        application.extensions["housekeeping"].shutdown()
        application.extensions["scheduler"].shutdown()
        db.close()
