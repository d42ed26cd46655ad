"""The prediction-record repository, on every document-store backend."""

from __future__ import annotations

from datetime import timedelta

from entity.base import to_iso
from entity.prediction_record import new_prediction_id, new_record


def _records(project_id, clock, n, *, source="realtime", version=1, start=0):
    return [new_record(new_prediction_id(), project_id, version, source, to_iso(clock(start + i)),
                       {"x": i}, "yes" if i % 2 else "no", {"yes": 0.5, "no": 0.5})
            for i in range(n)]


def test_add_find_and_count_with_every_filter(db, clock):
    repo = db.prediction_records
    first = _records("p1", clock, 5)
    repo.add_many(first)
    repo.add_many(_records("p1", clock, 3, source="batch", version=2, start=10))
    repo.add_many(_records("p2", clock, 4))
    repo.add_many([])
    assert repo.count("p1") == 8
    assert repo.count("p2") == 4
    assert [d["_id"] for d in repo.find("p1", limit=5)] == [d["_id"] for d in first]
    assert repo.count("p1", version=2) == 3 and repo.count("p1", source="batch") == 3
    assert repo.count("p1", since=clock(2), until=clock(11)) == 4  # 2, 3, 4 and 10
    newest = repo.find("p1", newest_first=True, limit=2)
    assert [d["inputs"]["x"] for d in newest] == [2, 1]
    assert [d["inputs"]["x"] for d in repo.find("p1", skip=6, limit=5)] == [1, 2]
    assert len(list(repo.iterate("p1", chunk=3))) == 8
    assert repo.get(first[0]["_id"]) == first[0]


def test_label_once_per_record_and_only_in_its_project(db, clock):
    repo = db.prediction_records
    docs = _records("p1", clock, 3)
    repo.add_many(docs)
    one = docs[0]["_id"]
    assert repo.label("p2", one, "yes") is False  # another project's
    assert repo.label("p1", "unknown", "yes") is False
    assert repo.label("p1", one, "yes", labeled_at=clock(100)) is True
    assert repo.label("p1", one, "no") is False  # labeled already
    assert repo.get(one)["actual"] == "yes"
    assert repo.count("p1", labeled=True) == 1 and repo.count("p1", labeled=False) == 2
    assert repo.count("p1", labeled_since=clock(100)) == 1
    assert repo.count("p1", labeled_since=clock(101)) == 0
    assert set(repo.get_many([one, docs[1]["_id"], "nope"])) == {one, docs[1]["_id"]}


def test_delete_older_than_per_project_or_all(db, clock):
    repo = db.prediction_records
    repo.add_many(_records("p1", clock, 4))
    repo.add_many(_records("p2", clock, 4))
    assert repo.delete_older_than(clock(2), project_id="p1") == 2
    assert repo.count("p1") == 2 and repo.count("p2") == 4
    assert repo.delete_older_than(clock(0) + timedelta(days=365)) == 6
    assert repo.delete_for_project("p1") == 0
