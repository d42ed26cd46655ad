"""The document store behind the repositories: one small contract, three backends (SQLite,
PostgreSQL, MongoDB).

The contract is a subset of MongoDB's: documents are JSON-like dicts with a string ``_id``;
filters match top-level fields by equality (``None`` matches a missing field too) or with the
operators ``$in``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, and on fields holding lists of
scalars ``$contains`` (the list holds every given value) and ``$overlaps`` (at least one);
updates set top-level fields. Dates are stored as ISO-8601 UTC strings, so they compare in order
on every backend.

Text search is part of the contract: a collection declares the fields it searches
(:meth:`Collection.ensure_text_index`) and :meth:`Collection.search` finds the documents whose
text holds every word of a query, with the same filters, in the database's own full-text index
(SQLite FTS5, a MongoDB text index), never by reading every document in Python.
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

#: sort spec: [(field, 1 | -1), ...]
Sort = Sequence[tuple[str, int]]
OPERATORS = ("$in", "$ne", "$gt", "$gte", "$lt", "$lte", "$contains", "$overlaps")
#: the most words of a text query that are searched for (the rest are ignored)
MAX_SEARCH_TERMS = 16
_WORD = re.compile(r"\w+")


def search_terms(text: str | None) -> list[str]:
    """The words a text query searches for: runs of letters and digits, lower-cased and without
    accents (as the indexes fold them), in order, each once, at most :data:`MAX_SEARCH_TERMS`
    (punctuation and operators are never syntax)."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text or "")
                     if not unicodedata.combining(c))
    words = dict.fromkeys(w.lower() for w in _WORD.findall(folded))
    return list(words)[:MAX_SEARCH_TERMS]
#: a field read by :meth:`Collection.scan`: a top-level name, or the path of keys to a value
#: inside nested objects (``("inputs", "age")``)
Path = str | tuple[str, ...]
#: how many documents :meth:`Collection.scan` reads at once unless told
SCAN_BATCH = 5000


def path_of(field: Path) -> tuple[str, ...]:
    """``field`` as a tuple of keys."""
    return (field,) if isinstance(field, str) else tuple(field)


def pick(doc: dict, fields: Sequence[tuple[str, ...]]) -> tuple:
    """The values at ``fields`` in ``doc`` (None where a key is missing or not an object)."""
    row = []
    for path in fields:
        value = doc
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        row.append(value)
    return tuple(row)


class Collection(ABC):
    """One collection of documents."""

    @abstractmethod
    def insert(self, doc: dict) -> None:
        """Insert ``doc`` (it must have an ``_id``); raise ``DuplicateKey`` on a taken key."""

    def insert_many(self, docs: Sequence[dict]) -> None:
        """Insert every document of ``docs`` (each with an ``_id``), in one round trip where
        the backend can. Raises ``DuplicateKey`` on a taken key; which of the others were
        inserted then is the backend's (SQLite and PostgreSQL: none, MongoDB: all but the
        taken ones)."""
        for doc in docs:
            self.insert(doc)

    @abstractmethod
    def get(self, doc_id: str) -> dict | None:
        """The document with this ``_id``, or None."""

    @abstractmethod
    def find(self, filter: dict | None = None, *, sort: Sort | None = None, skip: int = 0,
             limit: int = 0) -> list[dict]:
        """Documents matching ``filter``, sorted, paged (``limit=0``: no limit)."""

    @abstractmethod
    def count(self, filter: dict | None = None) -> int:
        """How many documents match."""

    @abstractmethod
    def update_one(self, filter: dict, changes: dict) -> bool:
        """Atomically set ``changes`` on one document matching ``filter``; True if one matched.

        The match and the write are one atomic step: two callers racing with the same
        conditional filter (``{"_id": x, "lock": None}``) cannot both win.
        """

    @abstractmethod
    def update_many(self, filter: dict, changes: dict) -> int:
        """Set ``changes`` on every matching document; returns how many matched."""

    @abstractmethod
    def delete_many(self, filter: dict) -> int:
        """Delete every matching document; returns how many were deleted."""

    @abstractmethod
    def ensure_index(self, fields: Sequence[str], *, unique: bool = False) -> None:
        """Create an index over ``fields`` if it does not exist."""

    def scan(self, filter: dict | None, fields: Sequence[Path], *,
             batch: int = SCAN_BATCH) -> Iterator[list[tuple]]:
        """Read only ``fields`` of every matching document, ``batch`` documents at a time.

        Yields lists of tuples, one tuple per document with its values in the order of
        ``fields`` (None where a path is missing), in an unspecified order, so that a caller
        aggregating millions of documents never holds more than one batch. Documents written
        during a scan may or may not be seen. The default pages through :meth:`find` by
        ``_id`` (a filter on ``_id`` is replaced); backends read the fields in the database
        instead of decoding whole documents.
        """
        paths = [path_of(f) for f in fields]
        last = None
        while True:
            query = dict(filter or {})
            if last is not None:
                query["_id"] = {"$gt": last}  # keyset paging: each batch is one indexed read
            docs = self.find(query, sort=[("_id", 1)], limit=batch)
            if not docs:
                return
            last = docs[-1]["_id"]
            yield [pick(doc, paths) for doc in docs]
            if len(docs) < batch:
                return

    @abstractmethod
    def ensure_text_index(self, fields: Sequence[str], *,
                          keywords: Sequence[str] = ()) -> None:
        """Index the text of ``fields`` (text, or lists of text) for :meth:`search`; kept up to
        date by the database itself on every insert, update and delete. ``keywords``: fields
        (text, or lists of text) that :meth:`search`'s filters often name (equality, ``$in``,
        ``$contains``, ``$overlaps``), indexed so that the database answers those filters from
        an index too (the results are the same without)."""

    @abstractmethod
    def search(self, text: str, filter: dict | None = None, *, sort: Sort | None = None,
               skip: int = 0, limit: int = 0) -> tuple[list[dict], int]:
        """Documents whose indexed text holds every word of ``text`` (:func:`search_terms`;
        a backend may also match a word's prefix or stem) and that match ``filter``, with how
        many match in all. Without ``sort``, the best matches come first. Text without words
        matches every document (then it is :meth:`find` plus :meth:`count`)."""

    def find_one(self, filter: dict, *, sort: Sort | None = None) -> dict | None:
        found = self.find(filter, sort=sort, limit=1)
        return found[0] if found else None


class DocumentStore(ABC):
    """A database: named collections."""

    @abstractmethod
    def collection(self, name: str) -> Collection:
        """The collection called ``name`` (created on first use)."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections held by this process."""


class StoreUnreachable(RuntimeError):
    """The database server cannot be reached (first use of a store); the message says which
    address (without its password) and why."""


def open_store(url: str) -> DocumentStore:
    """Open the store for a ``DATABASE_URL``: ``sqlite:///path``, ``postgresql://...`` or
    ``mongodb://...``.

    Nothing connects here; connections are made on first use.
    """
    if url.startswith("sqlite:"):
        from entity.sqlite_store import SqliteStore

        return SqliteStore(url)
    if url.startswith(("postgresql://", "postgres://")):
        from entity.postgres_store import PostgresStore

        return PostgresStore(url)
    if url.startswith(("mongodb://", "mongodb+srv://", "mongomock://")):
        from entity.mongo_store import MongoStore

        return MongoStore(url)
    raise ValueError("DATABASE_URL must start with sqlite:///, postgresql:// or mongodb://")
