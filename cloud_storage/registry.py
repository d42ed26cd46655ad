"""Backends registered by URI scheme; ``open_storage`` picks the class for a URI, and
``storage_kinds`` lists the backends an admin can create a connection to."""

from __future__ import annotations

import importlib
import sys
from urllib.parse import urlsplit

from cloud_storage.base import Storage, logger
from exception_layer import InvalidStorageUri

_BACKENDS: dict[str, type[Storage]] = {}
#: the backends that declare a connection kind, by kind, in the order they were registered
_KINDS: dict[str, type[Storage]] = {}


def register_backend(cls: type[Storage], *schemes: str) -> type[Storage]:
    """Register ``cls`` for its ``scheme`` (and any extra ``schemes``), and for its connection
    ``kind`` when it declares one."""
    for scheme in (cls.scheme, *schemes):
        _BACKENDS[scheme] = cls
    if cls.kind:
        _KINDS[cls.kind] = cls
    return cls


def storage_kinds() -> dict[str, type[Storage]]:
    """The kinds of storage connection, each with its backend class (which declares the
    connection's label and fields): the built-in backends first, in their usual order."""
    _load_builtin_backends()
    order = {module: position for position, module in enumerate(_BUILTIN_MODULES)}
    kinds = sorted(_KINDS.items(),
                   key=lambda item: order.get(item[1].__module__, len(order)))
    return dict(kinds)


def known_schemes() -> list[str]:
    _load_builtin_backends()
    return sorted(_BACKENDS)


def backend_for(uri: str) -> type[Storage]:
    """The backend class for ``uri``; the error lists the known schemes."""
    _load_builtin_backends()
    scheme = urlsplit(uri).scheme.lower() if isinstance(uri, str) else ""
    if scheme not in _BACKENDS:
        raise InvalidStorageUri(
            f"Unknown storage scheme {scheme + '://' if scheme else '(none)'}; "
            f"known schemes: {', '.join(s + '://' for s in sorted(_BACKENDS))}."
        )
    return _BACKENDS[scheme]


def open_storage(uri: str, credentials: dict | None = None, client=None) -> Storage:
    """Build the storage for ``uri`` with its backend class."""
    return backend_for(uri)(uri, credentials=credentials, client=client)


_BUILTIN_MODULES = ("cloud_storage.local", "cloud_storage.s3", "cloud_storage.azure_blob",
                    "cloud_storage.gcs")


def _load_builtin_backends() -> None:
    # Importing a backend module registers it. Each imports its SDK inside the class, so a
    # missing cloud SDK only matters when that cloud is used; a module that cannot be imported
    # at all is left out (its scheme is then reported as unknown).
    for module in _BUILTIN_MODULES:
        if module in sys.modules:
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            logger.warning("Storage backend %s is not available: %s", module, exc)
