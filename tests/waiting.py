"""Waiting in tests: on a condition, never for a fixed time.

``wait_until`` lives here rather than in ``tests/conftest.py`` so that modules that must not
import the app (``tests/emulators.py``) can use it too; ``tests.conftest`` re-exports it.
"""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float = 60, interval: float = 0.1, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value (returned), or fail after ``timeout``
    seconds with an AssertionError naming ``message``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
