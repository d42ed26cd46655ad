"""The execution logger: every line is persisted first, then published to the project's room."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from entity.log_record import LEVELS, LogRecord, LogRepository
from exception_layer import DuplicateKey

#: publish(event, payload, room)
Publisher = Callable[[str, dict, str], None]

server_log = logging.getLogger("trainyard.executions")


def project_room(project_id: str) -> str:
    """The Socket.IO room of a project: everyone watching it."""
    return f"project:{project_id}"


class ExecutionLogger:
    """Writes the log of one execution.

    Args:
        logs: where lines are persisted.
        publish: how a persisted line reaches the browsers (Socket.IO emit, or a no-op).
        execution_id, project_id: whose log this is.
        last_seq: the last sequence number already written (to continue a log).
    """

    def __init__(self, logs: LogRepository, publish: Publisher, execution_id: str,
                 project_id: str, last_seq: int = 0):
        self.logs = logs
        self.publish = publish
        self.execution_id = execution_id
        self.project_id = project_id
        self._seq = last_seq
        self._lock = threading.Lock()

    def log(self, message: str, *, stage: str, level: str = "INFO") -> LogRecord:
        """Persist one line, then publish it to the project's room."""
        level = level if level in LEVELS else "INFO"
        with self._lock:
            for _attempt in range(5):
                self._seq += 1
                record = LogRecord(execution_id=self.execution_id, project_id=self.project_id,
                                   seq=self._seq, level=level, stage=stage,
                                   message=str(message))
                try:
                    self.logs.add(record)
                    break
                except DuplicateKey:
                    # Another writer (a shutdown marking the execution interrupted while its
                    # supervisor still logs) took this number: continue after the last one.
                    self._seq = self.logs.last_seq(self.execution_id)
            else:
                raise DuplicateKey("Could not find a free log sequence number.")
        server_log.log(logging.getLevelName(level), "[%s] %s: %s", self.execution_id, stage,
                       message)
        try:
            self.publish("log", record.to_public(), project_room(self.project_id))
        except Exception:  # noqa: BLE001 - a watcher problem must never stop an execution
            server_log.exception("Could not publish a log line of %s", self.execution_id)
        return record
