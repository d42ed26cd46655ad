"""MongoDB backend of the document store, through pymongo.

The client is created on first use and per process (pymongo is not fork-safe). MongoDB's own
guarantees carry the contract: single-document updates are atomic and unique indexes hold.
``mongomock://`` selects mongomock for the contract tests (no MongoDB server can run there).

Text search uses a MongoDB text index (``$text``, every word as a quoted phrase so that all must
appear, best ``textScore`` first). mongomock does not implement ``$text`` at all (it raises
NotImplementedError, checked with mongomock 4.3): under ``mongomock://`` only, :meth:`search`
matches the words over the declared fields in Python, after the filter has run in mongomock.
That fallback is the test double's, never taken with a real server; the real-server variant of
the contract suite runs when ``TEST_MONGODB_URI`` names one. A server that refuses text
indexes (SecantusDB, which the tests start as their MongoDB) takes the same path, with a WARNING.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

from entity.store import (
    SCAN_BATCH,
    Collection,
    DocumentStore,
    Path,
    path_of,
    pick,
    search_terms,
)
from exception_layer import DuplicateKey

log = logging.getLogger("trainyard.store")


def _query(filter: dict | None) -> dict:
    """The contract's filter in MongoDB's words (``$contains`` is ``$all``, ``$overlaps`` is
    ``$in``, which on a list field matches any element)."""
    query = {}
    for name, cond in (filter or {}).items():
        if isinstance(cond, dict) and ("$contains" in cond or "$overlaps" in cond):
            cond = dict(cond)
            if "$contains" in cond:
                cond["$all"] = list(cond.pop("$contains"))
            if "$overlaps" in cond:
                cond["$in"] = list(cond.pop("$overlaps"))
        query[name] = cond
    return query


def _words_of(doc: dict, fields) -> set[str]:
    words: set[str] = set()
    for name in fields:
        value = doc.get(name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                words.update(search_terms(item) if len(item) < 10_000 else
                             [w.lower() for w in item.split()])
    return words


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
        cursor = self._coll.find(_query(filter))
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
        cursor = self._coll.find(_query(filter), projection).sort("_id", 1).batch_size(batch)
        chunk: list[tuple] = []
        for doc in cursor:
            chunk.append(pick(doc, paths))
            if len(chunk) >= batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def count(self, filter=None) -> int:
        return self._coll.count_documents(_query(filter))

    def update_one(self, filter: dict, changes: dict) -> bool:
        from pymongo.errors import DuplicateKeyError

        try:
            with self.store.write_lock:
                return self._coll.update_one(_query(filter), {"$set": changes}).matched_count == 1
        except DuplicateKeyError as exc:  # a unique index would be broken
            raise DuplicateKey() from exc

    def update_many(self, filter: dict, changes: dict) -> int:
        from pymongo.errors import DuplicateKeyError

        try:
            with self.store.write_lock:
                return self._coll.update_many(_query(filter), {"$set": changes}).matched_count
        except DuplicateKeyError as exc:
            raise DuplicateKey() from exc

    def delete_many(self, filter: dict) -> int:
        return self._coll.delete_many(_query(filter)).deleted_count

    def ensure_index(self, fields: Sequence[str], *, unique: bool = False) -> None:
        self._coll.create_index([(f, 1) for f in fields], unique=unique)

    def ensure_text_index(self, fields: Sequence[str], *,
                          keywords: Sequence[str] = ()) -> None:
        # MongoDB allows one text index per collection: it covers every declared field; each
        # keyword field gets an ordinary (multikey, for lists) index.
        from pymongo.errors import OperationFailure

        for name in keywords:
            self._coll.create_index([(name, 1)])
        self.store.text_fields[self.name] = tuple(fields)
        try:
            self._coll.create_index([(f, "text") for f in fields], name=f"text_{self.name}")
        except OperationFailure as exc:
            if exc.code != 67:  # CannotCreateIndex: a server without text indexes
                raise
            log.warning("%s has no text indexes (%s): searching %s matches words in the "
                        "web process", self.store.url.split("@")[-1], exc.details.get("errmsg")
                        if exc.details else exc, self.name)
            self.store.without_text_index.add(self.name)

    def search(self, text, filter=None, *, sort=None, skip=0, limit=0):
        terms = search_terms(text)
        if not terms:
            return self.find(filter, sort=sort, skip=skip, limit=limit), self.count(filter)
        if self.name not in self.store.text_fields:
            raise ValueError(f"Collection {self.name} has no text index")
        if self.store.url.startswith("mongomock://") or \
                self.name in self.store.without_text_index:
            return self._search_in_test_double(terms, filter, sort, skip, limit)
        query = {**_query(filter), "$text": {"$search": " ".join(f'"{t}"' for t in terms)}}
        total = self._coll.count_documents(query)
        cursor = self._coll.find(query, {"_score": {"$meta": "textScore"}})
        cursor = cursor.sort(list(sort) if sort else [("_score", {"$meta": "textScore"})])
        if skip:
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        found = list(cursor)
        for doc in found:
            doc.pop("_score", None)
        return found, total

    def _search_in_test_double(self, terms, filter, sort, skip, limit):
        """mongomock has no ``$text``: the words are matched here (see the module's note)."""
        fields = self.store.text_fields[self.name]
        wanted = set(terms)
        found = [doc for doc in self.find(filter, sort=sort)
                 if all(any(word.startswith(t) for word in _words_of(doc, fields))
                        for t in wanted)]
        end = skip + limit if limit else None
        return found[skip:end], len(found)


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
        #: collection -> the fields of its text index (declared in this process)
        self.text_fields: dict[str, tuple[str, ...]] = {}
        #: collections whose server refused a text index (SecantusDB, used by the tests)
        self.without_text_index: set[str] = set()
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
