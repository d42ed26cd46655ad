"""How the ML work reports back while it runs: log lines, progress, cancellation."""

from __future__ import annotations

from typing import Protocol

from exception_layer import PlatformError


class Reporter(Protocol):
    """Where a training or prediction reports to (a pipe to the supervisor, a test list...)."""

    def log(self, message: str, *, stage: str, level: str = "INFO") -> None:
        """One log line of ``stage`` (validating, loading, preprocessing, training, ...)."""

    def progress(self, stage: str, percent: int) -> None:
        """The execution is in ``stage``, ``percent`` (0-100) done overall."""


class NoBatchFiles(PlatformError):
    """There is nothing to train on or predict from."""

    code = "no_batch_files"
    status = 422


class AllFilesInvalid(PlatformError):
    """Every batch file broke the schema."""

    code = "all_files_invalid"
    status = 422


class TrainingFailed(PlatformError):
    """The data could not be turned into a model (e.g. a single class, too few rows)."""

    code = "training_failed"
    status = 422


