"""Moving a project's files from one storage to another, verified file by file."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from exception_layer import StorageError
from integration.file_manager import STANDARD_FOLDERS, ProjectFiles


class _HashingReader:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.stream.close()


def copy_project_files(source: ProjectFiles, target: ProjectFiles, reporter) -> dict:
    """Copy every file of the project from ``source`` to ``target`` and verify each copy.

    Each file is streamed (never held whole in memory), hashed on the way, and the copy's
    SHA-256 and size are checked against it. ``reporter`` gets a log line every few files and
    progress from 0 to 95.

    Returns:
        {"files": n, "bytes": total}
    Raises:
        StorageError: a copy does not match its source.
    """
    objects = source.list_files("")
    total_bytes = sum(o.size for o in objects) or 1
    reporter.log(f"Copying {len(objects)} files ({total_bytes / 1e6:.1f} MB) to the new "
                 "storage.", stage="copying")
    done_bytes = 0
    for index, info in enumerate(objects, start=1):
        reader = _HashingReader(source.open_read(info.key))
        try:
            target.upload(info.key, reader, size=info.size)
        finally:
            reader.close()
        copied = target.stat(info.key)
        if copied.size != reader.size or target.sha256(info.key) != reader.digest.hexdigest():
            raise StorageError(f"The copy of {info.key} does not match the original; the move "
                               "was stopped and the project stays on its old storage.")
        done_bytes += info.size
        if index == len(objects) or index % 20 == 0:
            reporter.log(f"Copied and verified {index} of {len(objects)} files.",
                         stage="copying")
        reporter.progress("copying", int(95 * done_bytes / total_bytes))
    for folder in STANDARD_FOLDERS:
        target.make_folder(folder)
    return {"files": len(objects), "bytes": sum(o.size for o in objects)}
