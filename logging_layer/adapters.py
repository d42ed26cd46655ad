"""Adapters around the private internals of pinned libraries that hot paths still use.

Three hot paths are faster for reaching past a library's public interface: uploads read from
gunicorn's request body and socket (``controllers/spliced_body.py``), GCS transfers streamed through
the storage client's authorized session (``cloud_storage/gcs.py``), and real-time predictions
from scikit-learn's raw predictions (``project_library/serving.py``). Each goes through an
:class:`Adapter`, which probes the installed library once per process (at start-up:
``create_app`` calls :func:`check_all`; or on first use, for a process that never builds the
app) with a cheap structural or behavioural check of exactly what the code assumes. When the
probe fails, because an upgrade changed the internal, the adapter is unusable: its caller takes
the library's public path instead (slower, the same answers), and one log line says so.

The ``PUBLIC_PATHS`` setting (adapter names, comma-separated, or ``all``) turns adapters off
without a probe: to rule one out when something misbehaves, or to measure the public path.

This module lives in ``logging_layer`` because every layer may import it, and what it adds to
each adapter is the check made once and the line logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

logger = logging.getLogger("trainyard.adapters")

_ADAPTERS: dict[str, Adapter] = {}
_turned_off: frozenset[str] = frozenset()


class Adapter:
    """One private internal of one library, and whether this process may use it.

    ``probe`` runs once, returns None when the internal is what the code assumes and otherwise
    says (briefly) what differs; an exception it raises counts as a failure too. ``internal``
    names what is used and ``fallback`` what is used instead, for the log line.
    """

    def __init__(self, name: str, probe: Callable[[], str | None], *, internal: str,
                 fallback: str):
        self.name, self.internal, self.fallback = name, internal, fallback
        self._probe = probe
        self._usable: bool | None = None
        self._lock = threading.Lock()
        _ADAPTERS[name] = self

    @property
    def usable(self) -> bool:
        """Whether the private path may be used (probed on the first call in the process)."""
        usable = self._usable
        return self.check() if usable is None else usable

    def check(self) -> bool:
        """Probe the installed library (only the first time) and return :attr:`usable`."""
        with self._lock:
            if self._usable is None:
                if self.name in _turned_off or "all" in _turned_off:
                    why = "turned off by PUBLIC_PATHS"
                else:
                    try:
                        why = self._probe()
                    except Exception as exc:  # noqa: BLE001 - any surprise means: do not use it
                        why = f"{type(exc).__name__}: {exc}"
                self._usable = why is None
                if why is not None:
                    logger.warning("%s: not using %s (%s); using %s instead", self.name,
                                   self.internal, why, self.fallback)
            return self._usable

    def forget(self) -> None:
        """Probe again on next use (after the library or the setting changed)."""
        with self._lock:
            self._usable = None


def adapters() -> dict[str, Adapter]:
    """Every adapter of the modules imported so far, by name."""
    return dict(_ADAPTERS)


def turn_off(names: Iterable[str] | str) -> None:
    """The ``PUBLIC_PATHS`` setting: the adapters named (or ``all``; a list, or one string
    of comma-separated names) take the public path. Adapters whose state this changes are
    probed again on next use."""
    global _turned_off
    if isinstance(names, str):
        names = names.split(",")
    names = frozenset(n.strip() for n in names if n.strip())
    if names == _turned_off:
        return
    changed = names ^ _turned_off
    _turned_off = names
    for adapter in _ADAPTERS.values():
        if adapter.name in changed or "all" in changed:
            adapter.forget()


def check_all() -> dict[str, bool]:
    """Probe every adapter not yet probed in this process: ``{name: usable}``."""
    return {name: adapter.check() for name, adapter in adapters().items()}
