"""Large test objects generated on the fly, so that no test holds one in memory."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

BLOCK = 64 * 1024


def generated_blocks(size: int) -> Iterator[bytes]:
    """``size`` bytes of deterministic, non-repeating content, one 64 KiB block at a time."""
    index = 0
    while size > 0:
        seed = hashlib.sha256(index.to_bytes(8, "big")).digest()
        block = (seed * (BLOCK // len(seed)))[:min(BLOCK, size)]
        size -= len(block)
        index += 1
        yield block


def generated_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for block in generated_blocks(size):
        digest.update(block)
    return digest.hexdigest()


class GeneratedStream(io.RawIOBase):
    """A readable raw stream over :func:`generated_blocks`.

    ``fail_after``: raise ``ConnectionResetError`` once that many bytes were read (a client that
    disconnects mid-upload).
    """

    def __init__(self, size: int, *, fail_after: int | None = None):
        super().__init__()
        self._blocks = generated_blocks(size)
        self._pending = memoryview(b"")
        self._fail_after = fail_after
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._fail_after is not None and self.position >= self._fail_after:
            raise ConnectionResetError("the client went away")
        if not self._pending:
            self._pending = memoryview(next(self._blocks, b""))
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.position += n
        return n
