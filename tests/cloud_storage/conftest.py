"""The ``storage`` fixture: every contract test runs once per storage backend.

Each backend is one factory in ``STORAGE_FACTORIES``: a context manager that takes the test's
``tmp_path`` and yields a fresh, empty :class:`Storage` (its own root folder, bucket prefix or
container), cleaning up on exit. Adding a backend (``s3`` against moto_server, ``azure`` against
Azurite, ``gcs`` against gcp-storage-emulator) is one more factory and one more dict entry; a
factory whose emulator or SDK is missing calls ``pytest.skip`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from cloud_storage import Storage, open_storage


@contextmanager
def local_storage(tmp_path: Path) -> Iterator[Storage]:
    """A directory of its own under the test's tmp_path (not created until first written)."""
    yield open_storage("file://" + str(tmp_path / "root"))


StorageFactory = Callable[[Path], AbstractContextManager[Storage]]
STORAGE_FACTORIES: dict[str, StorageFactory] = {
    "local": local_storage,
}


@pytest.fixture(params=sorted(STORAGE_FACTORIES))
def storage(request, tmp_path) -> Iterator[Storage]:
    """A fresh, empty storage of each registered backend."""
    with STORAGE_FACTORIES[request.param](tmp_path) as fresh:
        yield fresh


@pytest.fixture
def put_many():
    """Upload many small objects quickly: ``put_many(storage, {key: bytes})``, or a list of
    keys (each object then holds its own key).

    Network backends upload 8 at a time; local uploads go one after the other, since a local
    upload is a file creation and a rename, which threads only slow down (GIL, directory lock).
    """

    def put(storage: Storage, items: dict[str, bytes] | Iterable[str]) -> None:
        pairs = list(items.items() if isinstance(items, dict)
                     else ((k, k.encode()) for k in items))
        if storage.scheme == "file":
            for key, data in pairs:
                storage.upload_bytes(key, data)
            return
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda kv: storage.upload_bytes(*kv), pairs))

    return put
