"""One storage interface, one class per backend, chosen by URI scheme."""

from cloud_storage.base import ListPage, ObjectInfo, Storage, check_key, join_key
from cloud_storage.configuration import ConfigField
from cloud_storage.registry import (
    backend_for,
    known_schemes,
    open_storage,
    register_backend,
    storage_kinds,
)

__all__ = [
    "ConfigField",
    "ListPage",
    "ObjectInfo",
    "Storage",
    "backend_for",
    "check_key",
    "join_key",
    "known_schemes",
    "open_storage",
    "register_backend",
    "storage_kinds",
]
