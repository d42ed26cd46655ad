"""SQLite backend of the document store: one table per collection, documents as JSON.

Each thread gets its own connection (SQLite connections are not shared across threads), WAL lets
readers and a writer work at once, and conditional updates run in ``BEGIN IMMEDIATE``
transactions so that they are atomic across threads and processes.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from entity.store import (
    OPERATORS,
    SCAN_BATCH,
    Collection,
    DocumentStore,
    Sort,
    path_of,
    search_terms,
)
from entity.store import Path as FieldPath
from exception_layer import DuplicateKey

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SQL_OPS = {"$ne": "IS NOT", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _field(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"Invalid field name {name!r}")
    return f"json_extract(doc, '$.{name}')"


def _elements(name: str) -> str:
    """The elements of list field ``name`` as the rows of a subquery (``value``)."""
    if not _NAME.match(name):
        raise ValueError(f"Invalid field name {name!r}")
    return f"SELECT 1 FROM json_each(doc, '$.{name}') WHERE value"


def _sql_value(value):
    # json_extract returns SQL values: booleans are 1/0, containers are JSON text (minified by
    # SQLite, keys in stored order); _placeholder passes containers through json() to match.
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def _placeholder(value) -> str:
    return "json(?)" if isinstance(value, (dict, list)) else "?"


def _where(filter: dict | None) -> tuple[str, list]:
    clauses, params = [], []
    for name, cond in (filter or {}).items():
        column = "id" if name == "_id" else _field(name)
        if isinstance(cond, dict) and cond and all(k in OPERATORS for k in cond):
            for op, value in cond.items():
                if op == "$in":
                    # As in MongoDB, None in the list matches a missing or null field.
                    given = list(value)
                    values = [v for v in given if v is not None]
                    tests = [f"{column} IS NULL"] if len(values) != len(given) else []
                    if values:
                        marks = ", ".join(_placeholder(v) for v in values)
                        tests.append(f"{column} IN ({marks})")
                        params.extend(_sql_value(v) for v in values)
                    clauses.append("(" + " OR ".join(tests) + ")" if tests else "0")
                elif op == "$contains":
                    for item in value:
                        clauses.append(f"EXISTS ({_elements(name)} = ?)")
                        params.append(_sql_value(item))
                elif op == "$overlaps":
                    items = list(value)
                    if not items:
                        clauses.append("0")
                        continue
                    marks = ", ".join("?" for _ in items)
                    clauses.append(f"EXISTS ({_elements(name)} IN ({marks}))")
                    params.extend(_sql_value(item) for item in items)
                elif op == "$ne" and value is None:
                    clauses.append(f"{column} IS NOT NULL")
                elif op == "$ne":
                    clauses.append(f"({column} IS NULL OR {column} != {_placeholder(value)})")
                    params.append(_sql_value(value))
                else:
                    clauses.append(f"{column} {_SQL_OPS[op]} {_placeholder(value)}")
                    params.append(_sql_value(value))
        elif cond is None:
            clauses.append(f"{column} IS NULL")
        else:
            clauses.append(f"{column} = {_placeholder(cond)}")
            params.append(_sql_value(cond))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _json_path(path: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The SQLite JSON path of ``path``, and the keys left to follow in Python (a key with a
    quote or backslash cannot be written in a JSON path)."""
    keys = []
    for index, key in enumerate(path):
        if '"' in key or "\\" in key:
            return "$" + "".join(f'."{k}"' for k in keys), tuple(path[index:])
        keys.append(key)
    return "$" + "".join(f'."{k}"' for k in keys), ()


def _dig(value, keys: tuple[str, ...]):
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _order(sort: Sort | None) -> str:
    if not sort:
        return " ORDER BY rowid"
    return " ORDER BY " + ", ".join(
        f"{'id' if f == '_id' else _field(f)} {'DESC' if d < 0 else 'ASC'}" for f, d in sort)


class SqliteCollection(Collection):
    def __init__(self, store: SqliteStore, name: str):
        if not _NAME.match(name):
            raise ValueError(f"Invalid collection name {name!r}")
        self.store, self.name = store, name

    def _conn(self) -> sqlite3.Connection:
        return self.store.connection(self.name)

    def insert(self, doc: dict) -> None:
        try:
            self._conn().execute(f"INSERT INTO {self.name} (id, doc) VALUES (?, ?)",
                                 (doc["_id"], json.dumps(doc)))
        except sqlite3.IntegrityError as exc:
            raise DuplicateKey() from exc

    def insert_many(self, docs: Sequence[dict]) -> None:
        # One transaction: one commit (one WAL sync) for the lot, not one per document.
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(f"INSERT INTO {self.name} (id, doc) VALUES (?, ?)",
                             [(doc["_id"], json.dumps(doc)) for doc in docs])
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            raise DuplicateKey() from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def get(self, doc_id: str) -> dict | None:
        row = self._conn().execute(f"SELECT doc FROM {self.name} WHERE id = ?",
                                   (doc_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def find(self, filter=None, *, sort=None, skip=0, limit=0) -> list[dict]:
        where, params = _where(filter)
        sql = f"SELECT doc FROM {self.name}{where}{_order(sort)}"
        if limit or skip:
            sql += " LIMIT ? OFFSET ?"
            params += [limit or -1, skip]
        return [json.loads(r[0]) for r in self._conn().execute(sql, params)]

    def scan(self, filter, fields: Sequence[FieldPath], *, batch: int = SCAN_BATCH):
        # One json_extract with every path answers a JSON array per row: SQLite reads the
        # document once, and the values come back typed (objects and lists too). One query,
        # read batch by batch: paging with OFFSET or by rowid would make SQLite walk (and
        # sort) the filter's index again for every batch.
        paths = [path_of(f) for f in fields]
        inside = [_json_path(p) for p in paths]
        marks = ", ".join("?" for _ in inside) if len(inside) > 1 else "?, ?"
        where, params = _where(filter)
        sql = f"SELECT json_extract(doc, {marks}) FROM {self.name}{where}"
        given = [p for p, _ in inside] * (1 if len(inside) > 1 else 2)
        rest = [tail for _, tail in inside]
        cursor = self._conn().execute(sql, [*given, *params])
        loads = json.loads
        try:
            while True:
                rows = cursor.fetchmany(batch)
                if not rows:
                    return
                # one parse for the whole batch: the rows' arrays joined into one
                values = loads("[" + ",".join(r[0] for r in rows) + "]")
                if any(rest):
                    values = [[_dig(v, tail) for v, tail in zip(row, rest, strict=False)]
                              for row in values]
                yield ([tuple(v) for v in values] if len(inside) > 1 else
                       [(v[0],) for v in values])
        finally:
            cursor.close()

    def count(self, filter=None) -> int:
        where, params = _where(filter)
        return self._conn().execute(f"SELECT COUNT(*) FROM {self.name}{where}",
                                    params).fetchone()[0]

    def _update(self, filter: dict, changes: dict, limit: int | None) -> int:
        where, params = _where(filter)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            sql = f"SELECT id, doc FROM {self.name}{where}"
            if limit:
                sql += f" LIMIT {int(limit)}"
            rows = conn.execute(sql, params).fetchall()
            for row_id, raw in rows:
                doc = json.loads(raw)
                doc.update(changes)
                conn.execute(f"UPDATE {self.name} SET doc = ? WHERE id = ?",
                             (json.dumps(doc), row_id))
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:  # a unique index would be broken
            conn.execute("ROLLBACK")
            raise DuplicateKey() from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(rows)

    def update_one(self, filter: dict, changes: dict) -> bool:
        return self._update(filter, changes, 1) == 1

    def update_many(self, filter: dict, changes: dict) -> int:
        return self._update(filter, changes, None)

    def delete_many(self, filter: dict) -> int:
        where, params = _where(filter)
        return self._conn().execute(f"DELETE FROM {self.name}{where}", params).rowcount

    def ensure_text_index(self, fields: Sequence[str], *,
                          keywords: Sequence[str] = ()) -> None:
        """An FTS5 table ``<name>_search`` beside the collection, one row per document (same
        rowid): column ``body`` holds the text of ``fields``, column ``keys`` one token per
        text value of the ``keywords`` fields (``k<field number>x<hex of the value>``: never
        split, never a word of the text). Triggers on the collection's table keep it in step,
        so every write path (inserts, conditional updates, deletes) updates it."""
        text = " || ' ' || ".join(f"coalesce({_field(f)}, '')" for f in fields)
        keys = " || ' ' || ".join(
            f"coalesce((SELECT group_concat('k{i}x' || lower(hex(value)), ' ') FROM "
            f"json_each(doc, '$.{f}') WHERE type = 'text'), '')"
            for i, f in enumerate(keywords) if _NAME.match(f)) or "''"
        fts = f"{self.name}_search"
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(body, keys, "
                         "tokenize = 'unicode61 remove_diacritics 2')")
            row = f"{text}, {keys}"
            new_row = re.sub(r"\bdoc\b", "new.doc", row)
            conn.execute(f"CREATE TRIGGER IF NOT EXISTS {fts}_insert AFTER INSERT ON "
                         f"{self.name} BEGIN INSERT INTO {fts} (rowid, body, keys) VALUES "
                         f"(new.rowid, {new_row}); END")
            conn.execute(f"CREATE TRIGGER IF NOT EXISTS {fts}_update AFTER UPDATE ON "
                         f"{self.name} BEGIN DELETE FROM {fts} WHERE rowid = old.rowid; "
                         f"INSERT INTO {fts} (rowid, body, keys) VALUES (new.rowid, {new_row}); "
                         "END")
            conn.execute(f"CREATE TRIGGER IF NOT EXISTS {fts}_delete AFTER DELETE ON "
                         f"{self.name} BEGIN DELETE FROM {fts} WHERE rowid = old.rowid; END")
            # documents written before the index existed
            conn.execute(f"INSERT INTO {fts} (rowid, body, keys) SELECT rowid, {row} FROM "
                         f"{self.name} WHERE rowid NOT IN (SELECT rowid FROM {fts})")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.store.text_indexed[self.name] = tuple(keywords)

    def _keyword_match(self, filter: dict) -> tuple[list[str], dict]:
        """The parts of ``filter`` the ``keys`` column answers (equality, ``$in``,
        ``$contains``, ``$overlaps`` on keyword fields, with text values), as FTS5 queries,
        and the rest of the filter."""
        keywords = self.store.text_indexed.get(self.name, ())
        matches, rest = [], {}

        def token(field: str, value: str) -> str:
            return f"k{keywords.index(field)}x{value.encode('utf-8').hex()}"

        for name, cond in (filter or {}).items():
            if name not in keywords:
                rest[name] = cond
                continue
            if isinstance(cond, str):
                matches.append(f"keys : {token(name, cond)}")
                continue
            if isinstance(cond, dict) and len(cond) == 1:
                (op, values), = cond.items()
                values = list(values) if op in ("$in", "$contains", "$overlaps") else None
                if values and all(isinstance(v, str) for v in values):
                    tokens = [token(name, v) for v in values]
                    joiner = " AND " if op == "$contains" else " OR "
                    matches.append(f"keys : ({joiner.join(tokens)})")
                    continue
            rest[name] = cond
        return matches, rest

    def search(self, text, filter=None, *, sort=None, skip=0, limit=0):
        if self.name not in self.store.text_indexed:
            raise ValueError(f"Collection {self.name} has no text index")
        terms = search_terms(text)
        keyed, rest = self._keyword_match(filter or {})
        if not terms and not keyed:
            return self.find(filter, sort=sort, skip=skip, limit=limit), self.count(filter)
        fts = f"{self.name}_search"
        where, params = _where(rest)
        # every word, each also as a prefix ("chur" finds "churn"); words hold no quotes
        parts = ([f"body : ({' '.join(f'{chr(34)}{t}{chr(34)}*' for t in terms)})"]
                 if terms else []) + keyed
        match = " AND ".join(parts)
        # CROSS JOIN keeps the full-text index as the outer loop (SQLite's planner would
        # otherwise walk the collection and probe the index once per document)
        base = (f"FROM {fts} CROSS JOIN {self.name} ON {self.name}.rowid = {fts}.rowid "
                f"WHERE {fts} MATCH ?" + (" AND " + where[len(" WHERE "):] if where else ""))
        conn = self._conn()
        total = conn.execute(f"SELECT COUNT(*) {base}", [match, *params]).fetchone()[0]
        order = _order(sort) if sort else (f" ORDER BY {fts}.rank" if terms else
                                           f" ORDER BY {self.name}.rowid")
        sql = f"SELECT doc {base}{order}"
        page = [match, *params]
        if limit or skip:
            sql += " LIMIT ? OFFSET ?"
            page += [limit or -1, skip]
        return [json.loads(r[0]) for r in conn.execute(sql, page)], total

    def ensure_index(self, fields: Sequence[str], *, unique: bool = False) -> None:
        name = f"ix_{self.name}_{'_'.join(fields)}"
        columns = ", ".join("id" if f == "_id" else _field(f) for f in fields)
        self._conn().execute(
            f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {name} "
            f"ON {self.name} ({columns})")


#: tries at switching a new database file to WAL while another process does the same
_WAL_ATTEMPTS = 100


class SqliteStore(DocumentStore):
    """``sqlite:///relative/or/absolute/path.db`` (``sqlite:///:memory:`` is refused: each
    thread would see its own empty database)."""

    def __init__(self, url: str):
        path = unquote(urlsplit(url).path)
        # sqlite:///data/x.db is relative, sqlite:////abs/x.db is absolute (SQLAlchemy's rule).
        path = path[1:]
        if not path or path == ":memory:":
            raise ValueError("DATABASE_URL for SQLite must name a file")
        self.path = os.path.abspath(path)
        self._local = threading.local()
        self._tables: set[str] = set()
        #: collections whose text index exists (declared by ensure_text_index in this
        #: process), with their keyword fields
        self.text_indexed: dict[str, tuple[str, ...]] = {}  # name -> its keyword fields
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Put the database file in WAL mode (kept in the file, so done once per file).

        SQLite answers "database is locked" at once, without waiting for its busy timeout, when
        two connections change the journal mode together: threads of this process take turns,
        and a change raced by another process is tried again.
        """
        with self._lock:
            for attempt in range(_WAL_ATTEMPTS):
                try:
                    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                    if str(mode).lower() != "wal":
                        conn.execute("PRAGMA journal_mode=WAL")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == _WAL_ATTEMPTS - 1:
                        raise
                    time.sleep(0.05)

    def connection(self, table: str | None = None) -> sqlite3.Connection:
        if self._pid != os.getpid():  # after a fork, never reuse the parent's connections,
            # nor its lock, which another thread of the parent may have held at the fork
            self._local, self._pid = threading.local(), os.getpid()
            self._lock = threading.Lock()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            self._use_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        if table and table not in self._tables:
            with self._lock:
                conn.execute(f"CREATE TABLE IF NOT EXISTS {table} "
                             "(id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
                self._tables.add(table)
        return conn

    def collection(self, name: str) -> Collection:
        return SqliteCollection(self, name)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
