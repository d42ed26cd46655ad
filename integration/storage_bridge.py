"""The bridge from a project's storage settings to a storage client and its file manager."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from cloud_storage import Storage, open_storage
from entity.project import Project
from entity.storage_connection import StorageConnectionRepository
from exception_layer import PlatformError, StorageError
from integration.credentials import SecretBox, storage_location
from integration.file_manager import ProjectFiles

logger = logging.getLogger(__name__)


class StorageResolver:
    """Gives each project its storage; clients are built once per process and reused.

    Args:
        default_uri: the platform's default storage (``STORAGE_URI``), used by projects that
            name no storage connection.
        connections: the stored storage connections.
        box: decrypts the connections' secrets.
    """

    def __init__(self, default_uri: str, connections: StorageConnectionRepository | None = None,
                 box: SecretBox | None = None):
        self.default_uri = default_uri
        self.connections = connections
        self.box = box
        self._cache: dict[tuple, Storage] = {}
        self._lock = threading.Lock()

    def location_of(self, connection_id: str | None) -> tuple[str, dict]:
        """The storage URI and credentials of a connection (None: the default storage)."""
        if not connection_id:
            return self.default_uri, {}
        connection = self.connections.get(connection_id) if self.connections else None
        if connection is None:
            raise StorageError("The storage connection of this project no longer exists.")
        return storage_location(connection, self.box)

    def location(self, project: Project) -> tuple[str, dict]:
        """The storage URI and credentials of ``project`` (what a worker process needs)."""
        return self.location_of(project.storage_connection_id)

    def storage(self, uri: str, credentials: dict | None = None) -> Storage:
        key = (uri, tuple(sorted((credentials or {}).items())))
        with self._lock:
            if key not in self._cache:
                self._cache[key] = open_storage(uri, credentials)
            return self._cache[key]

    def clear(self) -> None:
        """Drop every cached client (they are rebuilt on next use). Called when a connection
        changes or goes, so that clients holding its old credentials are not kept around; the
        cache key includes the credentials, so nothing would reuse them anyway."""
        with self._lock:
            self._cache.clear()

    def sweep_incomplete_uploads(self, older_than: timedelta) -> int:
        """Sweep the unfinished uploads older than ``older_than`` from every storage in use
        (the default one and each connection's); a storage that fails is logged and skipped.
        Returns how many were removed."""
        locations = [(self.default_uri, {})]
        for connection in self.connections.list() if self.connections else []:
            try:
                locations.append(self.location_of(connection.id))
            except PlatformError as exc:
                logger.warning("Not sweeping storage connection %s: %s", connection.id, exc)
        removed = 0
        for uri, credentials in locations:
            try:
                removed += self.storage(uri, credentials).sweep_incomplete_uploads(older_than)
            except PlatformError as exc:
                logger.warning("Could not sweep unfinished uploads from a storage: %s", exc)
        return removed

    def files(self, project: Project) -> ProjectFiles:
        """The file manager of ``project``."""
        uri, credentials = self.location(project)
        return ProjectFiles(self.storage(uri, credentials), project.slug)

    def files_at(self, connection_id: str | None, slug: str) -> ProjectFiles:
        uri, credentials = self.location_of(connection_id)
        return ProjectFiles(self.storage(uri, credentials), slug)

    def files_in(self, uri: str, credentials: dict | None, slug: str) -> ProjectFiles:
        """The file manager of project ``slug`` at a location given whole (a worker process
        gets its project's URI and credentials from its supervisor)."""
        return ProjectFiles(self.storage(uri, credentials or None), slug)

    def root_location(self, connection_id: str | None, slug: str) -> str:
        """Where the folder of project ``slug`` on ``connection_id`` is, as a location that
        compares across storages (:meth:`cloud_storage.Storage.location`)."""
        return self.storage(*self.location_of(connection_id)).location(f"{slug}/")

    def default_location(self) -> str:
        """The location of the default storage's root."""
        return self.storage(self.default_uri).location()
