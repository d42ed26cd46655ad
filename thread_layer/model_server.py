"""Serving models in real time from the web process.

Each project's active model version is loaded once (after its checksum is verified) and kept;
when another version becomes active, the next request loads it beside the old one and swaps
the reference in one assignment, so no request ever sees a half-loaded model and no restart is
needed. Requests that arrive while a prediction runs are predicted together in the next batch:
scikit-learn's per-call overhead is paid once per batch, not per request. Usage counters
(requests, rows, errors, latency percentiles) are kept per model version, in memory and, every
few seconds, in the database: they outlive a restart and add up across web processes.

Small real-time requests take turns (:class:`Turnstile`): the API handles them one at a time,
in arrival order, instead of interleaving them all; larger ones are batched.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

import pandas as pd

from entity.base import new_id
from entity.database import Database
from entity.prediction_record import new_prediction_ids
from entity.project import Project
from exception_layer import Conflict, NotFound
from integration.storage_bridge import StorageResolver
from project_library.serving import ServingModel, load_serving_model
from thread_layer.prediction_recorder import PredictionRecorder, sampled

MAX_BATCH_ROWS = 2048
#: latency percentiles cover this many hours, the current one included
LATENCY_HOURS = 24
#: latencies are counted in buckets of this relative width (percentiles are within ~2 %)
_BUCKET_RATIO = 2 ** (1 / 16)
_BUCKET_FLOOR_MS = 0.01
#: real-time request bodies up to this size (a few dozen rows) take turns; see ModelServer.turn
TURN_BYTES = 16 * 1024

log = logging.getLogger("trainyard.model_server")


class _NoSuchVersion(NotFound):
    """The model version asked for does not exist."""


def _hour(at: float) -> str:
    """The UTC hour of a ``time.time()`` reading, as a key that sorts: ``2026-11-23T09``."""
    return time.strftime("%Y-%m-%dT%H", time.gmtime(at))


def _latency_hours_since(now: float) -> str:
    return _hour(now - (LATENCY_HOURS - 1) * 3600)


def _bucket(milliseconds: float) -> int:
    if milliseconds <= _BUCKET_FLOOR_MS:
        return 0
    return int(math.log(milliseconds / _BUCKET_FLOOR_MS, _BUCKET_RATIO))


def _bucket_value(bucket: int) -> float:
    """The middle (geometric) of a bucket's range."""
    return _BUCKET_FLOOR_MS * _BUCKET_RATIO ** (bucket + 0.5)


@dataclass
class Usage:
    """Counters of one model version in this process: totals since the process started, and
    latencies as histograms per UTC hour (the last :data:`LATENCY_HOURS` of them)."""

    requests: int = 0
    rows: int = 0
    errors: int = 0
    #: prediction records not kept because the recorder's queue was full
    records_dropped: int = 0
    #: hour (since the epoch) -> latency bucket -> requests
    hours: dict[int, dict[int, int]] = field(default_factory=dict)
    #: hour (since the epoch) -> [requests, errors], for the error rate of live monitoring
    request_hours: dict[int, list[int]] = field(default_factory=dict)
    #: changed since last written to the database
    dirty: bool = False
    #: written to the database at least once
    saved: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, rows: int, milliseconds: float | None, now: float | None = None) -> None:
        """Count one request (``milliseconds=None``: it failed)."""
        with self.lock:
            self.requests += 1
            self.dirty = True
            at = int((time.time() if now is None else now) // 3600)
            counts = self.request_hours.setdefault(at, [0, 0])
            counts[0] += 1
            if milliseconds is None:
                self.errors += 1
                counts[1] += 1
                return
            self.rows += rows
            hour = self.hours.setdefault(at, {})
            bucket = _bucket(milliseconds)
            hour[bucket] = hour.get(bucket, 0) + 1

    def snapshot(self, now: float | None = None) -> dict:
        """The counters as stored (histogram keys are strings, as documents need), without
        the hours that no longer count."""
        since = int((time.time() if now is None else now) // 3600) - (LATENCY_HOURS - 1)
        with self.lock:
            for old in [h for h in self.hours if h < since]:
                del self.hours[old]
            for old in [h for h in self.request_hours if h < since]:
                del self.request_hours[old]
            return {"requests": self.requests, "rows": self.rows, "errors": self.errors,
                    "records_dropped": self.records_dropped,
                    "latency_hours": {_hour(hour * 3600): {str(b): n for b, n in buckets.items()}
                                      for hour, buckets in self.hours.items()},
                    "request_hours": {_hour(hour * 3600): list(counts)
                                      for hour, counts in self.request_hours.items()}}


def summarize(snapshots: list[dict], now: float | None = None) -> dict:
    """One version's public counters from the snapshots of every process that served it:
    totals added up, latency percentiles over the merged histograms of the last hours."""
    since = _latency_hours_since(time.time() if now is None else now)
    merged: dict[int, int] = {}
    for snap in snapshots:
        for hour, buckets in snap.get("latency_hours", {}).items():
            if hour >= since:
                for bucket, n in buckets.items():
                    merged[int(bucket)] = merged.get(int(bucket), 0) + n
    percentiles = {}
    total = sum(merged.values())
    if total:
        ordered = sorted(merged.items())
        for q in (50, 95, 99):
            rank, seen = max(1, math.ceil(total * q / 100)), 0
            for bucket, n in ordered:
                seen += n
                if seen >= rank:
                    percentiles[f"p{q}"] = round(_bucket_value(bucket), 2)
                    break
    return {"requests": sum(s.get("requests", 0) for s in snapshots),
            "rows": sum(s.get("rows", 0) for s in snapshots),
            "errors": sum(s.get("errors", 0) for s in snapshots),
            "records_dropped": sum(s.get("records_dropped", 0) for s in snapshots),
            "latency_ms": percentiles}


class Turnstile:
    """Lets one thread through at a time, in the order they arrived.

    Real-time predictions are CPU work in one Python process: they cannot run in parallel,
    only interleave. Interleaved, each of N concurrent requests finishes near the end of all N,
    and the interpreter lock changing hands between them adds to the cost; taken in turn, they
    finish one after another at the same throughput, so the slowest wait much less (measured at
    concurrency 8, A/B on the same trained model: p99 27.7 -> 20.5 ms, 515 -> 563 req/s).
    ``threading.Lock`` and ``Semaphore`` promise no order; this hands the turn to the longest
    waiter. Not re-entrant.

    Only for work that is all CPU: a thread that waits for something slow while it holds the
    turn holds everyone up (see :meth:`stepped_out`).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._holder: int | None = None
        self._waiting: deque[tuple[int, threading.Event]] = deque()

    def __enter__(self) -> Turnstile:
        me = threading.get_ident()
        with self._lock:
            if self._holder == me:
                raise RuntimeError("This thread already holds the turnstile.")
            if self._holder is None:
                self._holder = me
                return self
            turn = threading.Event()
            self._waiting.append((me, turn))
        turn.wait()  # the holder handed its turn to this thread
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            if self._waiting:
                self._holder, turn = self._waiting.popleft()
                turn.set()
            else:
                self._holder = None

    def held(self) -> bool:
        """Whether the calling thread holds the turnstile."""
        return self._holder == threading.get_ident()

    @contextmanager
    def stepped_out(self):
        """Give the turn up for a slow wait (loading a model) that must not hold everyone up,
        then queue again; does nothing for a thread that does not hold the turnstile."""
        if not self.held():
            yield
            return
        self.__exit__(None, None, None)
        try:
            yield
        finally:
            self.__enter__()


class _Batcher:
    """Predicts queued requests of one model together, on one thread."""

    def __init__(self, model: ServingModel, threads: int):
        self.model = model
        self.threads = threads
        self._pending: deque[tuple[pd.DataFrame, Future]] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"trainyard-serve-v{model.version.version}")
        self._thread.start()

    def submit(self, frame: pd.DataFrame) -> Future:
        future: Future = Future()
        with self._wake:
            self._pending.append((frame, future))
            self._wake.notify()
        return future

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _take(self) -> list[tuple[pd.DataFrame, Future]]:
        with self._wake:
            while not self._pending and not self._closed:
                self._wake.wait()
            batch, rows = [], 0
            while self._pending and (not batch or rows + len(self._pending[0][0])
                                     <= MAX_BATCH_ROWS):
                frame, future = self._pending.popleft()
                batch.append((frame, future))
                rows += len(frame)
            return batch

    def _run(self) -> None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads):
            while True:
                batch = self._take()
                if not batch:
                    return  # closed and drained
                frames = [frame for frame, _ in batch]
                try:
                    joined = self.model.join(frames)
                    result = self.model.predict(joined)
                except Exception as exc:  # noqa: BLE001 - handed to each waiting request
                    for _, future in batch:
                        future.set_exception(exc)
                    continue
                start = 0
                for frame, future in batch:
                    end = start + len(frame)
                    future.set_result({key: values[start:end]
                                       for key, values in result.items()})
                    start = end


class ModelServer:
    """Real-time predictions of projects' active (or chosen) model versions.

    Args:
        db: the registry.
        resolver: where each project's model files are.
        threads: CPU threads the math libraries may use per prediction (capped: many serving
            threads times many OpenMP threads collapse throughput on small machines).
        flush_seconds: how often the usage counters are written to the database (and at
            :meth:`close`); a process killed outright loses at most this much of them.
        recorder: writes the prediction records (default: one on ``db``).
    """

    def __init__(self, db: Database, resolver: StorageResolver, threads: int = 1,
                 flush_seconds: float = 5.0, recorder: PredictionRecorder | None = None):
        self.db, self.resolver, self.threads = db, resolver, threads
        self.recorder = recorder or PredictionRecorder(db)
        self.flush_seconds = flush_seconds
        #: this process's name on its usage documents
        self.instance = new_id()
        self._models: dict[tuple[str, int], _Batcher] = {}
        self._usage: dict[str, dict[int, Usage]] = {}  # project id -> version -> counters
        self._loading: dict[tuple[str, int], threading.Lock] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._closed = threading.Event()
        #: real-time requests take it in turn (see :class:`Turnstile`)
        self.turnstile = Turnstile()

    def turn(self, body_bytes: int | None) -> AbstractContextManager:
        """What a real-time request of ``body_bytes`` goes through: the turnstile for small
        ones, whose cost is the fixed work around a prediction that interleaving only
        multiplies; nothing for larger ones (or of unknown size), which gain more from being
        predicted in one batch with whatever else is waiting (measured with 100-row requests
        at concurrency 8: 222 req/s batched, 159 taking turns)."""
        if body_bytes is not None and body_bytes <= TURN_BYTES:
            return self.turnstile
        return nullcontext()

    def _batcher(self, project: Project, number: int) -> _Batcher:
        key = (project.id, number)
        batcher = self._models.get(key)
        if batcher is not None:
            return batcher
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        # Loading takes seconds: other projects' requests go ahead meanwhile.
        with self.turnstile.stepped_out(), loading:  # one load per version; others wait here
            batcher = self._models.get(key)
            if batcher is None:
                version = self.db.model_versions.get(project.id, number)
                if version is None:
                    raise _NoSuchVersion(f"Model version v{number} does not exist.")
                model = load_serving_model(self.resolver.files(project), project, version)
                batcher = _Batcher(model, self.threads)
                with self._lock:
                    self._models[key] = batcher  # the swap: one assignment
                    self._retire_old(project.id, keep={number})
        return batcher

    def _retire_old(self, project_id: str, keep: set[int]) -> None:
        # Keep at most the newly active version and the one before it (in-flight requests).
        versions = sorted(n for (p, n) in self._models if p == project_id and n not in keep)
        for number in versions[:-1]:
            self._models.pop((project_id, number)).close()

    def predict(self, project: Project, records: list, version: int | None = None,
                received_at: float | None = None) -> dict:
        """Predict ``records`` with ``version`` (default: the project's active version).

        ``received_at`` (a ``time.perf_counter()`` reading) is when the request arrived, so
        the usage latencies include its wait for its turn; default: now.

        Raises:
            Conflict: the project has no trained model yet.
            NotFound: the version does not exist.
            ValidationFailed: a record does not fit the model's schema (per-field details).
            ArtifactIntegrityError: the model file does not match its checksum.
        """
        number = version if version is not None else project.active_version
        if number is None:
            raise Conflict("This project has no trained model yet: train it first.")
        began = time.perf_counter() if received_at is None else received_at
        try:
            batcher = self._batcher(project, number)
            frame = batcher.model.frame(records)
            result = batcher.submit(frame).result()
        except _NoSuchVersion:
            raise  # no counters: asking for made-up versions must not grow them
        except Exception:
            self._usage_of(project.id, number).record(0, None)
            raise
        milliseconds = (time.perf_counter() - began) * 1000
        usage = self._usage_of(project.id, number)
        usage.record(len(records), milliseconds)
        ids = new_prediction_ids(len(records))
        rows = sampled(len(ids), project.settings.get("prediction_record_sample", 1.0))
        dropped = self.recorder.offer(project.id, number, ids, records, result, milliseconds,
                                      rows)
        if dropped:
            with usage.lock:
                usage.records_dropped += dropped
                usage.dirty = True
        return {"model_version": number, "rows": len(records), "prediction_ids": ids, **result}

    def _usage_of(self, project_id: str, number: int) -> Usage:
        usage = self._usage.get(project_id, {}).get(number)
        if usage is None:
            with self._lock:
                usage = self._usage.setdefault(project_id, {}).setdefault(number, Usage())
                if self._flusher is None and not self._closed.is_set():
                    self._flusher = threading.Thread(target=self._flush_every, daemon=True,
                                                     name="usage-flush")
                    self._flusher.start()
        return usage

    def usage(self, project_id: str) -> dict[int, dict]:
        """Counters per existing model version of a project: every process's, this one's as
        of now, the others' as of their last write (at most ``flush_seconds`` old)."""
        with self._lock:  # a version's first request may add its counters meanwhile
            own = list(self._usage.get(project_id, {}).items())
        snapshots: dict[int, list[dict]] = {}
        for number, counters in own:
            snapshots.setdefault(number, []).append(counters.snapshot())
        for doc in self.db.prediction_usage.for_project(project_id):
            if doc["instance"] != self.instance:
                snapshots.setdefault(doc["version"], []).append(doc)
        # Counters of a version deleted meanwhile (by another process) are not shown.
        existing = {v.version for v in self.db.model_versions.list_for_project(project_id)}
        return {number: summarize(snaps) for number, snaps in sorted(snapshots.items())
                if number in existing}

    def flush(self) -> None:
        """Write the counters that changed to the database. Those of a version or project
        deleted meanwhile are dropped instead, so they do not come back."""
        with self._flushing:
            with self._lock:
                every = [(p, n, u) for p, versions in self._usage.items()
                         for n, u in versions.items() if u.dirty]
            for project_id, number, usage in every:
                with usage.lock:
                    usage.dirty = False
                try:
                    kept = (usage.saved or self.db.model_versions.get(project_id, number)
                            is not None) and self.db.prediction_usage.save(
                        project_id, number, self.instance, usage.snapshot(),
                        first=not usage.saved)
                except Exception:  # the database is away: keep them, try again next time
                    log.warning("Could not save the prediction counters of project %s v%s",
                                project_id, number, exc_info=True)
                    with usage.lock:
                        usage.dirty = True
                    continue
                if kept:
                    usage.saved = True
                else:
                    with self._lock:
                        if self._usage.get(project_id, {}).get(number) is usage:
                            del self._usage[project_id][number]

    def _flush_every(self) -> None:
        while not self._closed.wait(self.flush_seconds):
            self.flush()

    def close(self) -> None:
        """Stop the periodic writes and write what is left (at shutdown)."""
        self._closed.set()
        if self._flusher is not None:
            self._flusher.join(timeout=30)
        self.recorder.close()
        self.flush()

    def forget(self, project_id: str, version: int | None = None) -> None:
        """Forget what was deleted: one model ``version`` of a project, its loaded model and
        usage counters, or, without ``version``, all of the project's (here and in the
        database)."""
        with self._flushing:  # a write in progress cannot bring them back afterwards
            with self._lock:
                for key in [k for k in self._models
                            if k[0] == project_id and version in (None, k[1])]:
                    self._models.pop(key).close()
                if version is None:
                    self._usage.pop(project_id, None)
                else:
                    self._usage.get(project_id, {}).pop(version, None)
            self.db.prediction_usage.delete(project_id, version)
            if version is None:  # the project is gone: its prediction records go with it
                self.recorder.flush()
                self.db.prediction_records.delete_for_project(project_id)
