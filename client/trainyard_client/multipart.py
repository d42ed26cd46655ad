"""A ``multipart/form-data`` body that streams files from disk.

``requests`` reads every file of ``files=`` into memory before sending; this body is a file-like
object of known length instead, so ``requests`` sends it with a ``Content-Length`` in blocks,
reading each file as it goes (and reporting progress)."""

from __future__ import annotations

import mimetypes
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

#: progress(sent_bytes, total_bytes)
Progress = Callable[[int, int], None]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D") \
        .replace("\n", "%0A")


class MultipartFiles:
    """The body of an upload of ``paths`` as repeated form field ``field``.

    Args:
        paths: local files; each is sent under its own file name, in the field ``field``, or
            ``(field name, path)`` pairs for a form of several fields.
        field: the form field name.
        progress: called with (bytes sent, total bytes) as the body is read.
    """

    def __init__(self, paths: list[str | os.PathLike | tuple[str, str | os.PathLike]],
                 field: str = "files",
                 progress: Progress | None = None, block_size: int = 256 * 1024):
        self.boundary = f"trainyard-{uuid.uuid4().hex}"
        self.progress = progress
        self.block_size = block_size
        self._parts: list[tuple[bytes, Path | None]] = []
        for item in paths:
            name, path = (item[0], Path(item[1])) if isinstance(item, tuple) else \
                (field, Path(item))
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            head = (f"--{self.boundary}\r\n"
                    f'Content-Disposition: form-data; name="{_quote(name)}"; '
                    f'filename="{_quote(path.name)}"\r\n'
                    f"Content-Type: {ctype}\r\n\r\n").encode()
            self._parts.append((head, path))
            self._parts.append((b"\r\n", None))
        self._parts.append((f"--{self.boundary}--\r\n".encode(), None))
        self.length = sum(len(head) + (path.stat().st_size if path else 0)
                          for head, path in self._parts)
        self.sent = 0
        self._chunks = self._generate()
        self._buffer = b""

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self.length

    def _generate(self) -> Iterator[bytes]:
        for head, path in self._parts:
            yield head
            if path is not None:
                with open(path, "rb") as handle:
                    while block := handle.read(self.block_size):
                        yield block

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the body (all that is left when ``size`` < 0)."""
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        self.sent += len(data)
        if self.progress is not None and data:
            self.progress(self.sent, self.length)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while data := self.read(self.block_size):
            yield data
