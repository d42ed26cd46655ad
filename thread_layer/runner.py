"""The execution runner: starts, tracks, cancels and recovers executions of every kind.

Each execution is claimed atomically on its project (at most one active execution per project),
queued, then run by one of ``max_workers`` supervisor threads. The supervisor starts a worker
process (``thread_layer.worker``), turns its messages into persisted and published log lines,
heartbeats, and finishes the execution: what its kind produced registered (and promoted),
mails, the project freed. What differs between kinds is declared in :mod:`thread_layer.kinds`.
Executions whose runner died are found by :meth:`ExecutionRunner.recover` and marked
``interrupted``, so no project stays "in progress" forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from entity.base import utcnow
from entity.database import Database
from entity.execution import Execution
from entity.project import Project
from exception_layer import Conflict, ExecutionInProgress, NotFound
from integration.notifications import Notifier
from integration.storage_bridge import StorageResolver
from logging_layer.execution_logger import ExecutionLogger, Publisher, project_room
from thread_layer import sandbox, staging, worker
from thread_layer.kinds import ExecutionKind, find_kind, get_kind

log = logging.getLogger("trainyard.runner")
_STOP = object()


def process_start_time(pid: int) -> int | None:
    """The start time (clock ticks since boot) of process ``pid`` if it runs, else None.

    A zombie counts as gone, and recording the start time tells a reused pid from the process
    that first had it.
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    except OSError:  # no /proc: fall back to a signal probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0
        return 0
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _machine_memory_mb() -> int:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 1 << 20


#: the worker's error codes (thread_layer.worker) that mean a limit was hit
_LIMIT_CODES = {"memory": "memory_mb", "processes": "processes", "open_files": "open_files",
                "written": "written_mb"}


def _breach_of_code(code: str, limits, usage: dict):
    name = _LIMIT_CODES.get(code)
    if name is None:
        return None
    if name == "memory_mb" and usage.get("peak_memory_mb", 0) < 0.9 * limits.memory_mb:
        name = "address_space_mb"  # the allocation failed at RLIMIT_AS first
    measured = {"memory_mb": usage.get("peak_memory_mb", 0),
                "written_mb": usage.get("written_mb", 0)}.get(name, 0)
    return sandbox.Breach(name, getattr(limits, name), measured)


def _runner_alive(runner: dict) -> bool:
    pid = runner.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    started = process_start_time(pid)
    if started is None:
        return False
    recorded = runner.get("started")
    return not recorded or not started or started == recorded


class ExecutionRunner:
    """Runs executions in the background of this process.

    Args:
        db: the database.
        resolver: gives each project its storage.
        notifier: sends the start/success/failure mails.
        publish: publishes events to Socket.IO rooms.
        context: a factory of the context to run supervisors in (Flask's ``app.app_context``).
        max_workers: executions running at once; more wait ``queued``.
        threads: CPU threads each worker process may use.
        heartbeat_seconds, stale_after_seconds: liveness of running executions.
        dispatch: ``dispatch(execution_id, queue)`` queues an execution on its kind's queue
            elsewhere (a Celery broker) instead of running it in this process; None runs
            executions here.
        sandbox_report: what isolation the worker processes get (:func:`sandbox.detect`;
            None: detected when the first execution starts).
        limits, ceiling: the default limits of an execution and the install-wide ceiling a
            project's override cannot exceed (:class:`sandbox.Limits`).
        scratch_root: where each execution's scratch folder is made.
        memory_budget_mb: the sum of running executions' memory limits this runner admits
            (None: the machine's memory less 1 GB for the web process).
    """

    def __init__(self, *, db: Database, resolver: StorageResolver, notifier: Notifier,
                 publish: Publisher, context: Callable[[], contextlib.AbstractContextManager]
                 = contextlib.nullcontext, max_workers: int = 2, threads: int = 1,
                 heartbeat_seconds: float = 5, stale_after_seconds: float = 60,
                 dispatch: Callable[[str, str], None] | None = None,
                 sandbox_report: sandbox.SandboxReport | None = None,
                 limits: sandbox.Limits | None = None, ceiling: sandbox.Limits | None = None,
                 scratch_root: str | None = None, memory_budget_mb: int | None = None,
                 sandbox_mode: str = "auto", sandbox_bwrap: bool = True):
        self.db, self.resolver, self.notifier = db, resolver, notifier
        self._sandbox_report = sandbox_report
        self.sandbox_mode, self.sandbox_bwrap = sandbox_mode, sandbox_bwrap
        self.default_limits = limits or sandbox.Limits()
        self.ceiling = ceiling or sandbox.Limits(
            **{spec.name: spec.ceiling for spec in sandbox.LIMIT_SPECS})
        self.scratch_root = Path(scratch_root or "/tmp/trainyard-scratch")
        self.memory_budget_mb = memory_budget_mb or _machine_memory_mb() - 1024
        self._running_memory: dict[str, int] = {}
        self._uids: dict[str, int] = {}
        self.publish, self.context = publish, context
        self.max_workers, self.threads = max_workers, threads
        self.heartbeat_seconds, self.stale_after_seconds = heartbeat_seconds, stale_after_seconds
        self.dispatch = dispatch
        self.identity = {"host": socket.gethostname(), "pid": os.getpid(),
                         "started": process_start_time(os.getpid()),
                         "instance": uuid.uuid4().hex}
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._cancel: dict[str, threading.Event] = {}
        self._procs: dict[str, sandbox.Sandboxed] = {}
        self._stopping = threading.Event()
        self._handing_back = threading.Event()
        self._lock = threading.Lock()

    @property
    def sandbox_report(self) -> sandbox.SandboxReport:
        """What isolation executions get here, detected once (and logged)."""
        with self._lock:
            if self._sandbox_report is None:
                self._sandbox_report = sandbox.detect(self.sandbox_mode, bwrap=self.sandbox_bwrap)
                log.info("%s", self._sandbox_report.summary())
                for note in self._sandbox_report.notes:
                    log.info("Sandbox: %s", note)
            return self._sandbox_report

    def limits_of(self, project: Project) -> sandbox.Limits:
        """The limits of ``project``'s executions: the defaults, its administrator-set
        overrides, capped at the install's ceiling."""
        overrides = self.db.execution_limits.get(project.id)
        return self.default_limits.with_overrides(overrides).capped(self.ceiling)

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor threads (unless executions go to a broker) and the sweeper
        (idempotent)."""
        with self._lock:
            if self._threads:
                return
            for n in range(0 if self.dispatch else self.max_workers):
                thread = threading.Thread(target=self._work, name=f"trainyard-runner-{n}",
                                          daemon=True)
                thread.start()
                self._threads.append(thread)
            self._start_sweeper_locked()

    def start_sweeper(self) -> None:
        """Start only the sweeper (Celery workers run executions through :meth:`run`)."""
        with self._lock:
            if not self._threads:
                self._start_sweeper_locked()

    def _start_sweeper_locked(self) -> None:
        sweeper = threading.Thread(target=self._sweep, name="trainyard-sweeper", daemon=True)
        sweeper.start()
        self._threads.append(sweeper)

    def shutdown(self) -> None:
        """Stop: kill running workers and mark this process's executions interrupted.

        Once only: the app's owner may stop it before the call registered for the process's
        exit, when its database may be gone (a test's server, stopped at the session's end).
        """
        if self._stopping.is_set():
            return
        self._stopping.set()
        for _ in range(self.max_workers):
            self._queue.put(_STOP)
        for execution_id, box in list(self._procs.items()):
            with contextlib.suppress(Exception):
                box.kill()
            self._cancel.setdefault(execution_id, threading.Event())
        with self.context():
            for execution in self.db.executions.list_active():
                if execution.runner.get("instance") == self.identity["instance"]:
                    self._interrupt(execution, "The server was stopped while this execution "
                                               "was running; start it again.")

    def hand_back(self) -> None:
        """Give the running executions back to their broker queue (a worker asked to stop,
        whose grace time is over): each one's process is stopped, and it goes back to
        ``queued`` for another worker to run from the start."""
        self._handing_back.set()

    # -- starting and cancelling -------------------------------------------------------

    def submit(self, project: Project, kind: str, user, options: dict | None = None, *,
               trigger: dict | None = None) -> Execution:
        """Queue a ``kind`` execution of ``project`` started by ``user`` (None: started by
        the platform itself, e.g. a schedule, which ``trigger`` then names).

        ``trigger`` is recorded on the execution: ``{"by": ..., "reason": ..., ...}`` (see
        ``entity.execution.TRIGGERS``); by default a person's start, ``{"by": "user"}``.

        Raises:
            ValidationFailed: no kind has this name.
            ExecutionInProgress: the project already has an active execution (it is named).
            Conflict: a kind that needs a model without any trained model, or the kind's own
                check refused.
            NotFound: the requested model version does not exist.
        """
        declared = get_kind(kind)
        options = dict(options or {})
        self._refuse_if_busy(project)
        if declared.needs_model:
            self._choose_model(project, options)
        declared.check(self, project, options)
        owner = {"mode": "broker"} if self.dispatch else dict(self.identity)
        if trigger is None:
            trigger = {"by": "user", "user_id": user.id, "reason": f"Started by {user.name}."}
        execution = Execution(project_id=project.id, kind=kind,
                              started_by=user.id if user is not None else None,
                              options=options, runner=owner, trigger=dict(trigger))
        self._claim(project, execution)
        try:
            self.db.executions.add(execution)
        except BaseException:
            self.db.projects.release(project.id, execution.id)
            raise
        if user is not None:
            queued = f"{declared.label} queued by {user.name}."
        else:
            queued = (f"{declared.label} queued by the {trigger.get('by', 'platform')} "
                      f"trigger: {trigger.get('reason') or 'no reason given.'}")
        self._logger(execution).log(queued, stage="queued")
        self._publish_execution(execution)
        self.start()
        if self.dispatch:
            self.dispatch(execution.id, declared.queue)
        else:
            self._queue.put(execution.id)
        return execution

    def _choose_model(self, project: Project, options: dict) -> None:
        """Set ``options["version"]`` to the requested model version, or the active one."""
        version = options.get("version") or project.active_version
        if version is None:
            raise Conflict("This project has no trained model yet: train it first.")
        if self.db.model_versions.get(project.id, int(version)) is None:
            raise NotFound(f"Model version v{version} does not exist.")
        options["version"] = int(version)

    def _refuse_if_busy(self, project: Project) -> None:
        """Name the running execution before any other reason to refuse (the atomic claim
        below still decides races)."""
        current = self.db.projects.get(project.id)
        holder = (self.db.executions.get(current.active_execution_id)
                  if current and current.active_execution_id else None)
        if holder is not None and holder.is_active:
            raise ExecutionInProgress(holder.id, holder.kind)

    def _claim(self, project: Project, execution: Execution) -> None:
        for _attempt in range(2):
            if self.db.projects.claim(project.id, execution.id):
                return
            current = self.db.projects.get(project.id)
            holder_id = current.active_execution_id if current else None
            holder = self.db.executions.get(holder_id) if holder_id else None
            if holder is not None and holder.is_active:
                raise ExecutionInProgress(holder.id, holder.kind)
            # A claim left by an execution that is over: free it and try once more.
            if holder_id:
                self.db.projects.release(project.id, holder_id)
        raise ExecutionInProgress(holder_id or "unknown")

    def cancel(self, execution: Execution) -> Execution:
        """Ask an active execution to stop; a queued one is cancelled at once."""
        if not execution.is_active:
            raise Conflict(f"Execution {execution.id} is already {execution.status}.")
        self.db.executions.update(execution.id, cancel_requested=True)
        self._cancel.setdefault(execution.id, threading.Event()).set()
        if execution.status == "queued" and self.db.executions.finish(
                execution.id, "cancelled", error="Cancelled before it started."):
            self._logger(execution).log("Cancelled before it started.", stage="queued",
                                        level="WARNING")
            self.db.projects.release(execution.project_id, execution.id)
            self._publish_execution(self.db.executions.get(execution.id))
        return self.db.executions.get(execution.id)

    # -- recovery ------------------------------------------------------------------------

    def recover(self) -> int:
        """Mark executions whose runner is gone ``interrupted``; returns how many."""
        count = 0
        for execution in self.db.executions.list_active():
            reason = self._orphan_reason(execution)
            if reason and self._interrupt(execution, reason):
                count += 1
        return count

    def _orphan_reason(self, execution: Execution) -> str | None:
        runner = execution.runner or {}
        if runner.get("mode") == "broker":
            # Waiting on the broker for a worker: only give up after a long wait.
            waited = utcnow() - (execution.heartbeat_at or execution.created_at)  # requeued
            if waited > timedelta(seconds=self.stale_after_seconds * 60):
                return ("No worker took this execution for over an hour; check that "
                        "`python -m app worker` runs, then start it again.")
            return None
        if runner.get("instance") == self.identity["instance"]:
            return None
        if runner.get("host") == self.identity["host"] and not _runner_alive(runner):
            return ("The server was stopped while this execution was running; "
                    "start it again.")
        last_sign = execution.heartbeat_at or execution.created_at
        if utcnow() - last_sign > timedelta(seconds=self.stale_after_seconds):
            return (f"The execution stopped sending heartbeats for over "
                    f"{self.stale_after_seconds} s (its server or worker died); start it again.")
        return None

    def _interrupt(self, execution: Execution, reason: str) -> bool:
        if not self.db.executions.finish(execution.id, "interrupted", error=reason):
            return False
        self._logger(execution).log(f"Interrupted: {reason}", stage=execution.stage or "queued",
                                    level="ERROR")
        self.db.projects.release(execution.project_id, execution.id)
        finished = self.db.executions.get(execution.id)
        self._publish_execution(finished)
        project = self.db.projects.get(execution.project_id)
        if project is not None:
            self.notifier.execution_event("interrupted", project, finished,
                                          self._email_of(finished.started_by),
                                          find_kind(finished.kind))
        log.warning("Execution %s marked interrupted: %s", execution.id, reason)
        return True

    def _sweep(self) -> None:
        interval = max(1.0, min(self.heartbeat_seconds, self.stale_after_seconds / 3))
        while not self._stopping.wait(interval):
            try:
                with self.context():
                    self.recover()
            except Exception:  # noqa: BLE001 - the sweeper must keep sweeping
                log.exception("The execution sweeper failed; retrying")

    # -- supervision ---------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            execution_id = self._queue.get()
            if execution_id is _STOP:
                return
            try:
                with self.context():
                    self.run(execution_id)
            except Exception:  # noqa: BLE001 - a supervisor thread must survive any execution
                log.exception("Supervising execution %s failed", execution_id)

    def run(self, execution_id: str) -> None:
        """Run a queued execution to its end in this process (a supervisor thread here, or a
        Celery worker's task); does nothing if it is no longer queued."""
        try:
            self._supervise(execution_id)
        finally:
            self._cancel.pop(execution_id, None)
            self._procs.pop(execution_id, None)

    def _supervise(self, execution_id: str) -> None:
        execution = self.db.executions.get(execution_id)
        if execution is None or execution.status != "queued" or self._stopping.is_set():
            return
        project = self.db.projects.get(execution.project_id)
        logger = self._logger(execution)
        starter_email = self._email_of(execution.started_by)
        kind = find_kind(execution.kind)
        if project is None or kind is None:
            self.db.executions.finish(execution_id, "failed", error=(
                "The project was deleted." if project is None else
                f"This server cannot run executions of kind {execution.kind!r}."))
            if project is not None:
                self.db.projects.release(project.id, execution_id)
            return
        if self._handing_back.is_set() and self.dispatch:
            self.dispatch(execution_id, kind.queue)  # a stopping worker starts nothing more
            return
        limits = self.limits_of(project)
        if not self._admit(execution, kind, limits, logger):
            return
        if not self.db.executions.start(execution_id, dict(self.identity)):
            self._running_memory.pop(execution_id, None)
            return  # cancelled meanwhile, or another worker took it (a broker redelivery)
        handed_back = False
        self.db.executions.update(execution_id, limits=limits.to_dict(), waiting_reason=None)
        try:
            execution = self.db.executions.get(execution_id)
            self._publish_execution(execution)
            self.notifier.execution_event("started", project, execution, starter_email, kind)
            logger.log(f"Started on {self.identity['host']}.", stage="validating")
            # beats until what the execution produced is saved: the worker process's end
            # and the saving can outlast a heartbeat
            with self._beating(execution_id):
                status, detail = self._run_worker(kind, execution, project, logger,
                                                 limits)
                if status == "succeeded":
                    result = kind.finalize(self, execution, project, detail, logger)
                    if kind.promote is not None:
                        result = kind.promote(self.db, project, result, logger)
            if status == "handed_back":
                kind.discard(self, execution, project, logger)
                handed_back = self._give_back(kind, execution, logger)
                if not handed_back:  # cancelled meanwhile
                    self.db.executions.finish(execution_id, "cancelled",
                                              error="Cancelled on request.")
                return
            if status == "succeeded":
                self.db.executions.finish(execution_id, "succeeded", result=result)
                logger.log("Finished successfully.", stage="done")
            else:
                kind.discard(self, execution, project, logger)
                logger.log(detail, stage=self.db.executions.get(execution_id).stage,
                           level="WARNING" if status == "cancelled" else "ERROR")
                self.db.executions.finish(execution_id, status, error=detail)
        except Exception:  # noqa: BLE001 - the boundary of a background execution
            log.exception("Execution %s failed unexpectedly", execution_id)
            message = ("An unexpected error stopped the execution; "
                       "the details are in the server log.")
            self.db.executions.finish(execution_id, "failed", error=message)
            with contextlib.suppress(Exception):
                logger.log(message, stage="done", level="ERROR")
        finally:
            self._running_memory.pop(execution_id, None)
            if not handed_back:
                self._conclude(project, execution_id, starter_email, kind)

    def _conclude(self, project: Project, execution_id: str, starter_email: str | None,
                  kind: ExecutionKind) -> None:
        """Free the project and tell the watchers and the starter how the execution ended."""
        self.db.projects.release(project.id, execution_id)
        finished = self.db.executions.get(execution_id)
        self._publish_execution(finished)
        if finished.status != "running":
            self.notifier.execution_event(finished.status, project, finished, starter_email,
                                          kind)

    def _give_back(self, kind: ExecutionKind, execution: Execution,
                   logger: ExecutionLogger) -> bool:
        """Put an execution whose worker is stopping back on its queue; False if it could not
        be (cancelled meanwhile)."""
        if not self.db.executions.requeue(execution.id):
            return False
        logger.log(f"The worker on {self.identity['host']} was stopped; the execution goes back "
                   "to its queue and starts again on another worker.", stage="queued",
                   level="WARNING")
        self._publish_execution(self.db.executions.get(execution.id))
        self.dispatch(execution.id, kind.queue)
        return True

    @contextlib.contextmanager
    def _beating(self, execution_id: str):
        """Heartbeat ``execution_id`` from a thread of its own while the block runs: while its
        worker process runs, while it exits, and while the supervisor saves and registers what
        it produced, however long a loaded machine or a slow storage makes each step (a beat
        only between two messages of the worker process let a healthy execution look dead
        to the sweepers once the last message was in)."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat_seconds):
                try:
                    self.db.executions.update(execution_id, heartbeat_at=utcnow())
                except Exception:  # noqa: BLE001 - a missed beat is retried at the next one
                    log.exception("Could not heartbeat execution %s", execution_id)

        beater = threading.Thread(target=beat, name=f"trainyard-beat-{execution_id}",
                                  daemon=True)
        beater.start()
        try:
            yield
        finally:
            done.set()
            beater.join()

    def _admit(self, execution: Execution, kind: ExecutionKind, limits: sandbox.Limits,
               logger: ExecutionLogger) -> bool:
        """Wait (``queued``, with the reason) until the execution may start: the sandbox
        isolates as ``SANDBOX=strict`` demands, and its memory limit fits beside the running
        executions' in the budget. False: it is no longer queued (cancelled), or can never
        start (then it is failed with the reason)."""
        told = None
        while True:
            reason = None
            refusal = None if kind.direct_storage else self.sandbox_report.refusal()
            if limits.memory_mb > self.memory_budget_mb:
                message = (f"Its memory limit ({sandbox.size_words(limits.memory_mb)}) is more "
                           f"than this server admits for executions "
                           f"({sandbox.size_words(self.memory_budget_mb)}); lower the project's "
                           "memory limit.")
                if self.db.executions.finish(execution.id, "failed", error=message):
                    logger.log(message, stage="queued", level="ERROR")
                return False
            with self._lock:
                used = sum(self._running_memory.values())
                if refusal:
                    reason = refusal
                elif used + limits.memory_mb > self.memory_budget_mb:
                    reason = (f"Waiting for memory: its limit of "
                              f"{sandbox.size_words(limits.memory_mb)} and the running "
                              f"executions' {sandbox.size_words(used)} exceed the "
                              f"{sandbox.size_words(self.memory_budget_mb)} this server "
                              "admits.")
                else:
                    self._running_memory[execution.id] = limits.memory_mb
                    return True
            if reason != told:
                told = reason
                self.db.executions.update(execution.id, waiting_reason=reason)
                logger.log(reason, stage="queued", level="WARNING")
                self._publish_execution(self.db.executions.get(execution.id))
            if self._stopping.wait(0.5):
                return False
            if self._handing_back.is_set() and self.dispatch:
                self.dispatch(execution.id, kind.queue)  # another worker may have room
                return False
            current = self.db.executions.get(execution.id)
            if current is None or current.status != "queued":
                return False

    def _payload(self, kind: ExecutionKind, execution: Execution, project: Project) -> dict:
        uri, credentials = self.resolver.location(project)
        payload = {"kind": execution.kind, "execution_id": execution.id,
                   "project": project.to_document(), "options": execution.options,
                   "storage_uri": uri, "credentials": credentials, "threads": self.threads}
        payload.update(kind.payload(self, execution, project))
        payload["run"] = f"{kind.run.__module__}:{kind.run.__qualname__}"
        payload["sys_path"] = [entry for entry in sys.path if entry]
        return payload

    def _run_worker(self, kind: ExecutionKind, execution: Execution, project: Project,
                    logger: ExecutionLogger, limits: sandbox.Limits) -> tuple[str, object]:
        """Run the sandboxed worker process to its end; returns (status, result dict or
        message). Its files are staged in before and out after (unless the kind reaches the
        storage itself), and the watchdog stops it at the first limit it goes over."""
        payload = self._payload(kind, execution, project)
        report = self.sandbox_report
        isolate = report.mode != "off" and not kind.direct_storage
        scratch = self.scratch_root / execution.id
        shutil.rmtree(scratch, ignore_errors=True)
        staged = real = local = None
        if isolate:
            real = self.resolver.files(project)
            local_uri = (scratch / "storage").as_uri()
            (scratch / "storage").mkdir(parents=True, exist_ok=True)
            local = self.resolver.files_in(local_uri, None, project.slug)
            reads, writes = kind.sandbox_folders(payload)
            staged = staging.stage_in(real, local, reads, writes)
            payload.update(storage_uri=local_uri, credentials={})
            for key in [k for k in payload if k.endswith("_credentials")]:
                payload[key] = {}
        cancel = self._cancel.setdefault(execution.id, threading.Event())
        box_report = report if isolate else sandbox.SandboxReport(mode="off")
        try:
            box = sandbox.launch("thread_layer.sandbox_worker", payload, limits=limits,
                                 report=box_report, scratch=scratch, threads=self.threads,
                                 taken_uids=set(self._uids.values()))
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        if box.uid is not None:
            self._uids[execution.id] = box.uid
        self._procs[execution.id] = box
        watchdog = sandbox.Watchdog(box)
        outcome: tuple[str, object] | None = None
        breach: sandbox.Breach | None = None
        doing: list[str] = []
        last_beat = utcnow()
        try:
            while outcome is None:
                if cancel.is_set() or self._stopping.is_set():
                    box.kill()
                    return "cancelled", "Cancelled on request."
                if self._handing_back.is_set():
                    box.kill()
                    return "handed_back", "The worker was stopped."
                try:
                    messages = box.messages(0.1)
                except ValueError as exc:
                    box.kill()
                    outcome = ("failed", f"Stopped: {exc}")
                    break
                if messages is None:
                    break
                for message in messages:
                    outcome = self._handle(message, execution, logger, doing)
                    if outcome is not None:
                        break
                breach = watchdog.check() if outcome is None else None
                if breach is not None:
                    box.kill()
                    break
                if utcnow() - last_beat >= timedelta(seconds=self.heartbeat_seconds):
                    last_beat = utcnow()  # the beats themselves: _beating, from a thread
                    self.db.executions.update(execution.id, usage=dict(box.usage))
                    current = self.db.executions.get(execution.id)
                    if current is not None and current.cancel_requested:
                        cancel.set()
            deadline = time.monotonic() + 30
            while box.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if box.proc.poll() is None:
                box.kill()
        finally:
            box.kill() if box.proc.poll() is None else None
            box.close()
            usage = watchdog.final()
            self.db.executions.update(execution.id, usage=usage)
            self._uids.pop(execution.id, None)
        try:
            if breach is None and outcome is None:
                breach = sandbox.exit_breach(box.proc.returncode, limits, usage)
            if breach is None and outcome is not None and outcome[0] == "failed" \
                    and len(outcome) > 2:
                breach = _breach_of_code(outcome[2], limits, usage)
            if breach is not None:
                return "failed", self._limit_message(breach, execution, kind, doing)
            if outcome is not None and outcome[0] == "failed" and len(outcome) > 2 \
                    and outcome[2] == "network" and box_report.network:
                return "failed", ("Stopped: it tried to open a network connection, and "
                                  "executions have no network (the sandbox's network "
                                  "namespace); the server stages the files it needs.")
            if outcome is None and self.dispatch and box.proc.returncode is not None \
                    and -box.proc.returncode in worker.SUPERVISOR_SIGNALS:
                return "handed_back", "The worker was stopped."
            if outcome is None:
                return "failed", (f"The worker process stopped unexpectedly (exit code "
                                  f"{box.proc.returncode}); the machine may have run out of "
                                  "memory.")
            if staged is not None:
                uploaded, deleted = staging.stage_out(real, local, staged)
                logger.log(f"Stored {uploaded} files from the sandbox"
                           + (f", removed {deleted}" if deleted else "") + ".",
                           stage=self.db.executions.get(execution.id).stage)
            return outcome[0], outcome[1]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _limit_message(self, breach: sandbox.Breach, execution: Execution,
                       kind: ExecutionKind, doing: list[str]) -> str:
        """The plain-words reason of an execution a limit stopped."""
        stage = (self.db.executions.get(execution.id) or execution).stage
        where = f" while {doing[-1]}" if doing else (
            f" while {stage}" if stage and stage not in ("queued", "done") else "")
        spec = sandbox.SPEC_OF[breach.limit]
        advice = {
            "memory_mb": ("lower the candidate set or raise the project's memory limit"
                          if kind.name == "train" else
                          "use smaller batch files or raise the project's memory limit"),
            "address_space_mb": "raise the project's address-space limit",
            "cpu_seconds": "set a shorter time budget or raise the project's CPU time limit",
            "wall_seconds": "set a shorter time budget or raise the project's wall-clock limit",
            "processes": "raise the project's process limit",
            "open_files": "raise the project's open-files limit",
            "written_mb": "write less or raise the project's written-bytes limit",
        }[breach.limit]
        unit = f" {spec.unit}" if spec.unit else ""
        return (f"Stopped: {breach.words()}{where}; {advice} "
                f"({breach.limit} = {breach.value}{unit}).")

    def _handle(self, message: tuple, execution: Execution, logger: ExecutionLogger,
                doing: list[str] | None = None) -> tuple | None:
        """One message of the worker (JSON, so anything malformed is ignored)."""
        try:
            return self._handle_one(message, execution, logger, doing)
        except (ValueError, TypeError, IndexError):
            log.warning("Ignored a malformed message of execution %s", execution.id)
            return None

    def _handle_one(self, message: tuple, execution: Execution, logger: ExecutionLogger,
                    doing: list[str] | None) -> tuple | None:
        tag = message[0]
        if tag == "doing" and doing is not None:
            doing.append(str(message[1])[:200])
        elif tag == "log":
            _, level, stage, text = message
            logger.log(text, stage=stage, level=level)
        elif tag == "progress":
            _, stage, percent = message
            self.db.executions.update(execution.id, stage=stage,
                                      progress=max(0, min(100, int(percent))))
            self._publish_execution(self.db.executions.get(execution.id))
        elif tag == "records":  # prediction records from a batch prediction, in chunks
            # the worker is not trusted: its records can only be of its own execution
            self.db.prediction_records.add_many([
                {**doc, "project_id": execution.project_id, "execution_id": execution.id,
                 "source": "batch"} for doc in message[1] if isinstance(doc, dict)])
        elif tag == "result":
            return "succeeded", message[1] if isinstance(message[1], dict) else {}
        elif tag == "error":
            return "failed", str(message[2]), str(message[1])
        return None

    # -- helpers ---------------------------------------------------------------------------

    def _logger(self, execution: Execution) -> ExecutionLogger:
        return ExecutionLogger(self.db.logs, self.publish, execution.id, execution.project_id,
                               last_seq=self.db.logs.last_seq(execution.id))

    def _publish_execution(self, execution: Execution | None) -> None:
        if execution is None:
            return
        try:
            self.publish("execution", execution.to_public(), project_room(execution.project_id))
        except Exception:  # noqa: BLE001 - watchers must not break executions
            log.exception("Could not publish the state of %s", execution.id)

    def _email_of(self, user_id: str | None) -> str | None:
        user = self.db.users.get(user_id) if user_id else None
        return user.email if user else None
