"""A project's root is a folder that the project alone owns.

Roots are compared as storage locations (:meth:`cloud_storage.Storage.location`), whatever
their backend: a project may start, or move, only into an empty folder that lies neither inside
nor around another project's root, nor (on a storage connection) inside or around the default
storage. Deleting a project removes only what lies under its own root, and nothing where roots
overlap (databases older than these checks may hold such projects).
"""

from __future__ import annotations

from collections.abc import Iterable

from entity.project import Project
from exception_layer import PlatformError
from integration.storage_bridge import StorageResolver


def overlaps(location: str, other: str) -> bool:
    """Whether one of two locations (each ending in ``/``) holds the other."""
    return location.startswith(other) or other.startswith(location)


def _other_roots(resolver: StorageResolver, projects: Iterable[Project],
                 skip: str | None = None) -> list[str]:
    roots = []
    for project in projects:
        if project.id == skip:
            continue
        try:
            roots.append(resolver.root_location(project.storage_connection_id, project.slug))
        except PlatformError:  # its connection is gone: nothing of it can be reached
            continue
    return roots


def root_refusal(resolver: StorageResolver, projects: Iterable[Project],
                 connection_id: str | None, slug: str) -> str | None:
    """Why the folder ``slug/`` on ``connection_id`` (None: the default storage) cannot become
    a project's root, or None when it can. ``projects`` are all the projects there are (a
    project being moved among them: its current root counts as taken too).

    Raises:
        StorageError: the storage cannot be reached to see whether the folder is empty.
    """
    root = resolver.root_location(connection_id, slug)
    if connection_id and overlaps(root, resolver.default_location()):
        return ("This storage folder lies inside or around the platform's default storage; "
                "choose another name or storage.")
    if any(overlaps(root, other) for other in _other_roots(resolver, projects)):
        return ("This storage folder lies inside or around another project's folder; choose "
                "another name or storage.")
    if resolver.files_at(connection_id, slug).list_files(""):
        return (f"The storage already holds files under {slug}/; a project starts in an empty "
                "folder of its own.")
    return None


def delete_project_files(resolver: StorageResolver, projects: Iterable[Project],
                         project: Project) -> int:
    """Delete the files under ``project``'s root; returns how many were deleted.

    A root that lies inside or around another project's root or (on a connection) the default
    storage was made before roots were checked: what lies there cannot be told apart from what
    belongs to the others, so nothing of it is deleted.
    """
    root = resolver.root_location(project.storage_connection_id, project.slug)
    others = _other_roots(resolver, projects, skip=project.id)
    if project.storage_connection_id:
        others.append(resolver.default_location())
    if any(overlaps(root, other) for other in others):
        return 0
    return resolver.files(project).delete_all()
