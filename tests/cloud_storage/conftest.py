"""The ``storage`` fixture: every contract test runs once per storage backend.

Each backend is one factory in ``STORAGE_FACTORIES``: a context manager that takes the test's
``tmp_path`` and yields a fresh, empty :class:`Storage` (its own root folder, bucket prefix or
container), cleaning up on exit. The cloud backends run against real emulator servers
(``tests/emulators.py``: moto_server, Azurite, gcp-storage-emulator), started once per session;
a missing emulator fails with the command that installs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from cloud_storage import Storage, open_storage
from tests.emulators import (  # noqa: F401 - the *_server names are fixtures
    GCS_PARALLELISM,
    azure_storage,
    azurite_server,
    gcs_server,
    gcs_storage,
    moto_server,
    s3_storage,
)


@contextmanager
def local_storage(tmp_path: Path) -> Iterator[Storage]:
    """A directory of its own under the test's tmp_path (not created until first written)."""
    yield open_storage("file://" + str(tmp_path / "root"))


StorageFactory = Callable[[Path], AbstractContextManager[Storage]]
STORAGE_FACTORIES: dict[str, StorageFactory] = {
    "local": local_storage,
    "s3": s3_storage,
    "azure": azure_storage,
    "gcs": gcs_storage,
}


#: one parameter per backend; those on an emulator carry the ``emulator`` marker
BACKEND_PARAMS = [pytest.param(name, marks=() if name == "local" else pytest.mark.emulator)
                  for name in sorted(STORAGE_FACTORIES)]
#: the session fixture of each cloud backend's emulator server (tests/emulators.py)
EMULATOR_FIXTURES = {"s3": "moto_server", "azure": "azurite_server", "gcs": "gcs_server"}


@pytest.fixture(params=BACKEND_PARAMS)
def storage(request, tmp_path) -> Iterator[Storage]:
    """A fresh, empty storage of each registered backend."""
    with STORAGE_FACTORIES[request.param](tmp_path) as fresh:
        yield fresh


def upload_many(storage: Storage, items: dict[str, bytes] | Iterable[str]) -> None:
    """Upload many small objects quickly (see the ``put_many`` fixture)."""
    pairs = list(items.items() if isinstance(items, dict)
                 else ((k, k.encode()) for k in items))
    if storage.scheme == "file":
        for key, data in pairs:
            storage.upload_bytes(key, data)
        return
    with ThreadPoolExecutor(GCS_PARALLELISM if storage.scheme == "gs" else 8) as pool:
        list(pool.map(lambda kv: storage.upload_bytes(*kv), pairs))


@pytest.fixture(scope="session", params=BACKEND_PARAMS)
def crowded_storage(request, tmp_path_factory):
    """One storage per backend holding 1,105 objects, shared by the read-only listing tests
    (filling it takes seconds on an emulator): ``(storage, files, nested)``, where ``files`` are
    1,100 files directly in many/ and ``nested`` 5 sub-folders' files."""
    files = [f"many/{i:04d}.txt" for i in range(1100)]
    nested = [f"many/sub{j}/inner.txt" for j in range(5)]
    if request.param in EMULATOR_FIXTURES:
        # Depend on the emulator's own fixture, so that pytest stops the server only after
        # this storage has been emptied (the fixtures' teardown order follows what each uses).
        request.getfixturevalue(EMULATOR_FIXTURES[request.param])
    with STORAGE_FACTORIES[request.param](tmp_path_factory.mktemp(request.param)) as storage:
        upload_many(storage, {key: b"x" for key in files + nested})
        yield storage, files, nested


@pytest.fixture
def put_many():
    """Upload many small objects quickly: ``put_many(storage, {key: bytes})``, or a list of
    keys (each object then holds its own key).

    Network backends upload 8 at a time (the single-threaded GCS emulator fewer); local uploads
    go one after the other, since a local upload is a file creation and a rename, which threads
    only slow down (GIL, directory lock).
    """

    return upload_many
