"""Python logging for the server: one format, and secrets masked before anything is written."""

from __future__ import annotations

import logging
import re
import sys

_SECRET_PATTERNS = [
    # key=value / "key": "value" pairs whose key names a secret
    re.compile(r"(?i)((?:password|passwd|secret|token|api[_-]?key|account[_-]?key|"
               r"accountkey|sharedaccesssignature|sig|private[_-]?key)[\"']?\s*[:=]\s*[\"']?)"
               r"([^\s\"',;&]+)"),
    # credentials inside URLs: scheme://user:password@host
    re.compile(r"(://[^/\s:@]+:)([^@\s/]+)(@)"),
]
MASK = "--------"


def redact(text: str) -> str:
    """Mask anything in ``text`` that looks like a secret."""
    text = _SECRET_PATTERNS[0].sub(lambda m: m.group(1) + MASK, text)
    return _SECRET_PATTERNS[1].sub(lambda m: m.group(1) + MASK + m.group(3), text)


class RedactingFormatter(logging.Formatter):
    """A formatter that masks secrets in the final line (message, arguments and traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "INFO") -> None:
    """Send Trainyard's server log to stderr with secrets masked (idempotent)."""
    root = logging.getLogger()
    if any(getattr(h, "_trainyard", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._trainyard = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
