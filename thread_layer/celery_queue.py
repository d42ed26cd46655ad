"""Executions on Celery workers, for deployments with several machines.

With ``CELERY_BROKER_URL`` set, the web process queues each execution on the broker instead of
running it itself; ``python -m app worker`` processes take them and run them exactly as the
embedded runner does (a supervised worker process per execution). The workers publish live logs
through ``SOCKETIO_MESSAGE_QUEUE`` so that every web process's browsers see them.

Each execution kind names the queue it waits in (:data:`QUEUES`): trainings in ``train``,
batch predictions in ``predict``, monitoring jobs in ``monitor``. A worker consumes the queues
it is given (``python -m app worker --queues predict``), so a long training never delays a
prediction that a worker of its own takes.

A worker asked to stop (SIGTERM, Celery's warm shutdown) takes no new execution and lets the
running ones finish for ``WORKER_STOP_GRACE_SECONDS``; what is still running then is handed
back: its process is stopped, the execution goes back to ``queued`` and onto its queue, where
another worker takes it from the start. Nothing is marked interrupted for a stop that was asked.
"""

from __future__ import annotations

import logging
import threading

RUN_TASK = "trainyard.run_execution"
#: the queues of executions, by the name kinds and workers use
QUEUES = ("train", "predict", "monitor")
#: the broker queue before there were several (still consumed, so nothing queued is stranded)
LEGACY_QUEUE = "trainyard-executions"

log = logging.getLogger(__name__)


def broker_queue(queue: str) -> str:
    """The broker's name of a queue of :data:`QUEUES`."""
    return f"trainyard-{queue}"


def parse_queues(value: str | None) -> tuple[str, ...]:
    """The queues named in ``value`` (comma-separated; empty: all of them).

    Raises:
        ValueError: a name that is not a queue (the message lists the queues).
    """
    names = tuple(dict.fromkeys(n.strip() for n in (value or "").split(",") if n.strip()))
    unknown = [n for n in names if n not in QUEUES]
    if unknown:
        raise ValueError(f"unknown queue {', '.join(unknown)}; the queues are "
                         f"{', '.join(QUEUES)}")
    return names or QUEUES


def make_celery(broker_url: str):
    """A Celery app on ``broker_url`` configured for long, at-most-one-at-a-time tasks."""
    from celery import Celery

    celery = Celery("trainyard", broker=broker_url)
    celery.conf.update(
        task_serializer="json", accept_content=["json"],
        task_default_queue=broker_queue(QUEUES[0]),
        # A task is acknowledged when it ends, and each worker thread takes one at a time.
        task_acks_late=True, worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        task_ignore_result=True)
    return celery


def broker_dispatcher(celery):
    """A function that queues an execution id on its kind's queue of the broker."""
    def dispatch(execution_id: str, queue: str) -> None:
        celery.send_task(RUN_TASK, args=[execution_id], queue=broker_queue(queue))
    return dispatch


def run_worker(app, concurrency: int, queues: tuple[str, ...], grace_seconds: float) -> None:
    """Run a Celery worker that executes the Trainyard executions of ``queues`` with ``app``'s
    services; on a requested stop, running executions have ``grace_seconds`` to finish
    before they are handed back."""
    from celery import signals

    celery = make_celery(app.config["CELERY_BROKER_URL"])
    runner = app.extensions["trainyard"].runner
    runner.dispatch = broker_dispatcher(celery)  # hand-backs go onto the broker again

    @celery.task(name=RUN_TASK)
    def run_execution(execution_id: str) -> None:
        with app.app_context():
            runner.run(execution_id)

    def stopping(sig=None, how=None, **_kwargs) -> None:
        log.warning("Worker stopping (%s, %s): running executions have %s s to finish, then "
                    "go back to their queue.", sig, how, grace_seconds)
        timer = threading.Timer(grace_seconds, runner.hand_back)
        timer.daemon = True
        timer.start()

    signals.worker_shutting_down.connect(stopping, weak=False)
    runner.start_sweeper()
    consumed = [broker_queue(q) for q in queues]
    if "train" in queues:
        consumed.append(LEGACY_QUEUE)
    # The retraining scheduler runs here too, under the same database lease as in the web
    # processes (one fires, whichever holds it): no beat process to deploy, and the schedules
    # stay per-project documents that every process reads, not a beat schedule file.
    app.extensions["scheduler"].start()
    # Threads, not prefork: each execution already runs in a process of its own, and the
    # prefork pool's daemonic children could not start one.
    celery.worker_main(["worker", "--pool", "threads", "--concurrency", str(concurrency),
                        "--queues", ",".join(consumed), "--loglevel", "INFO",
                        "--without-gossip", "--without-mingle",
                        "--hostname", f"trainyard-{'-'.join(queues)}@{runner.identity['host']}"
                        f"-{runner.identity['pid']}"])
