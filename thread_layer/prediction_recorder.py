"""Writing real-time prediction records off the request thread.

A request hands its rows to :meth:`PredictionRecorder.offer`, which only appends one tuple to a
bounded in-memory queue (no document is built, nothing waits for the database); a daemon thread
builds the documents and writes them with one ``insert_many`` every ``flush_seconds``, or as soon
as ``batch_rows`` rows wait. When the queue holds ``max_rows`` rows, further rows are dropped and
counted (:attr:`PredictionRecorder.dropped`, and the model server's usage counters): recording
never slows or fails a prediction. A process killed outright loses at most the rows still queued.

The thread also keeps to a CPU budget, ``cpu_share`` of its wall time (2 % by default,
``PREDICTION_RECORDS_CPU_PERCENT``): after each write it rests in proportion to the CPU that
write took. Writing a record costs about 25 us of CPU (mostly turning its numbers into JSON
text), so a server saturated with 100-row requests would otherwise spend a third more CPU per
request on its records; with the budget, traffic beyond what the budget writes (about 800 rows
a second with the default) fills the queue and is dropped and counted, and sampling
(``prediction_record_sample``) is the way to keep a representative share of heavy traffic.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable

from entity.base import to_iso, utcnow
from entity.database import Database
from entity.prediction_record import new_record

log = logging.getLogger("trainyard.prediction_records")


def sampled(count: int, rate: float) -> list[int] | None:
    """The rows (indexes) of ``count`` to record at ``rate``: None means every row."""
    if rate >= 1:
        return None
    if rate <= 0:
        return []
    return [i for i in range(count) if random.random() < rate]


class PredictionRecorder:
    """Batches real-time prediction records into the database from a background thread.

    Args:
        db: where ``prediction_records`` live.
        flush_seconds: the longest a queued row waits before it is written.
        batch_rows: a flush starts as soon as this many rows wait (and writes at most
            ``4 * batch_rows`` per insert).
        max_rows: the queue's bound; rows offered beyond it are dropped and counted.
        clock: the time the records are stamped with (an aware UTC datetime).
        cpu_share: the share (0..1] of its wall time the writing thread may spend on CPU;
            1: no budget.
    """

    def __init__(self, db: Database, *, flush_seconds: float = 1.0, batch_rows: int = 500,
                 max_rows: int = 50_000, clock: Callable = utcnow, cpu_share: float = 0.02):
        self.db = db
        self.cpu_share = min(max(cpu_share, 0.001), 1.0)
        self.flush_seconds, self.batch_rows, self.max_rows = flush_seconds, batch_rows, max_rows
        self.clock = clock
        self.dropped = 0
        self.written = 0
        self._queue: deque[tuple] = deque()
        self._rows = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stopping = threading.Event()  # the budget's rests end early only at close
        self._flushing = threading.Lock()

    def offer(self, project_id: str, version: int, ids: list[str], records: list,
              result: dict, latency_ms: float, rows: list[int] | None = None) -> int:
        """Queue the records of one request: its ``ids`` and ``records`` (the inputs as
        sent), the model's ``result`` (``predictions``, maybe ``probabilities``), and
        ``rows``, the indexes kept by sampling (None: all). Returns how many rows were
        dropped because the queue is full (0 normally); never blocks on the database."""
        count = len(ids) if rows is None else len(rows)
        if not count:
            return 0
        at = self.clock()
        with self._wake:
            if self._closed or self._rows + count > self.max_rows:
                self.dropped += count
                return count
            self._queue.append((project_id, version, at, ids, records, result, latency_ms,
                                rows))
            self._rows += count
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="prediction-records")
                self._thread.start()
            if self._rows >= self.batch_rows:
                self._wake.notify()
        return 0

    def pending(self) -> int:
        """Rows queued and not yet written."""
        return self._rows

    def _take(self) -> list[tuple]:
        with self._wake:
            taken, rows = [], 0
            while self._queue and rows < 4 * self.batch_rows:
                item = self._queue.popleft()
                taken.append(item)
                rows += len(item[3]) if item[7] is None else len(item[7])
            self._rows -= rows
            return taken

    @staticmethod
    def _documents(items: list[tuple]) -> list[dict]:
        docs = []
        for project_id, version, at, ids, records, result, latency_ms, rows in items:
            created = to_iso(at)
            predicted = result.get("predictions") or []
            probabilities = result.get("probabilities")
            for i in range(len(ids)) if rows is None else rows:
                docs.append(new_record(
                    ids[i], project_id, version, "realtime", created, records[i],
                    predicted[i] if i < len(predicted) else None,
                    probabilities[i] if probabilities else None,
                    latency_ms=round(latency_ms, 3)))
        return docs

    def _write_some(self) -> int | None:
        """Write one insert's worth of queued rows; None when nothing was queued. A failed
        write (the database is away) drops its rows with a warning, counted as dropped."""
        with self._flushing:
            items = self._take()
            if not items:
                return None
            docs = self._documents(items)
            try:
                self.db.prediction_records.add_many(docs)
            except Exception:  # noqa: BLE001 - recording must never stop serving
                log.warning("Could not write %d prediction records", len(docs), exc_info=True)
                with self._wake:
                    self.dropped += len(docs)
                return 0
            self.written += len(docs)
            return len(docs)

    def flush(self) -> int:
        """Write every queued row now, whatever the budget; returns how many were written."""
        written = 0
        while (done := self._write_some()) is not None:
            written += done
        return written

    def _run(self) -> None:
        rest = 0.0
        while True:
            if rest > 0:  # the budget: rest in proportion to the last write's CPU
                self._stopping.wait(rest)
            with self._wake:
                if not self._closed and self._rows < self.batch_rows:
                    self._wake.wait(self.flush_seconds)
                closed = self._closed
            if closed:
                self.flush()
                return
            began = time.thread_time()
            self._write_some()
            spent = time.thread_time() - began
            rest = spent * (1 / self.cpu_share - 1)

    def close(self) -> None:
        """Write what is queued and stop the thread (at shutdown); later offers are dropped."""
        with self._wake:
            self._closed = True
            self._stopping.set()
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        self.flush()
