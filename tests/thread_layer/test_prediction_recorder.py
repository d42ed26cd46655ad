"""The real-time prediction recorder: rows written in batches by its own thread, a bounded queue
that drops (and counts) instead of blocking, sampling, and the last rows written at close."""

from __future__ import annotations

import threading
import time

import pytest

from entity.database import Database
from entity.prediction_record import new_prediction_ids
from tests.conftest import wait_until
from thread_layer.prediction_recorder import PredictionRecorder, sampled


@pytest.fixture
def db(tmp_path):
    database = Database.from_url(f"sqlite:///{tmp_path / 'trainyard.db'}")
    database.ensure_indexes()
    yield database
    database.close()


def offer(recorder, n: int, rows=None, project="p"):
    ids = new_prediction_ids(n)
    records = [{"x": float(i)} for i in range(n)]
    result = {"predictions": [i % 2 for i in range(n)],
              "probabilities": [{"0": 0.5, "1": 0.5}] * n}
    return ids, recorder.offer(project, 1, ids, records, result, 2.5, rows)


def test_rows_are_written_by_the_recorders_thread_in_batches(db):
    recorder = PredictionRecorder(db, flush_seconds=0.05, batch_rows=10)
    writes = []
    add_many = db.prediction_records.add_many
    db.prediction_records.add_many = lambda docs: (writes.append(
        (threading.current_thread().name, len(docs))), add_many(docs))
    ids, dropped = offer(recorder, 3)
    assert dropped == 0
    wait_until(lambda: db.prediction_records.count("p") == 3, timeout=5, message="the rows")
    doc = db.prediction_records.get(ids[1])
    assert doc["inputs"] == {"x": 1.0} and doc["output"] == 1 and doc["latency_ms"] == 2.5
    assert doc["probabilities"] == {"0": 0.5, "1": 0.5} and doc["source"] == "realtime"
    for _ in range(5):
        offer(recorder, 20)
    wait_until(lambda: db.prediction_records.count("p") == 103, timeout=5, message="the rest")
    assert {name for name, _ in writes} == {"prediction-records"}  # never the caller's thread
    assert len(writes) < 1 + 5  # several requests' rows per insert
    recorder.close()


def test_a_full_queue_drops_and_counts_rows_without_blocking(db):
    recorder = PredictionRecorder(db, flush_seconds=60, batch_rows=1000, max_rows=25)
    gate = threading.Event()
    original = db.prediction_records.add_many
    db.prediction_records.add_many = lambda docs: (gate.wait(5), original(docs))
    assert offer(recorder, 20)[1] == 0
    assert offer(recorder, 10)[1] == 10  # would pass the bound: dropped, at once
    assert offer(recorder, 5)[1] == 0
    assert recorder.dropped == 10 and recorder.pending() == 25
    gate.set()
    recorder.close()
    assert db.prediction_records.count("p") == 25
    assert offer(recorder, 1)[1] == 1  # closed: nothing more is taken


def test_sampling_keeps_the_chosen_rows_only(db):
    assert sampled(5, 1.0) is None and sampled(5, 0) == []
    chosen = sampled(10_000, 0.3)
    assert 2700 < len(chosen) < 3300 and chosen == sorted(set(chosen))
    recorder = PredictionRecorder(db, flush_seconds=60)
    ids, _ = offer(recorder, 4, rows=[1, 3])
    assert offer(recorder, 4, rows=[])[1] == 0
    recorder.flush()
    assert {d["_id"] for d in db.prediction_records.find("p")} == {ids[1], ids[3]}
    recorder.close()


def test_a_failed_write_counts_its_rows_as_dropped_and_serving_goes_on(db):
    recorder = PredictionRecorder(db, flush_seconds=60)
    db.prediction_records.add_many = lambda docs: (_ for _ in ()).throw(OSError("disk"))
    offer(recorder, 4)
    assert recorder.flush() == 0 and recorder.dropped == 4
    recorder.close()


def test_the_writer_keeps_to_its_cpu_budget_and_the_queue_takes_the_excess(db):
    recorder = PredictionRecorder(db, flush_seconds=0.01, batch_rows=1, max_rows=30,
                                  cpu_share=0.01)
    writes = []
    original = db.prediction_records.add_many

    def costly(docs):  # 20 ms of CPU per write: the budget then rests about 2 s
        began = time.thread_time()
        while time.thread_time() - began < 0.02:
            pass
        writes.append(len(docs))
        original(docs)
    db.prediction_records.add_many = costly
    offer(recorder, 10)
    wait_until(lambda: writes, timeout=5, message="the first write")
    for _ in range(4):
        offer(recorder, 10)
    time.sleep(0.5)  # what is tested is that nothing is written during the rest
    assert writes == [10] and recorder.pending() == 30 and recorder.dropped == 10
    recorder.close()  # at close, everything queued is written regardless
    assert db.prediction_records.count("p") == 40
