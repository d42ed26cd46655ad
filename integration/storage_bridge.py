"""The bridge from a project's storage settings to a storage client and its file manager."""

from __future__ import annotations

import threading

from cloud_storage import Storage, open_storage
from entity.project import Project
from integration.file_manager import ProjectFiles


class StorageResolver:
    """Gives each project its storage; clients are built once per process and reused.

    Args:
        default_uri: the platform's default storage (``STORAGE_URI``), used by projects that
            name no storage connection.
    """

    def __init__(self, default_uri: str):
        self.default_uri = default_uri
        self._cache: dict[tuple, Storage] = {}
        self._lock = threading.Lock()

    def location(self, project: Project) -> tuple[str, dict]:
        """The storage URI and credentials of ``project`` (what a worker process needs)."""
        return self.default_uri, {}

    def storage(self, uri: str, credentials: dict | None = None) -> Storage:
        key = (uri, tuple(sorted((credentials or {}).items())))
        with self._lock:
            if key not in self._cache:
                self._cache[key] = open_storage(uri, credentials)
            return self._cache[key]

    def files(self, project: Project) -> ProjectFiles:
        """The file manager of ``project``."""
        uri, credentials = self.location(project)
        return ProjectFiles(self.storage(uri, credentials), project.slug)
