"""MongoDB backend of the document store, through pymongo.

The client is created on first use and per process (pymongo is not fork-safe). MongoDB's own
guarantees carry the contract: single-document updates are atomic and unique indexes hold.
``mongomock://`` selects mongomock for the contract tests (no MongoDB server can run there).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

from entity.store import SCAN_BATCH, Collection, DocumentStore, Path, path_of, pick
from exception_layer import DuplicateKey


class MongoCollection(Collection):
    def __init__(self, store: MongoStore, name: str):
        self.store, self.name = store, name

    @property
    def _coll(self):
        return self.store.database()[self.name]

    def insert(self, doc: dict) -> None:
        from pymongo.errors import DuplicateKeyError

        try:
            with self.store.write_lock:
                self._coll.insert_one(dict(doc))
        except DuplicateKeyError as exc:
            raise DuplicateKey() from exc

    def insert_many(self, docs) -> None:
        from pymongo.errors import BulkWriteError, DuplicateKeyError

        if not docs:
            return
        try:
            with self.store.write_lock:
                self._coll.insert_many([dict(doc) for doc in docs], ordered=False)
        except (DuplicateKeyError, BulkWriteError) as exc:
            raise DuplicateKey() from exc

    def get(self, doc_id: str) -> dict | None:
        return self._coll.find_one({"_id": doc_id})

    def find(self, filter=None, *, sort=None, skip=0, limit=0) -> list[dict]:
        cursor = self._coll.find(filter or {})
        if sort:
            cursor = cursor.sort(list(sort))
        if skip:
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        return list(cursor)

    def scan(self, filter, fields: Sequence[Path], *, batch: int = SCAN_BATCH):
        # The server sends only the top-level fields named; one cursor streams every batch.
        paths = [path_of(f) for f in fields]
        projection = {p[0]: 1 for p in paths} | ({"_id": 1} if ("_id",) in paths else
                                                   {"_id": 0})
        cursor = self._coll.find(filter or {}, projection).sort("_id", 1).batch_size(batch)
        chunk: list[tuple] = []
        for doc in cursor:
            chunk.append(pick(doc, paths))
            if len(chunk) >= batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def count(self, filter=None) -> int:
        return self._coll.count_documents(filter or {})

    def update_one(self, filter: dict, changes: dict) -> bool:
        from pymongo.errors import DuplicateKeyError

        try:
            with self.store.write_lock:
                return self._coll.update_one(filter, {"$set": changes}).matched_count == 1
        except DuplicateKeyError as exc:  # a unique index would be broken
            raise DuplicateKey() from exc

    def update_many(self, filter: dict, changes: dict) -> int:
        from pymongo.errors import DuplicateKeyError

        try:
            with self.store.write_lock:
                return self._coll.update_many(filter, {"$set": changes}).matched_count
        except DuplicateKeyError as exc:
            raise DuplicateKey() from exc

    def delete_many(self, filter: dict) -> int:
        return self._coll.delete_many(filter).deleted_count

    def ensure_index(self, fields: Sequence[str], *, unique: bool = False) -> None:
        self._coll.create_index([(f, 1) for f in fields], unique=unique)


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_mongomock_server = None
_mongomock_lock = threading.Lock()


def _mongomock_client():
    """A mongomock client on this process's one in-memory server: like a real server, every
    store opened on a URL sees what the others wrote (tests write a database, then start an
    app on it)."""
    global _mongomock_server
    import mongomock
    from mongomock.store import ServerStore

    with _mongomock_lock:
        if _mongomock_server is None:
            _mongomock_server = ServerStore()
    return mongomock.MongoClient(_store=_mongomock_server)


class MongoStore(DocumentStore):
    """``mongodb://host/dbname`` (database ``trainyard`` when the URL names none)."""

    def __init__(self, url: str):
        self.url = url
        self.db_name = urlsplit(url).path.lstrip("/").split("?")[0] or "trainyard"
        self._client = None
        self._pid = None
        self._init_lock = threading.Lock()
        # mongomock's updates are not atomic across threads; a real server's are.
        self.write_lock = threading.Lock() if url.startswith("mongomock://") else _NoLock()

    def client(self):
        if self._client is None or self._pid != os.getpid():
            with self._init_lock:
                if self._client is None or self._pid != os.getpid():
                    if self.url.startswith("mongomock://"):
                        self._client = _mongomock_client()
                    else:
                        import pymongo

                        self._client = pymongo.MongoClient(self.url, tz_aware=True)
                    self._pid = os.getpid()
        return self._client

    def database(self):
        return self.client()[self.db_name]

    def collection(self, name: str) -> Collection:
        return MongoCollection(self, name)

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None
