"""The document-store contract (``entity/store.py``), held against every backend.

Each test runs on SQLite, on a real PostgreSQL server, on a real MongoDB wire server and on
mongomock (see ``conftest.py``). The MongoDB server is SecantusDB, started by the tests, unless
``TEST_MONGODB_URI`` names a real ``mongod``. SecantusDB is single-node only: it lacks replica
sets, sharding and transactions across nodes, none of which the store uses, and text indexes
(the search tests pass there through ``MongoStore``'s word matching, so ``$text`` itself runs
only with ``TEST_MONGODB_URI``); every test here passes on it, so MongoDB's own atomicity
(single-document updates raced by threads and by processes, unique indexes) is exercised over
the wire.

mongomock stays for what no server here shows: the store's serialising ``MongoStore.write_lock``
(the concurrency tests show that mongomock, whose updates are not atomic, honours the contract
through it), and the ``mongomock://`` URL the app tests use to start an app on a MongoDB store in
one process.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from claim_race import claim_in_own_process, write_after_fork

from entity.base import to_iso
from entity.database import Database
from entity.project import BatchSchema, ColumnSpec, Project
from entity.sqlite_store import SqliteStore
from entity.store import open_store
from exception_layer import DuplicateKey
from tests import databases

PEOPLE = [
    {"_id": "p1", "name": "ada", "age": 36, "team": "red", "admin": True},
    {"_id": "p2", "name": "bob", "age": 25, "team": "blue", "admin": False},
    {"_id": "p3", "name": "cyd", "age": 41, "team": "red", "admin": False},
    {"_id": "p4", "name": "dee", "age": 25, "team": None, "admin": False},
    {"_id": "p5", "name": "eve", "age": 30, "admin": True},  # no team at all
]


@pytest.fixture
def people(store):
    coll = store.collection("people")
    for doc in PEOPLE:
        coll.insert(dict(doc))
    return coll


def ids(docs) -> list[str]:
    return [d["_id"] for d in docs]


# -- insert / get ------------------------------------------------------------------------

def test_insert_then_get_round_trips(store):
    coll = store.collection("things")
    coll.insert({"_id": "a", "n": 1, "s": "text", "f": 1.5, "none": None})
    assert coll.get("a") == {"_id": "a", "n": 1, "s": "text", "f": 1.5, "none": None}
    assert coll.get("missing") is None


def test_insert_does_not_keep_a_reference_to_the_callers_dict(store):
    coll = store.collection("things")
    doc = {"_id": "a", "tags": ["x"]}
    coll.insert(doc)
    doc["tags"].append("y")
    found = coll.get("a")
    found["tags"].append("z")
    assert coll.get("a") == {"_id": "a", "tags": ["x"]}


def test_insert_of_a_taken_id_raises_duplicate_key(store):
    coll = store.collection("things")
    coll.insert({"_id": "a", "v": 1})
    with pytest.raises(DuplicateKey):
        coll.insert({"_id": "a", "v": 2})
    assert coll.get("a") == {"_id": "a", "v": 1}
    assert coll.count() == 1


def test_insert_many_inserts_every_document_and_refuses_a_taken_id(store):
    coll = store.collection("things")
    coll.insert_many([{"_id": f"d{i}", "n": i, "tags": ["x"]} for i in range(50)])
    coll.insert_many([])
    assert coll.count() == 50
    assert coll.get("d7") == {"_id": "d7", "n": 7, "tags": ["x"]}
    with pytest.raises(DuplicateKey):
        coll.insert_many([{"_id": "new", "n": -1}, {"_id": "d3", "n": -3}])
    assert coll.get("d3")["n"] == 3  # the taken one is never overwritten


def test_unique_index_refuses_a_second_document_with_the_same_value(store):
    coll = store.collection("accounts")
    coll.ensure_index(["email"], unique=True)
    coll.ensure_index(["email"], unique=True)  # idempotent
    coll.insert({"_id": "1", "email": "a@example.com"})
    with pytest.raises(DuplicateKey):
        coll.insert({"_id": "2", "email": "a@example.com"})
    coll.insert({"_id": "3", "email": "b@example.com"})
    assert sorted(ids(coll.find())) == ["1", "3"]


def test_compound_unique_index_holds_on_the_pair_only(store):
    coll = store.collection("lines")
    coll.ensure_index(["run", "seq"], unique=True)
    coll.insert({"_id": "a", "run": "r1", "seq": 1})
    coll.insert({"_id": "b", "run": "r1", "seq": 2})
    coll.insert({"_id": "c", "run": "r2", "seq": 1})
    with pytest.raises(DuplicateKey):
        coll.insert({"_id": "d", "run": "r1", "seq": 1})
    assert coll.count() == 3


def test_update_that_would_break_a_unique_index_raises_duplicate_key(store):
    coll = store.collection("accounts")
    coll.ensure_index(["email"], unique=True)
    coll.insert({"_id": "1", "email": "a@example.com"})
    coll.insert({"_id": "2", "email": "b@example.com"})
    with pytest.raises(DuplicateKey):
        coll.update_one({"_id": "2"}, {"email": "a@example.com"})
    with pytest.raises(DuplicateKey):
        coll.update_many({}, {"email": "c@example.com"})
    assert coll.get("2")["email"] == "b@example.com"
    # the store is still usable afterwards (no transaction left open)
    assert coll.update_one({"_id": "2"}, {"email": "d@example.com"})
    assert coll.get("2")["email"] == "d@example.com"


def test_collections_are_separate(store):
    store.collection("one").insert({"_id": "x", "v": 1})
    store.collection("two").insert({"_id": "x", "v": 2})
    assert store.collection("one").get("x")["v"] == 1
    assert store.collection("two").get("x")["v"] == 2


# -- find ----------------------------------------------------------------------------------

def test_find_without_filter_returns_everything(people):
    assert sorted(ids(people.find())) == ["p1", "p2", "p3", "p4", "p5"]
    assert sorted(ids(people.find({}))) == ["p1", "p2", "p3", "p4", "p5"]


def test_find_by_equality_on_one_and_several_fields(people):
    assert sorted(ids(people.find({"team": "red"}))) == ["p1", "p3"]
    assert ids(people.find({"team": "red", "age": 41})) == ["p3"]
    assert ids(people.find({"_id": "p2"})) == ["p2"]
    assert people.find({"team": "green"}) == []


def test_none_matches_a_null_and_a_missing_field(people):
    assert sorted(ids(people.find({"team": None}))) == ["p4", "p5"]
    assert sorted(ids(people.find({"nickname": None}))) == ["p1", "p2", "p3", "p4", "p5"]


def test_in_operator(people):
    assert sorted(ids(people.find({"team": {"$in": ["red", "blue"]}}))) == ["p1", "p2", "p3"]
    assert sorted(ids(people.find({"_id": {"$in": ["p2", "p5", "nope"]}}))) == ["p2", "p5"]
    assert sorted(ids(people.find({"age": {"$in": (25,)}}))) == ["p2", "p4"]
    assert people.find({"team": {"$in": []}}) == []


def test_in_with_none_matches_null_and_missing_fields(people):
    assert sorted(ids(people.find({"team": {"$in": [None, "blue"]}}))) == ["p2", "p4", "p5"]


def test_ne_operator_matches_missing_fields_too(people):
    assert sorted(ids(people.find({"team": {"$ne": "red"}}))) == ["p2", "p4", "p5"]
    assert sorted(ids(people.find({"team": {"$ne": None}}))) == ["p1", "p2", "p3"]


@pytest.mark.parametrize(("op", "value", "expected"), [
    ("$gt", 30, ["p1", "p3"]),
    ("$gte", 30, ["p1", "p3", "p5"]),
    ("$lt", 30, ["p2", "p4"]),
    ("$lte", 30, ["p2", "p4", "p5"]),
])
def test_range_operators_on_numbers(people, op, value, expected):
    assert sorted(ids(people.find({"age": {op: value}}))) == expected


def test_range_operators_combine_and_work_on_strings(people):
    assert sorted(ids(people.find({"age": {"$gt": 25, "$lte": 36}}))) == ["p1", "p5"]
    assert sorted(ids(people.find({"name": {"$gte": "bob", "$lt": "dee"}}))) == ["p2", "p3"]
    assert sorted(ids(people.find({"_id": {"$gt": "p3"}}))) == ["p4", "p5"]


def test_range_operators_never_match_null_or_missing(people):
    assert "p4" not in ids(people.find({"team": {"$gte": ""}}))
    assert "p5" not in ids(people.find({"team": {"$lt": "zzz"}}))


def test_booleans_match_and_round_trip_as_booleans(people):
    assert sorted(ids(people.find({"admin": True}))) == ["p1", "p5"]
    assert sorted(ids(people.find({"admin": False}))) == ["p2", "p3", "p4"]
    assert sorted(ids(people.find({"admin": {"$ne": True}}))) == ["p2", "p3", "p4"]
    assert people.get("p1")["admin"] is True
    assert people.get("p2")["admin"] is False


def test_find_one(people):
    assert people.find_one({"team": "blue"})["_id"] == "p2"
    assert people.find_one({"team": "green"}) is None
    assert people.find_one({"team": "red"}, sort=[("age", -1)])["_id"] == "p3"


# -- sort, skip, limit, count -------------------------------------------------------------

def test_sort_on_one_field_ascending_and_descending(people):
    assert ids(people.find(sort=[("name", 1)])) == ["p1", "p2", "p3", "p4", "p5"]
    assert ids(people.find(sort=[("name", -1)])) == ["p5", "p4", "p3", "p2", "p1"]
    assert ids(people.find({"admin": False}, sort=[("_id", -1)])) == ["p4", "p3", "p2"]


def test_sort_on_two_fields(people):
    assert ids(people.find(sort=[("age", 1), ("name", 1)])) == ["p2", "p4", "p5", "p1", "p3"]
    assert ids(people.find(sort=[("age", 1), ("name", -1)])) == ["p4", "p2", "p5", "p1", "p3"]
    # booleans sort false before true, as in MongoDB
    assert ids(people.find(sort=[("admin", -1), ("name", -1)])) == ["p5", "p1", "p4", "p3", "p2"]
    assert ids(people.find(sort=[("admin", 1), ("name", 1)])) == ["p2", "p3", "p4", "p1", "p5"]


def test_null_and_missing_fields_sort_first_ascending_and_last_descending(people):
    assert ids(people.find(sort=[("team", 1), ("name", 1)])) == ["p4", "p5", "p2", "p1", "p3"]
    assert ids(people.find(sort=[("team", -1), ("name", 1)])) == ["p1", "p3", "p2", "p4", "p5"]


def test_strings_sort_and_compare_byte_by_byte_whatever_the_databases_collation(store):
    """The test PostgreSQL database has an ICU collation, where "a" < "B" and punctuation is
    ignored; MongoDB and SQLite compare UTF-8 bytes, and so must every backend."""
    coll = store.collection("words")
    for n, word in enumerate(["a", "B", "ä", "_x", "Z", "a-b", "ab"]):
        coll.insert({"_id": f"w{n}", "word": word})
    words = [d["word"] for d in coll.find(sort=[("word", 1)])]
    assert words == ["B", "Z", "_x", "a", "a-b", "ab", "ä"]
    assert [d["word"] for d in coll.find(sort=[("word", -1)])] == list(reversed(words))
    assert sorted(d["word"] for d in coll.find({"word": {"$gt": "Z", "$lt": "a"}})) == ["_x"]
    assert coll.count({"word": {"$gte": "a"}}) == 4


def test_skip_and_limit_page_through_a_sorted_result(people):
    by_name = [("name", 1)]
    assert ids(people.find(sort=by_name, limit=2)) == ["p1", "p2"]
    assert ids(people.find(sort=by_name, skip=2, limit=2)) == ["p3", "p4"]
    assert ids(people.find(sort=by_name, skip=4, limit=2)) == ["p5"]
    assert ids(people.find(sort=by_name, skip=3)) == ["p4", "p5"]
    assert ids(people.find(sort=by_name, limit=0)) == ["p1", "p2", "p3", "p4", "p5"]
    assert people.find(sort=by_name, skip=10) == []


def test_count(people):
    assert people.count() == 5
    assert people.count({}) == 5
    assert people.count({"team": "red"}) == 2
    assert people.count({"age": {"$lt": 30}}) == 2
    assert people.count({"team": "green"}) == 0


# -- updates and deletes -------------------------------------------------------------------

def test_update_one_sets_fields_and_keeps_the_others(people):
    assert people.update_one({"_id": "p2"}, {"team": "red", "level": 3}) is True
    assert people.get("p2") == {"_id": "p2", "name": "bob", "age": 25, "team": "red",
                                "admin": False, "level": 3}


def test_update_one_is_conditional(people):
    before = people.get("p1")
    assert people.update_one({"_id": "p1", "team": "blue"}, {"age": 99}) is False
    assert people.get("p1") == before
    assert people.update_one({"_id": "missing"}, {"age": 99}) is False
    assert people.count({"age": 99}) == 0


def test_update_one_on_a_null_condition_claims_once(people):
    assert people.update_one({"_id": "p4", "team": None}, {"team": "green"}) is True
    assert people.update_one({"_id": "p4", "team": None}, {"team": "other"}) is False
    assert people.get("p4")["team"] == "green"


def test_update_one_changes_only_one_of_many_matches(people):
    assert people.update_one({"team": "red"}, {"flag": 1}) is True
    assert people.count({"flag": 1}) == 1


def test_update_one_can_set_a_field_to_none(people):
    assert people.update_one({"_id": "p1"}, {"team": None})
    assert people.get("p1")["team"] is None
    assert "p1" in ids(people.find({"team": None}))


def test_update_many(people):
    assert people.update_many({"age": 25}, {"junior": True}) == 2
    assert sorted(ids(people.find({"junior": True}))) == ["p2", "p4"]
    assert people.update_many({"team": "green"}, {"junior": True}) == 0
    assert people.update_many({}, {"seen": True}) == 5


def test_delete_many(people):
    assert people.delete_many({"team": "red"}) == 2
    assert people.get("p1") is None and people.get("p3") is None
    assert people.count() == 3
    assert people.delete_many({"team": "red"}) == 0
    assert people.delete_many({"_id": "p2"}) == 1
    assert people.delete_many({}) == 2
    assert people.count() == 0


# -- values --------------------------------------------------------------------------------

NESTED = {
    "_id": "n",
    "metrics": {"f1": 0.91, "per_class": {"a": [1, 2.5, None], "b": {"deep": True}}},
    "leaderboard": [{"algo": "rf", "score": 0.8}, {"algo": "hgb", "score": 0.9}],
    "empty_list": [],
    "empty_dict": {},
    "text": "données ✓ \"quoted\" \\ back\nline",
    "big": 2 ** 53,
    "neg": -1.25e-7,
}


def test_nested_values_round_trip(store):
    coll = store.collection("nested")
    coll.insert(dict(NESTED))
    assert coll.get("n") == NESTED
    assert coll.find({"text": NESTED["text"]}) == [NESTED]
    coll.update_one({"_id": "n"}, {"metrics": {"rmse": [0.1, {"x": None}]}})
    assert coll.get("n")["metrics"] == {"rmse": [0.1, {"x": None}]}


def test_equality_on_a_dict_or_list_value(store):
    coll = store.collection("nested")
    coll.insert({"_id": "a", "opts": {"k": 1, "é": "ü"}, "tags": ["x", "y"]})
    coll.insert({"_id": "b", "opts": {"k": 2}, "tags": ["y"]})
    assert ids(coll.find({"opts": {"k": 1, "é": "ü"}})) == ["a"]
    assert ids(coll.find({"tags": ["x", "y"]})) == ["a"]
    assert sorted(ids(coll.find({"opts": {"$in": [{"k": 2}, {"k": 3}]}}))) == ["b"]
    assert ids(coll.find({"tags": {"$ne": ["y"]}})) == ["a"]


def test_scan_reads_only_the_fields_asked_in_batches(store):
    coll = store.collection("scanned")
    for i in range(23):
        coll.insert({"_id": f"d{i:02d}", "project": "a" if i % 3 else "b", "n": i,
                     "inputs": {"x": i * 1.5, "name with space": f"v{i}", 'q"uote': i,
                                "nested": {"deep": [i]}},
                     "probabilities": {"yes": 0.25, "no": 0.75} if i % 2 else None})
    batches = list(coll.scan({"project": "a"}, ["n", ("inputs", "x"),
                                                ("inputs", "name with space"),
                                                ("inputs", 'q"uote'), ("inputs", "nested"),
                                                "probabilities", ("inputs", "absent"),
                                                ("n", "not an object")], batch=4))
    assert [len(b) for b in batches] == [4, 4, 4, 3]
    rows = sorted((row for batch in batches for row in batch), key=lambda r: r[0])
    expected = [(i, i * 1.5, f"v{i}", i, {"deep": [i]},
                 {"yes": 0.25, "no": 0.75} if i % 2 else None, None, None)
                for i in range(23) if i % 3]
    assert rows == expected
    assert list(coll.scan({"project": "zzz"}, ["n"])) == []
    single = [row for batch in coll.scan({"project": "b"}, ["n"], batch=100) for row in batch]
    assert sorted(single) == [(i,) for i in range(0, 23, 3)]


def test_iso_date_strings_compare_and_sort_in_time_order(store):
    coll = store.collection("events")
    start = datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    # inserted out of order; one given in another time zone (stored as UTC)
    offsets = [5, 0, 3, 1, 4, 2]
    for i in offsets:
        when = start + timedelta(microseconds=1) * i + timedelta(seconds=i)
        if i == 3:
            when = when.astimezone(timezone(timedelta(hours=-5)))
        coll.insert({"_id": f"e{i}", "at": to_iso(when)})
    assert ids(coll.find(sort=[("at", 1)])) == [f"e{i}" for i in range(6)]
    assert ids(coll.find(sort=[("at", -1)])) == [f"e{i}" for i in reversed(range(6))]
    cut = to_iso(start + timedelta(seconds=2, microseconds=2))
    assert sorted(ids(coll.find({"at": {"$gte": cut}}))) == ["e2", "e3", "e4", "e5"]
    assert sorted(ids(coll.find({"at": {"$lt": cut}}))) == ["e0", "e1"]


# -- concurrency ---------------------------------------------------------------------------

def _project(owner_id: str = "owner") -> Project:
    schema = BatchSchema("^x$", [ColumnSpec("a", "float"), ColumnSpec("y", "category")], "y")
    return Project(name="Race", slug="race", problem_type="classification", schema=schema,
                   owner_id=owner_id)


def test_claim_raced_by_16_threads_has_exactly_one_winner(db):
    project = db.projects.add(_project())
    barrier = threading.Barrier(16)

    def contender(n: int) -> tuple[str, bool]:
        barrier.wait(timeout=30)
        return f"exec-{n}", db.projects.claim(project.id, f"exec-{n}")

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(contender, range(16)))
    winners = [execution for execution, won in results if won]
    assert len(winners) == 1
    assert db.projects.get(project.id).active_execution_id == winners[0]
    # once released, the project can be claimed again, by one contender only
    assert db.projects.release(project.id, winners[0])
    assert db.projects.claim(project.id, "next")
    assert not db.projects.claim(project.id, "after-next")


def test_inserts_of_the_same_id_raced_by_16_threads_have_exactly_one_winner(store):
    coll = store.collection("race")
    barrier = threading.Barrier(16)

    def contender(n: int) -> bool:
        barrier.wait(timeout=30)
        try:
            coll.insert({"_id": "only", "by": n})
        except DuplicateKey:
            return False
        return True

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(contender, range(16))) == 1
    assert coll.count() == 1


def test_update_many_racing_threads_lose_no_write(store):
    coll = store.collection("counters")
    for n in range(16):
        coll.insert({"_id": f"c{n}", "owner": None})
    barrier = threading.Barrier(8)

    def grab_all(n: int) -> int:
        barrier.wait(timeout=30)
        return sum(coll.update_one({"_id": f"c{i}", "owner": None}, {"owner": n})
                   for i in range(16))

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(grab_all, range(8))) == 16
    assert coll.count({"owner": None}) == 0


@pytest.mark.slow  # spawns 4 Python processes
@pytest.mark.parametrize("shared_url", databases.SHARED_BACKENDS, indirect=True)
def test_claim_raced_by_4_processes_on_one_database_has_exactly_one_winner(shared_url):
    database = Database.from_url(shared_url)
    database.ensure_indexes()
    project = database.projects.add(_project())
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    workers = [ctx.Process(target=claim_in_own_process,
                           args=(shared_url, project.id, f"proc-{n}", barrier, results))
               for n in range(4)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    winners = [execution for execution, won in outcomes if won]
    assert len(winners) == 1
    assert database.projects.get(project.id).active_execution_id == winners[0]
    database.close()


@pytest.mark.parametrize("shared_url", databases.SHARED_BACKENDS, indirect=True)
def test_a_store_used_across_a_fork_keeps_working_in_both_processes(shared_url):
    """A forked process (a pre-forking server's worker) opens connections of its own; the
    parent's stay usable, since the child never closes or frees them."""
    store = open_store(shared_url)
    store.collection("forked").insert({"_id": "parent-before"})
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=write_after_fork, args=(store, results))
    child.start()
    assert results.get(timeout=60) == 2
    child.join(timeout=60)
    assert child.exitcode == 0
    store.collection("forked").insert({"_id": "parent-after"})
    assert store.collection("forked").count() == 3
    store.close()


# -- SQLite addresses ----------------------------------------------------------------------

def test_sqlite_url_with_four_slashes_is_an_absolute_path(tmp_path):
    target = tmp_path / "abs" / "x.db"
    store = SqliteStore(f"sqlite:///{target}")
    assert store.path == str(target)
    store.collection("t").insert({"_id": "a"})
    assert target.is_file()
    store.close()


def test_sqlite_url_with_three_slashes_is_relative_to_the_working_directory(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///data/rel.db")
    assert store.path == os.path.join(str(tmp_path), "data", "rel.db")
    store.collection("t").insert({"_id": "a"})
    assert (tmp_path / "data" / "rel.db").is_file()
    store.close()


def test_sqlite_url_decodes_percent_escapes(tmp_path):
    store = SqliteStore(f"sqlite:///{tmp_path}/with%20space.db")
    assert store.path == str(tmp_path / "with space.db")


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite:///:memory:", "sqlite://"])
def test_sqlite_url_must_name_a_file(url):
    with pytest.raises(ValueError, match="must name a file"):
        open_store(url)


def test_unknown_database_url_is_refused():
    with pytest.raises(ValueError, match="sqlite:///, postgresql:// or mongodb://"):
        open_store("mysql://localhost/x")


def test_sqlite_store_reopens_its_connection_after_close(tmp_path):
    store = SqliteStore(f"sqlite:///{tmp_path / 'x.db'}")
    store.collection("t").insert({"_id": "a"})
    store.close()
    assert store.collection("t").get("a") == {"_id": "a"}
    store.close()


def test_mongo_store_names_its_database_from_the_url():
    assert open_store("mongodb://h1,h2/proj?replicaSet=rs").db_name == "proj"
    assert open_store("mongodb://localhost").db_name == "trainyard"
    assert open_store("mongomock://localhost/unit").db_name == "unit"


@pytest.mark.slow  # 200 files x 16 threads
def test_threads_opening_a_new_sqlite_file_at_once_all_get_a_connection(tmp_path):
    """Switching a new file to WAL used to fail at once with "database is locked" for some of
    16 threads opening their first connection together (about 1 new file in 40 here), before
    SQLite's busy timeout applied. 200 new files make that near certain to show."""
    for n in range(200):
        store = SqliteStore(f"sqlite:///{tmp_path}/fresh-{n}.db")
        barrier = threading.Barrier(16)

        def first_connection(_, store=store, barrier=barrier) -> str:
            barrier.wait(timeout=30)
            return store.connection("t").execute("PRAGMA journal_mode").fetchone()[0]

        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(first_connection, range(16))) == {"wal"}


# -- list operators and text search ------------------------------------------------------------

LISTINGS = [
    {"_id": "l1", "title": "Customer churn", "text": "predicts churn of retail customers",
     "tags": ["retail", "churn"], "score": 0.93, "kind": "team:a b"},
    {"_id": "l2", "title": "House prices", "text": "regression on house sales",
     "tags": ["real-estate"], "score": 0.7},
    {"_id": "l3", "title": "Churn for telecom", "text": "Churn churn churn of phone plans",
     "tags": ["telecom", "churn"], "score": 0.81},
    {"_id": "l4", "title": "Café wait times", "text": "queue lengths", "tags": [], "score": None},
]


@pytest.fixture
def listings(store):
    coll = store.collection("listings")
    coll.insert(dict(LISTINGS[0]))
    # indexes what was there before, too
    coll.ensure_text_index(["title", "text", "tags"], keywords=["tags", "kind"])
    for doc in LISTINGS[1:]:
        coll.insert(dict(doc))
    return coll


def test_contains_needs_every_value_and_overlaps_any(listings):
    assert ids(listings.find({"tags": {"$contains": ["churn"]}}, sort=[("_id", 1)])) == \
        ["l1", "l3"]
    assert ids(listings.find({"tags": {"$contains": ["churn", "retail"]}})) == ["l1"]
    assert ids(listings.find({"tags": {"$overlaps": ["retail", "telecom"]}},
                             sort=[("_id", 1)])) == ["l1", "l3"]
    assert listings.find({"tags": {"$overlaps": []}}) == []
    assert listings.count({"tags": {"$contains": ["nope"]}}) == 0


def test_search_needs_every_word_and_applies_the_filter(listings):
    found, total = listings.search("churn")
    assert total == 2 and sorted(ids(found)) == ["l1", "l3"]
    found, total = listings.search("churn retail")
    assert (ids(found), total) == (["l1"], 1)
    found, total = listings.search("churn", {"score": {"$gte": 0.9}})
    assert (ids(found), total) == (["l1"], 1)
    found, total = listings.search("CAFE")  # case and accents do not matter
    assert ids(found) == ["l4"]
    assert listings.search("estate") == ([listings.get("l2")], 1)  # a tag's words
    assert listings.search("nothing-like-this") == ([], 0)


def test_search_sorts_pages_and_counts_all(listings):
    found, total = listings.search("churn", sort=[("score", -1)], limit=1)
    assert (ids(found), total) == (["l1"], 2)
    found, total = listings.search("churn", sort=[("score", -1)], skip=1, limit=1)
    assert (ids(found), total) == (["l3"], 2)


def test_search_filters_keyword_fields_like_find(listings):
    for filter in ({"tags": {"$contains": ["churn", "telecom"]}}, {"kind": "team:a b"},
                   {"tags": {"$overlaps": ["real-estate", "retail"]}},
                   {"kind": {"$in": ["team:a b", "x"]}}, {"tags": {"$contains": ["nope"]}},
                   {"kind": None}, {"tags": {"$overlaps": []}}):
        expected = ids(listings.find(filter, sort=[("_id", 1)]))
        found, total = listings.search("", filter, sort=[("_id", 1)])
        assert (ids(found), total) == (expected, len(expected)), filter
        with_text, _ = listings.search("churn", filter, sort=[("_id", 1)])
        assert ids(with_text) == [i for i in expected if i in ("l1", "l3")], filter


def test_search_without_words_is_find_and_count(listings):
    found, total = listings.search("  !! ", {"tags": {"$contains": ["churn"]}},
                                   sort=[("_id", 1)])
    assert (ids(found), total) == (["l1", "l3"], 2)


def test_the_text_index_follows_updates_and_deletes(listings):
    listings.update_one({"_id": "l2"}, {"text": "now about churn too"})
    assert sorted(ids(listings.search("churn")[0])) == ["l1", "l2", "l3"]
    listings.delete_many({"_id": "l1"})
    assert sorted(ids(listings.search("churn")[0])) == ["l2", "l3"]
    assert listings.search("sales") == ([], 0)


def test_text_indexes_declared_by_processes_starting_together_all_serve_search(backend):
    """Web processes and workers starting at once on a new database each declare the text
    index; on PostgreSQL, those that lost the race to create its accent folding used to
    search without it (accents mattered, and the index did not serve their expression)."""
    stores = [open_store(backend.url) for _ in range(8)]
    stores[0].collection("listings").insert({"_id": "c", "title": "Café du coin"})
    barrier = threading.Barrier(8)

    def start(store) -> list:
        barrier.wait(timeout=30)
        store.collection("listings").ensure_text_index(["title"])
        return ids(store.collection("listings").search("cafe")[0])

    try:
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(start, stores)) == [["c"]] * 8
    finally:
        for store in stores:
            store.close()


def test_search_terms_are_words_never_syntax():
    from entity.store import MAX_SEARCH_TERMS, search_terms

    assert search_terms('churn" OR * NEAR(a b) -x') == ["churn", "or", "near", "a", "b", "x"]
    assert len(search_terms(" ".join(f"w{i}" for i in range(50)))) == MAX_SEARCH_TERMS
