"""A reporter for tests: it keeps what the ML work reports in lists."""

from __future__ import annotations


class ListReporter:
    """A :class:`project_library.reporting.Reporter` that keeps every log line and progress
    update in lists."""

    def __init__(self):
        self.lines: list[tuple[str, str, str]] = []
        self.progress_updates: list[tuple[str, int]] = []

    def log(self, message: str, *, stage: str, level: str = "INFO") -> None:
        self.lines.append((level, stage, message))

    def progress(self, stage: str, percent: int) -> None:
        self.progress_updates.append((stage, percent))
