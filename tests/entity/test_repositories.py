"""The repositories over every document-store backend, and the pure rules of the entities."""

from __future__ import annotations

import dataclasses

import pytest

from entity.base import utcnow
from entity.database import Database
from entity.execution import ACTIVE_STATUSES, FINAL_STATUSES, Execution
from entity.log_record import LogRecord
from entity.mail_message import MailMessage
from entity.model_version import ModelVersion
from entity.project import MAX_COLUMNS, BatchSchema, ColumnSpec, Project
from entity.user import User
from exception_layer import DuplicateKey, ValidationFailed

# -- database ------------------------------------------------------------------------------


def test_database_ensures_indexes_idempotently(db):
    db.ensure_indexes()  # a second time: nothing fails
    # every repository attribute is covered by ensure_indexes
    attributes = {id(v) for v in vars(db).values() if hasattr(v, "ensure_indexes")}
    assert attributes == {id(r) for r in db.repositories()}


def test_database_from_url(tmp_path):
    database = Database.from_url(f"sqlite:///{tmp_path / 'x.db'}")
    database.ensure_indexes()
    database.users.add(User(email="a@example.com", name="A", password_hash="h"))
    assert database.users.count() == 1
    database.close()


# -- users ---------------------------------------------------------------------------------

def test_user_round_trips(db, clock):
    user = db.users.add(User(email="ada@example.com", name="Ada", password_hash="h",
                             role="admin", active=False, created_at=clock(1),
                             last_login_at=clock(2)))
    assert db.users.get(user.id) == user
    assert db.users.get("nobody") is None


def test_user_email_is_unique_whatever_its_case(db, make_user):
    make_user(email="ada@example.com")
    with pytest.raises(DuplicateKey):
        make_user(email="ada@example.com")
    with pytest.raises(DuplicateKey):
        make_user(email="  ADA@Example.com ")
    assert db.users.count() == 1


def test_user_email_is_stored_lower_case_and_found_case_insensitively(db, make_user):
    user = make_user(email=" Grace.Hopper@Example.COM ")
    assert user.email == "grace.hopper@example.com"
    assert db.users.get(user.id).email == "grace.hopper@example.com"
    for typed in ("grace.hopper@example.com", "GRACE.HOPPER@EXAMPLE.COM",
                  "  Grace.Hopper@example.com\t"):
        assert db.users.get_by_email(typed).id == user.id
    assert db.users.get_by_email("grace@example.com") is None


def test_user_save_writes_changes(db, make_user, clock):
    user = make_user()
    user.name, user.role, user.last_login_at = "Renamed", "admin", clock(5)
    user.email = "New.Address@Example.com"
    db.users.save(user)
    stored = db.users.get(user.id)
    assert (stored.name, stored.role, stored.email) == ("Renamed", "admin",
                                                         "new.address@example.com")
    assert stored.last_login_at == clock(5)
    assert db.users.get_by_email("new.address@example.com").id == user.id


def test_user_save_to_a_taken_email_raises_duplicate_key(db, make_user):
    make_user(email="taken@example.com")
    other = make_user(email="other@example.com")
    other.email = "TAKEN@example.com"
    with pytest.raises(DuplicateKey):
        db.users.save(other)
    assert db.users.get(other.id).email == "other@example.com"


def test_users_list_by_email_and_count(db, make_user):
    for email in ("c@example.com", "a@example.com", "b@example.com"):
        make_user(email=email)
    assert [u.email for u in db.users.list()] == ["a@example.com", "b@example.com",
                                                  "c@example.com"]
    assert db.users.count() == 3


def test_user_public_view_hides_the_password_hash(make_user):
    public = make_user(password_hash="secret-hash").to_public()
    assert "password_hash" not in public
    assert "secret-hash" not in str(public)


# -- projects ------------------------------------------------------------------------------

def test_project_round_trips(db, make_project, make_user):
    member = make_user()
    project = make_project(description="Wafers", recipients=["ops@example.com"],
                           members={member.id: "editor"}, metric="f1",
                           time_budget_seconds=120, storage_connection_id="conn-1")
    assert db.projects.get(project.id) == project
    assert db.projects.get_by_slug(project.slug) == project
    assert db.projects.get("nope") is None
    assert db.projects.get_by_slug("nope") is None


def test_project_slug_is_unique(make_project):
    make_project(slug="wafer")
    with pytest.raises(DuplicateKey):
        make_project(slug="wafer")


def test_projects_list_by_name_and_delete(db, make_project):
    b = make_project(name="Beta")
    a = make_project(name="Alpha")
    assert [p.id for p in db.projects.list()] == [a.id, b.id]
    db.projects.delete(a.id)
    assert [p.id for p in db.projects.list()] == [b.id]
    db.projects.delete("missing")  # no error


def test_project_save_does_not_clobber_the_claim_or_the_version_counters(db, make_project):
    project = make_project()
    stale = db.projects.get(project.id)
    assert db.projects.claim(project.id, "exec-1")
    db.projects.set_versions(project.id, next_version=4, active_version=3)
    before = stale.updated_at
    stale.description = "edited while an execution ran"
    db.projects.save(stale)  # stale copy: active_execution_id None, next_version 1
    stored = db.projects.get(project.id)
    assert stored.description == "edited while an execution ran"
    assert stored.active_execution_id == "exec-1"
    assert (stored.next_version, stored.active_version) == (4, 3)
    assert stored.updated_at > before


def test_project_slug_change_to_a_taken_slug_raises_duplicate_key(db, make_project):
    make_project(slug="one")
    two = make_project(slug="two")
    two.slug = "one"
    with pytest.raises(DuplicateKey):
        db.projects.save(two)
    assert db.projects.get(two.id).slug == "two"


def test_claim_and_release(db, make_project):
    project = make_project()
    assert db.projects.claim(project.id, "e1") is True
    assert db.projects.claim(project.id, "e2") is False
    assert db.projects.claim(project.id, "e1") is False
    assert db.projects.release(project.id, "e2") is False
    assert db.projects.get(project.id).active_execution_id == "e1"
    assert db.projects.release(project.id, "e1") is True
    assert db.projects.get(project.id).active_execution_id is None
    assert db.projects.release(project.id, "e1") is False
    assert db.projects.claim(project.id, "e2") is True
    assert db.projects.claim("missing", "e3") is False


def test_set_versions(db, make_project):
    project = make_project()
    db.projects.set_versions(project.id, next_version=2)
    assert (db.projects.get(project.id).next_version,
            db.projects.get(project.id).active_version) == (2, None)
    db.projects.set_versions(project.id, active_version=1)
    assert (db.projects.get(project.id).next_version,
            db.projects.get(project.id).active_version) == (2, 1)
    db.projects.set_versions(project.id)  # nothing to change
    db.projects.set_versions(project.id, next_version=3, active_version=False)
    assert db.projects.get(project.id).active_version == 1
    db.projects.set_versions(project.id, active_version=None)
    stored = db.projects.get(project.id)
    assert (stored.next_version, stored.active_version) == (3, None)


@dataclasses.dataclass
class FakeUser:
    id: str
    is_admin: bool = False
    is_authenticated: bool = True


@pytest.mark.parametrize(("user", "expected"), [
    (None, {"viewer": False, "editor": False, "owner": False}),
    (FakeUser("owner-id", is_authenticated=False),
     {"viewer": False, "editor": False, "owner": False}),
    (FakeUser("stranger"), {"viewer": False, "editor": False, "owner": False}),
    (FakeUser("stranger", is_admin=True), {"viewer": True, "editor": True, "owner": True}),
    (FakeUser("owner-id"), {"viewer": True, "editor": True, "owner": True}),
    (FakeUser("ed"), {"viewer": True, "editor": True, "owner": False}),
    (FakeUser("vi"), {"viewer": True, "editor": False, "owner": False}),
    (FakeUser("co-owner"), {"viewer": True, "editor": True, "owner": True}),
    (FakeUser("corrupt"), {"viewer": False, "editor": False, "owner": False}),
])
def test_project_has_role(make_schema, user, expected):
    project = Project(name="P", slug="p", problem_type="regression", schema=make_schema(),
                      owner_id="owner-id",
                      members={"ed": "editor", "vi": "viewer", "co-owner": "owner",
                               "corrupt": "superuser"})
    assert {needed: project.has_role(user, needed) for needed in expected} == expected


def test_project_has_role_refuses_an_unknown_needed_role(make_schema):
    project = Project(name="P", slug="p", problem_type="regression", schema=make_schema(),
                      owner_id="o")
    with pytest.raises(ValueError):
        project.has_role(FakeUser("o"), "god")


def test_project_selection_metric(make_schema):
    project = Project(name="P", slug="p", problem_type="regression", schema=make_schema(),
                      owner_id="o")
    assert project.selection_metric == "rmse"
    project.metric = "r2"
    assert project.selection_metric == "r2"


# -- batch schema --------------------------------------------------------------------------

def _errors(schema: BatchSchema) -> dict:
    with pytest.raises(ValidationFailed) as caught:
        schema.validate()
    assert caught.value.status == 422
    assert caught.value.to_dict()["details"] == caught.value.details
    return caught.value.details


def test_valid_schema_validates_to_itself(make_schema):
    schema = make_schema()
    assert schema.validate() is schema
    assert [c.name for c in schema.feature_columns] == ["sensor_1", "sensor_2"]


@pytest.mark.parametrize(("overrides", "field", "fragment"), [
    ({"filename_pattern": ""}, "filename_pattern", "is required"),
    ({"filename_pattern": "wafer_(\\d+"}, "filename_pattern", "Not a valid regular expression"),
    ({"columns": [ColumnSpec("a", "float"), ColumnSpec(" ", "float")], "target": "a",
      "ignored": []}, "columns", "needs a name"),
    ({"columns": [ColumnSpec("a", "float"), ColumnSpec("b\tc", "float")], "target": "a",
      "ignored": []}, "columns", "control characters"),
    ({"columns": [ColumnSpec("a", "float"), ColumnSpec("b", "float"), ColumnSpec("a", "float"),
                  ColumnSpec("c", "float"), ColumnSpec("b", "float")], "target": "c",
      "ignored": []}, "columns", "repeated: a, b."),
    ({"columns": [ColumnSpec("a", "text"), ColumnSpec("y", "float")], "target": "y",
      "ignored": []}, "columns", "Unknown column types: a (text)"),
    ({"target": None}, "target", "Choose the target"),
    ({"target": "colour"}, "target", "'colour' is not one of the columns"),
    ({"ignored": ["wafer", "quality"]}, "target", "cannot also be ignored"),
    ({"ignored": ["wafer", "nope", "gone"]}, "ignored", "not in the schema: nope, gone."),
    ({"ignored": ["wafer", "sensor_1", "sensor_2"]}, "ignored", "besides the target"),
])
def test_schema_validation_names_the_wrong_field(make_schema, overrides, field, fragment):
    details = _errors(make_schema(**overrides))
    assert list(details) == [field]
    assert fragment in details[field]


def test_schema_without_columns(make_schema):
    details = _errors(make_schema(columns=[], target="y", ignored=[]))
    assert "at least one column" in details["columns"]
    assert "not one of the columns" in details["target"]


def test_schema_with_too_many_columns(make_schema):
    columns = [ColumnSpec(f"c{i}", "float") for i in range(MAX_COLUMNS + 1)]
    details = _errors(make_schema(columns=columns, target="c0", ignored=[]))
    assert str(MAX_COLUMNS) in details["columns"]


def test_schema_validation_reports_every_wrong_field_at_once(make_schema):
    details = _errors(make_schema(filename_pattern="[", target="missing", ignored=["ghost"]))
    assert set(details) == {"filename_pattern", "target", "ignored"}


def test_schema_from_dict_round_trips_and_normalises(make_schema):
    schema = make_schema()
    assert BatchSchema.from_dict(schema.to_dict()) == schema
    built = BatchSchema.from_dict({"filename_pattern": "x", "columns": [
        {"name": "  a "}, {"name": "y", "type": "float"}], "target": "", "ignored": None})
    assert built.columns == [ColumnSpec("a", "category"), ColumnSpec("y", "float")]
    assert built.target is None and built.ignored == []


@pytest.mark.parametrize(("data", "field"), [
    ({"columns": "a,b"}, "columns"),
    ({"columns": [{"type": "float"}]}, "columns"),
    ({"columns": [{"name": 3}]}, "columns"),
    ({"columns": [{"name": "a", "type": 1}]}, "columns"),
    ({"columns": ["a"]}, "columns"),
    ({"ignored": "a"}, "ignored"),
    ({"ignored": ["a", 2]}, "ignored"),
    ({"target": 5}, "target"),
    ({"target": ["y"]}, "target"),
    ({"filename_pattern": 12}, "filename_pattern"),
])
def test_schema_from_dict_names_the_wrong_field(data, field):
    with pytest.raises(ValidationFailed) as caught:
        BatchSchema.from_dict(data)
    assert list(caught.value.details) == [field]


@pytest.mark.parametrize("data", [None, [], "schema", 3])
def test_schema_from_dict_refuses_a_non_object(data):
    with pytest.raises(ValidationFailed, match="must be an object"):
        BatchSchema.from_dict(data)


# -- executions ----------------------------------------------------------------------------

def test_execution_round_trips(db, clock):
    execution = db.executions.add(Execution(
        project_id="p", kind="train", started_by="u", options={"budget": 30},
        runner={"host": "h", "pid": 1}, created_at=clock(0), started_at=clock(1),
        heartbeat_at=clock(2)))
    assert db.executions.get(execution.id) == execution
    assert db.executions.get("nope") is None


def test_execution_update_converts_datetimes(db, clock):
    execution = db.executions.add(Execution(project_id="p", kind="train", started_by=None))
    db.executions.update(execution.id, status="running", stage="training", progress=40,
                         started_at=clock(3), heartbeat_at=clock(4))
    stored = db.executions.get(execution.id)
    assert (stored.status, stored.stage, stored.progress) == ("running", "training", 40)
    assert (stored.started_at, stored.heartbeat_at) == (clock(3), clock(4))


@pytest.mark.parametrize("start", ACTIVE_STATUSES)
def test_finish_from_an_active_status(db, start):
    execution = db.executions.add(Execution(project_id="p", kind="train", started_by=None,
                                            status=start))
    assert db.executions.finish(execution.id, "succeeded", result={"version": 2}) is True
    stored = db.executions.get(execution.id)
    assert (stored.status, stored.stage, stored.progress) == ("succeeded", "done", 100)
    assert stored.result == {"version": 2} and stored.error is None
    assert stored.finished_at is not None and stored.finished_at <= utcnow()


def test_finish_with_an_error(db):
    execution = db.executions.add(Execution(project_id="p", kind="predict", started_by=None,
                                            status="running", stage="loading", progress=10))
    assert db.executions.finish(execution.id, "failed", error="Bad file") is True
    stored = db.executions.get(execution.id)
    assert (stored.status, stored.stage, stored.progress, stored.error) == (
        "failed", "loading", 10, "Bad file")


@pytest.mark.parametrize("final", FINAL_STATUSES)
def test_finish_only_from_an_active_status(db, final):
    execution = db.executions.add(Execution(project_id="p", kind="train", started_by=None,
                                            status=final, error="first"))
    before = db.executions.get(execution.id)
    assert db.executions.finish(execution.id, "succeeded") is False
    assert db.executions.finish(execution.id, "failed", error="second") is False
    assert db.executions.get(execution.id) == before
    assert db.executions.finish("missing", "failed") is False


def test_finish_twice_keeps_the_first_outcome(db):
    execution = db.executions.add(Execution(project_id="p", kind="train", started_by=None))
    assert db.executions.finish(execution.id, "cancelled")
    assert not db.executions.finish(execution.id, "succeeded")
    assert db.executions.get(execution.id).status == "cancelled"


def test_list_for_project_newest_first_with_paging(db, clock):
    made = [db.executions.add(Execution(project_id="p", kind="train", started_by=None,
                                        created_at=clock(i)))
            for i in (3, 0, 4, 1, 2)]
    db.executions.add(Execution(project_id="other", kind="train", started_by=None,
                                created_at=clock(9)))
    newest_first = [e.id for e in sorted(made, key=lambda e: e.created_at, reverse=True)]
    assert [e.id for e in db.executions.list_for_project("p")] == newest_first
    assert [e.id for e in db.executions.list_for_project("p", limit=2)] == newest_first[:2]
    assert [e.id for e in db.executions.list_for_project("p", skip=2, limit=2)] == \
        newest_first[2:4]
    assert db.executions.count_for_project("p") == 5
    assert db.executions.list_for_project("none") == []


def test_list_active(db):
    by_status = {status: db.executions.add(Execution(project_id=f"p-{status}", kind="train",
                                                     started_by=None, status=status))
                 for status in ACTIVE_STATUSES + FINAL_STATUSES}
    active = {e.id for e in db.executions.list_active()}
    assert active == {by_status[s].id for s in ACTIVE_STATUSES}


def test_delete_executions_of_a_project(db):
    for _ in range(3):
        db.executions.add(Execution(project_id="p", kind="train", started_by=None))
    kept = db.executions.add(Execution(project_id="q", kind="train", started_by=None))
    assert db.executions.delete_for_project("p") == 3
    assert db.executions.count_for_project("p") == 0
    assert db.executions.get(kept.id) is not None


# -- log records ---------------------------------------------------------------------------

def _line(seq: int, execution_id: str = "e1", project_id: str = "p") -> LogRecord:
    return LogRecord(execution_id=execution_id, project_id=project_id, seq=seq, level="INFO",
                     stage="training", message=f"line {seq} ✓")


def test_logs_list_after_seq_in_order(db):
    for seq in (2, 10, 1, 9, 3):
        db.logs.add(_line(seq))
    db.logs.add(_line(4, execution_id="e2"))
    assert [r.seq for r in db.logs.list("e1")] == [1, 2, 3, 9, 10]
    assert [r.seq for r in db.logs.list("e1", after_seq=2)] == [3, 9, 10]
    assert [r.seq for r in db.logs.list("e1", after_seq=3, limit=1)] == [9]
    assert db.logs.list("e1", after_seq=10) == []
    assert db.logs.list("e1")[0].message == "line 1 ✓"


def test_log_record_round_trips(db, clock):
    record = _line(7)
    record.time = clock(7)
    db.logs.add(record)
    assert db.logs.list("e1") == [record]


def test_logs_last_seq(db):
    assert db.logs.last_seq("e1") == 0
    for seq in (1, 12, 3):
        db.logs.add(_line(seq))
    db.logs.add(_line(99, execution_id="e2"))
    assert db.logs.last_seq("e1") == 12


def test_logs_seq_is_unique_per_execution(db):
    db.logs.add(_line(1))
    with pytest.raises(DuplicateKey):
        db.logs.add(_line(1))
    db.logs.add(_line(1, execution_id="e2"))
    # the unique index holds even for a document that does not use the usual id
    raw = _line(2).to_document() | {"_id": "other-id"}
    db.logs.collection.insert(raw)
    with pytest.raises(DuplicateKey):
        db.logs.collection.insert(_line(2).to_document() | {"_id": "third-id"})


def test_logs_delete_for_project(db):
    db.logs.add(_line(1))
    db.logs.add(_line(2))
    db.logs.add(_line(1, execution_id="x", project_id="q"))
    assert db.logs.delete_for_project("p") == 2
    assert db.logs.list("e1") == [] and len(db.logs.list("x")) == 1


# -- model versions ------------------------------------------------------------------------

def _version(n: int, project_id: str = "p") -> ModelVersion:
    return ModelVersion(project_id=project_id, version=n, execution_id=f"e{n}",
                        algorithm="hist_gradient_boosting",
                        metrics={"f1": 0.9, "per_class": {"a": [1, 2]}},
                        leaderboard=[{"algorithm": "rf", "f1": 0.8}],
                        artifacts={"model.joblib": "ab" * 32}, plots=["roc.png"],
                        problem_type="classification")


def test_model_versions(db, clock):
    for n in (1, 10, 2, 9):
        version = _version(n)
        version.created_at = clock(n)
        db.model_versions.add(version)
    db.model_versions.add(_version(3, project_id="q"))
    assert [v.version for v in db.model_versions.list_for_project("p")] == [10, 9, 2, 1]
    got = db.model_versions.get("p", 9)
    expected = _version(9)
    expected.created_at = clock(9)
    assert got == expected and got.folder == "models/v9/"
    assert db.model_versions.get("p", 3) is None


def test_model_version_number_is_unique_per_project(db):
    db.model_versions.add(_version(1))
    with pytest.raises(DuplicateKey):
        db.model_versions.add(_version(1))
    db.model_versions.add(_version(1, project_id="q"))


def test_prediction_usage_documents_are_per_process_and_gone_once_deleted(db):
    counts = {"requests": 3, "rows": 7, "errors": 1, "latency_hours": {"2026-11-23T09": {"5": 2}}}
    assert db.prediction_usage.save("p", 1, "a", counts, first=True)
    assert db.prediction_usage.save("p", 1, "b", {**counts, "requests": 1}, first=True)
    assert db.prediction_usage.save("p", 2, "a", counts, first=True)
    assert db.prediction_usage.save("q", 1, "a", counts, first=True)
    # a later write replaces the process's counts; a repeated first write does too
    assert db.prediction_usage.save("p", 1, "a", {**counts, "requests": 4}, first=False)
    assert db.prediction_usage.save("p", 2, "a", {**counts, "requests": 5}, first=True)
    docs = {(d["version"], d["instance"]): d for d in db.prediction_usage.for_project("p")}
    assert sorted(docs) == [(1, "a"), (1, "b"), (2, "a")]
    assert docs[1, "a"]["requests"] == 4 and docs[1, "b"]["requests"] == 1
    assert docs[2, "a"]["requests"] == 5 and docs[2, "a"]["latency_hours"] == {
        "2026-11-23T09": {"5": 2}}

    assert db.prediction_usage.delete("p", 1) == 2
    # the deleted version's counts do not come back from a process that wrote them before
    assert db.prediction_usage.save("p", 1, "a", counts, first=False) is False
    assert [d["version"] for d in db.prediction_usage.for_project("p")] == [2]
    assert db.prediction_usage.delete("p") == 1
    assert db.prediction_usage.for_project("p") == []
    assert len(db.prediction_usage.for_project("q")) == 1


def test_model_version_delete(db):
    db.model_versions.add(_version(1))
    db.model_versions.add(_version(2))
    db.model_versions.add(_version(1, project_id="q"))
    assert db.model_versions.delete("p", 1) is True
    assert db.model_versions.delete("p", 1) is False
    assert db.model_versions.delete_for_project("p") == 1
    assert [v.project_id for v in db.model_versions.list_for_project("q")] == ["q"]


# -- mail ----------------------------------------------------------------------------------

def test_mail_outbox_newest_first_with_paging(db, clock):
    for n in (2, 0, 3, 1):
        db.mail.add(MailMessage(subject=f"s{n}", recipients=[f"r{n}@example.com", "x@y.z"],
                                body_text="t", body_html="<p>t</p>", created_at=clock(n)))
    assert [m.subject for m in db.mail.list()] == ["s3", "s2", "s1", "s0"]
    assert [m.subject for m in db.mail.list(skip=1, limit=2)] == ["s2", "s1"]
    assert db.mail.count() == 4


def test_mail_message_round_trips(db, clock):
    message = MailMessage(subject="Training failed ✗", recipients=["a@example.com"],
                          body_text="plain", body_html="<b>html</b>", status="failed",
                          error="SMTP refused", created_at=clock(1))
    db.mail.add(message)
    assert db.mail.list() == [message]
