"""Staging a sandboxed execution's files in and out of its scratch storage.

A sandboxed worker has no network and sees no storage but its scratch folder, so its supervisor
copies what it needs there first (``file://<scratch>/storage/<slug>/...``, the same layout as the
project's own storage, so the kinds' code is the same in and out of the sandbox), and afterwards
makes the project's folders that the kind writes match the scratch copy. It goes through the
storage layer (:class:`integration.file_manager.ProjectFiles`), so it is the same for the local
disk and the cloud backends.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from integration.file_manager import ProjectFiles


def _sha256(files: ProjectFiles, path: str) -> str:
    digest = hashlib.sha256()
    for chunk in files.iter_read(path):
        digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Staged:
    """What was copied in: path -> SHA-256, for the folders the kind may write."""

    writes: tuple[str, ...]
    manifest: dict[str, str] = field(default_factory=dict)
    files_in: int = 0
    bytes_in: int = 0


def stage_in(real: ProjectFiles, scratch: ProjectFiles, reads: tuple[str, ...],
             writes: tuple[str, ...]) -> Staged:
    """Copy every file below ``reads`` and ``writes`` from ``real`` into ``scratch`` (a path
    not ending in ``/`` is one file, read only)."""
    scratch.ensure_layout()
    staged = Staged(writes=tuple(writes))
    for folder in dict.fromkeys((*reads, *writes)):
        if not folder.endswith("/"):  # a single file
            if real.exists(folder):
                info = real.stat(folder)
                with real.open_read(folder) as stream:
                    scratch.upload(folder, stream, size=info.size)
                staged.files_in += 1
                staged.bytes_in += info.size
            continue
        scratch.make_folder(folder)
        if not real.folder_exists(folder):
            continue
        for info in real.list_files(folder):
            if info.key.endswith("/"):
                continue
            with real.open_read(info.key) as stream:
                scratch.upload(info.key, stream, size=info.size)
            staged.files_in += 1
            staged.bytes_in += info.size
            if any(info.key.startswith(w) for w in writes):
                staged.manifest[info.key] = _sha256(scratch, info.key)
    return staged


def stage_out(real: ProjectFiles, scratch: ProjectFiles, staged: Staged) -> tuple[int, int]:
    """Make ``real``'s write folders match ``scratch``: upload what is new or changed, then
    delete what the worker removed (so a moved file always exists somewhere). Returns
    (uploaded, deleted)."""
    uploaded = deleted = 0
    present: set[str] = set()
    for folder in staged.writes:
        if not folder.endswith("/") or not scratch.folder_exists(folder):
            continue
        for info in scratch.list_files(folder):
            if info.key.endswith("/"):
                continue
            present.add(info.key)
            if staged.manifest.get(info.key) == _sha256(scratch, info.key):
                continue
            with scratch.open_read(info.key) as stream:
                real.upload(info.key, stream, size=info.size)
            uploaded += 1
    for path in staged.manifest:
        if path not in present and real.exists(path):
            real.delete(path)
            deleted += 1
    return uploaded, deleted
