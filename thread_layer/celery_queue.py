"""Executions on Celery workers, for deployments with several machines.

With ``CELERY_BROKER_URL`` set, the web process queues each execution on the broker instead of
running it itself; ``python -m app worker`` processes take them and run them exactly as the
embedded runner does (a supervised worker process per execution). The workers publish live logs
through ``SOCKETIO_MESSAGE_QUEUE`` so that every web process's browsers see them.
"""

from __future__ import annotations

RUN_TASK = "trainyard.run_execution"
QUEUE = "trainyard-executions"


def make_celery(broker_url: str):
    """A Celery app on ``broker_url`` configured for long, at-most-one-at-a-time tasks."""
    from celery import Celery

    celery = Celery("trainyard", broker=broker_url)
    celery.conf.update(
        task_serializer="json", accept_content=["json"], task_default_queue=QUEUE,
        # A task is acknowledged when it ends, and each worker thread takes one at a time.
        task_acks_late=True, worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        task_ignore_result=True)
    return celery


def broker_dispatcher(celery):
    """A function that queues an execution id on the broker."""
    def dispatch(execution_id: str) -> None:
        celery.send_task(RUN_TASK, args=[execution_id], queue=QUEUE)
    return dispatch


def run_worker(app, concurrency: int) -> None:
    """Run a Celery worker that executes Trainyard executions with ``app``'s services."""
    celery = make_celery(app.config["CELERY_BROKER_URL"])
    runner = app.extensions["trainyard"].runner

    @celery.task(name=RUN_TASK)
    def run_execution(execution_id: str) -> None:
        with app.app_context():
            runner.run(execution_id)

    runner.start_sweeper()
    # Threads, not prefork: each execution already runs in a process of its own, and the
    # prefork pool's daemonic children could not start one.
    celery.worker_main(["worker", "--pool", "threads", "--concurrency", str(concurrency),
                        "--queues", QUEUE, "--loglevel", "INFO", "--without-gossip",
                        "--without-mingle", "--hostname", f"trainyard@{runner.identity['host']}"
                        f"-{runner.identity['pid']}"])
