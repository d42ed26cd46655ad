"""PostgreSQL backend of the document store, through psycopg 3 and a connection pool.

One table per collection: ``_id text COLLATE "C" PRIMARY KEY``, ``doc jsonb`` (the whole
document, ``_id`` included) and ``seq``, an identity column that keeps insertion order for finds
without a sort (SQLite's rowid, MongoDB's natural order). A field is the expression
``(doc -> 'name')``; :meth:`PostgresCollection.ensure_index` creates btree indexes and unique
indexes on exactly those expressions, so equality, ``$in`` and number ranges use them.

Ordering follows MongoDB's (which SQLite matches for the values the repositories store): null and
missing fields first, then numbers, strings, objects, arrays, booleans (false before true), and
strings compare byte by byte (``COLLATE "C"``), whatever the database's own collation. Ranges
match values of the bound's own type only, never null or missing fields.

Updates are single SQL statements: PostgreSQL re-checks the ``WHERE`` of a row it had to wait
for, so a conditional ``update_one`` (``{"_id": x, "lock": None}``) is won by one caller only.
Connections are autocommit, pooled per process (a pool is never shared across a fork), and made
on first use; a server that cannot be reached raises :class:`entity.store.StoreUnreachable`.
A schema other than ``public`` is chosen with libpq's own option:
``postgresql://host/db?options=-csearch_path%3Dname``.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from entity.store import (
    OPERATORS,
    SCAN_BATCH,
    Collection,
    DocumentStore,
    Path,
    Sort,
    StoreUnreachable,
    path_of,
    search_terms,
)
from exception_layer import DuplicateKey

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
#: connections one process keeps at most (the web server's threads and the runner share them)
POOL_SIZE = 10
#: seconds to wait for a connection (at start-up: for the server to answer)
CONNECT_TIMEOUT = 10
#: the advisory lock key under which a database gets its unaccent function (any fixed number)
_UNACCENT_LOCK = 0x7472_6169_6E79
#: PostgreSQL's longest identifier
_MAX_IDENTIFIER = 63
#: MongoDB's order of types; null and missing fields rank 0
_TYPE_RANK = ("CASE jsonb_typeof({e}) WHEN 'number' THEN 1 WHEN 'string' THEN 2 "
              "WHEN 'object' THEN 3 WHEN 'array' THEN 4 WHEN 'boolean' THEN 5 ELSE 0 END")


def _field(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"Invalid field name {name!r}")
    return f"(doc -> '{name}')"


def _text(name: str) -> str:
    """The field as text in byte order (for strings only: a number's text does not order)."""
    return f"((doc ->> '{name}') COLLATE \"C\")"


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, (list, tuple)) else "object"


class _Where:
    """A filter translated to SQL, with its parameters in order."""

    def __init__(self, filter: dict | None):
        from psycopg.types.json import Jsonb

        self._jsonb = Jsonb
        self.params: list = []
        clauses = [self._condition(name, cond) for name, cond in (filter or {}).items()]
        self.sql = (" WHERE " + " AND ".join(clauses)) if clauses else ""

    def _condition(self, name: str, cond) -> str:
        if isinstance(cond, dict) and cond and all(k in OPERATORS for k in cond):
            tests = [self._operator(name, op, value) for op, value in cond.items()]
            return " AND ".join(tests)
        return self._equals(name, cond)

    def _value(self, name: str, value):
        self.params.append(value if name == "_id" else self._jsonb(value))
        return "%s"

    def _is_null(self, name: str) -> str:
        if name == "_id":
            return "FALSE"  # every document has one
        column = _field(name)
        return f"({column} IS NULL OR {column} = 'null'::jsonb)"

    def _equals(self, name: str, value) -> str:
        if value is None:
            return self._is_null(name)
        if name == "_id":
            return f"_id = {self._value(name, value)}"
        return f"{_field(name)} = {self._value(name, value)}"

    def _operator(self, name: str, op: str, value) -> str:
        column = "_id" if name == "_id" else _field(name)
        if op == "$in":
            # As in MongoDB, None in the list matches a missing or null field.
            given = list(value)
            values = [v for v in given if v is not None]
            tests = [self._is_null(name)] if len(values) != len(given) else []
            if values:
                marks = ", ".join(self._value(name, v) for v in values)
                tests.append(f"{column} IN ({marks})")
            return "(" + " OR ".join(tests) + ")" if tests else "FALSE"
        if op == "$contains":  # the list holds every value: jsonb containment (GIN-indexable)
            return f"{column} @> {self._value(name, list(value))}"
        if op == "$overlaps":  # at least one: the list's string elements
            items = [str(v) for v in value]
            if not items:
                return "FALSE"
            self.params.append(items)
            return f"(jsonb_typeof({column}) = 'array' AND {column} ?| %s::text[])"
        if op == "$ne":
            if value is None:
                return f"NOT {self._is_null(name)}"
            return f"{column} IS DISTINCT FROM {self._value(name, value)}"
        sql_op = _RANGE[op]
        if name == "_id":
            return f"_id {sql_op} {self._value(name, value)}"
        if value is None:  # nothing is greater or less than null
            return "FALSE"
        kind = _json_type(value)
        if kind == "string":
            self.params.append(value)
            return f"(jsonb_typeof({column}) = 'string' AND {_text(name)} {sql_op} %s)"
        return (f"(jsonb_typeof({column}) = '{kind}' AND "
                f"{column} {sql_op} {self._value(name, value)})")


def _order(sort: Sort | None) -> str:
    keys = []
    for name, direction in sort or ():
        way = "DESC" if direction < 0 else "ASC"
        if name == "_id":
            keys.append(f"_id {way}")
            continue
        column = _field(name)
        keys += [f"{_TYPE_RANK.format(e=column)} {way}",
                 f"(CASE WHEN jsonb_typeof({column}) = 'string' THEN {_text(name)} END) {way}",
                 f"NULLIF({column}, 'null'::jsonb) {way}"]  # null ties with missing
    keys.append("seq")  # insertion order, among equals too
    return " ORDER BY " + ", ".join(keys)


class PostgresCollection(Collection):
    def __init__(self, store: PostgresStore, name: str):
        if not _NAME.match(name):
            raise ValueError(f"Invalid collection name {name!r}")
        self.store, self.name = store, name
        self.table = f'"{name}"'

    def _run(self, sql: str, params: Sequence = ()):
        """Run one statement on a pooled connection; returns (rows or None, rowcount)."""
        from psycopg import errors

        self.store.ensure_table(self.name)
        with self.store.pool().connection() as conn:
            try:
                cursor = conn.execute(sql, params)
            except errors.UniqueViolation as exc:
                raise DuplicateKey() from exc
            rows = cursor.fetchall() if cursor.description else None
            return rows, cursor.rowcount

    def insert(self, doc: dict) -> None:
        from psycopg.types.json import Jsonb

        self._run(f"INSERT INTO {self.table} (_id, doc) VALUES (%s, %s)",
                  (doc["_id"], Jsonb(doc)))

    def insert_many(self, docs: Sequence[dict]) -> None:
        # One transaction, the statements pipelined (psycopg's executemany): all or none.
        from psycopg import errors
        from psycopg.types.json import Jsonb

        if not docs:
            return
        self.store.ensure_table(self.name)
        with self.store.pool().connection() as conn:
            try:
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany(f"INSERT INTO {self.table} (_id, doc) VALUES (%s, %s)",
                                       [(doc["_id"], Jsonb(doc)) for doc in docs])
            except errors.UniqueViolation as exc:
                raise DuplicateKey() from exc

    def get(self, doc_id: str) -> dict | None:
        rows, _ = self._run(f"SELECT doc FROM {self.table} WHERE _id = %s", (doc_id,))
        return rows[0][0] if rows else None

    def find(self, filter=None, *, sort=None, skip=0, limit=0) -> list[dict]:
        where = _Where(filter)
        sql = f"SELECT doc FROM {self.table}{where.sql}{_order(sort)}"
        params = where.params
        if limit or skip:
            sql += " LIMIT %s OFFSET %s"
            params = [*params, limit or None, skip]
        rows, _ = self._run(sql, params)
        return [row[0] for row in rows]

    def scan(self, filter, fields: Sequence[Path], *, batch: int = SCAN_BATCH):
        # The server sends only the values at the paths (jsonb #> text[]), paged by the
        # primary key: each batch is one indexed read.
        paths = [list(path_of(f)) for f in fields]
        where = _Where(filter)
        columns = ", ".join("doc #> %s" for _ in paths)
        after = (where.sql + " AND" if where.sql else " WHERE") + " _id > %s"
        last = None
        while True:
            sql = (f"SELECT _id, {columns} FROM {self.table}"
                   f"{where.sql if last is None else after} ORDER BY _id LIMIT %s")
            params = [*paths, *where.params, *([] if last is None else [last]), batch]
            rows, _ = self._run(sql, params)
            if not rows:
                return
            last = rows[-1][0]
            yield [tuple(row[1:]) for row in rows]
            if len(rows) < batch:
                return

    def count(self, filter=None) -> int:
        where = _Where(filter)
        rows, _ = self._run(f"SELECT count(*) FROM {self.table}{where.sql}", where.params)
        return rows[0][0]

    def update_one(self, filter: dict, changes: dict) -> bool:
        from psycopg.types.json import Jsonb

        where = _Where(filter)
        if isinstance(filter.get("_id"), str):  # at most one row can match
            sql = f"UPDATE {self.table} SET doc = doc || %s{where.sql}"
        else:  # lock one matching row; the lock re-checks the filter on a row it waited for
            sql = (f"UPDATE {self.table} SET doc = doc || %s WHERE _id = "
                   f"(SELECT _id FROM {self.table}{where.sql} ORDER BY seq LIMIT 1 FOR UPDATE)")
        _, count = self._run(sql, [Jsonb(changes), *where.params])
        return count == 1

    def update_many(self, filter: dict, changes: dict) -> int:
        from psycopg.types.json import Jsonb

        where = _Where(filter)
        _, count = self._run(f"UPDATE {self.table} SET doc = doc || %s{where.sql}",
                             [Jsonb(changes), *where.params])
        return count

    def delete_many(self, filter: dict) -> int:
        where = _Where(filter)
        _, count = self._run(f"DELETE FROM {self.table}{where.sql}", where.params)
        return count

    def ensure_text_index(self, fields: Sequence[str], *,
                          keywords: Sequence[str] = ()) -> None:
        """A GIN index on the ``tsvector`` of ``fields`` (text, or lists of text: their JSON
        text, whose words the parser finds), with the 'simple' configuration (no stemming, no
        stop words, as the other backends) and accents folded by ``unaccent`` where the
        server has it; search runs the same expression, so the index serves it."""
        self.store.ensure_table(self.name)
        vector = self.store.text_vector(fields)
        self.store.text_vectors[self.name] = vector
        self.store.create(f"CREATE INDEX IF NOT EXISTS {_index_name(self.name, ['text'])} "
                          f"ON {self.table} USING GIN ({vector})")
        for name in keywords:  # GIN serves @> ($contains) and ?| ($overlaps) on the field
            self.store.create(f"CREATE INDEX IF NOT EXISTS "
                              f"{_index_name(self.name, ['gin', name])} ON {self.table} "
                              f"USING GIN ({_field(name)})")

    def search(self, text, filter=None, *, sort=None, skip=0, limit=0):
        terms = search_terms(text)
        if not terms:
            return self.find(filter, sort=sort, skip=skip, limit=limit), self.count(filter)
        vector = self.store.text_vectors.get(self.name)
        if vector is None:
            raise ValueError(f"Collection {self.name} has no text index")
        # every word, each also as a prefix; words are letters and digits only
        query = " & ".join(f"'{term}':*" for term in terms)
        where = _Where(filter)
        match = f"{vector} @@ to_tsquery('simple', %s)"
        condition = (where.sql + " AND " if where.sql else " WHERE ") + match
        params = [*where.params, query]
        rows, _ = self._run(f"SELECT count(*) FROM {self.table}{condition}", params)
        total = rows[0][0]
        order = (_order(sort) if sort else
                 f" ORDER BY ts_rank({vector}, to_tsquery('simple', %s)) DESC, seq")
        sql = f"SELECT doc FROM {self.table}{condition}{order}"
        page = [*params] + ([] if sort else [query])
        if limit or skip:
            sql += " LIMIT %s OFFSET %s"
            page += [limit or None, skip]
        rows, _ = self._run(sql, page)
        return [row[0] for row in rows], total

    def ensure_index(self, fields: Sequence[str], *, unique: bool = False) -> None:
        columns = ", ".join("_id" if f == "_id" else _field(f) for f in fields)
        self.store.ensure_table(self.name)
        self.store.create(f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS "
                          f"{_index_name(self.name, fields)} ON {self.table} ({columns})")


def _index_name(table: str, fields: Sequence[str]) -> str:
    name = f"ix_{table}_{'_'.join(fields)}"
    if len(name) > _MAX_IDENTIFIER:  # PostgreSQL would cut it, and two could then collide
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:10]
        name = f"{name[:_MAX_IDENTIFIER - 11]}_{digest}"
    return f'"{name}"'


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class PostgresStore(DocumentStore):
    """``postgresql://user:password@host:port/dbname`` (libpq's URL: every libpq option)."""

    def __init__(self, url: str):
        self.url = url
        self._pool = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._tables: set[str] = set()
        self._inherited: list = []
        #: collection -> the tsvector expression of its text index (declared in this process)
        self.text_vectors: dict[str, str] = {}
        self._unaccent: bool | None = None

    def text_vector(self, fields: Sequence[str]) -> str:
        """The ``tsvector`` expression of ``fields``, accents folded when the server lets this
        database use the ``unaccent`` extension (through an IMMUTABLE wrapper, which an index
        expression needs)."""
        if self._unaccent is None:
            self._unaccent = self._install_unaccent()
        text = " || ' ' || ".join(f"coalesce(doc ->> '{f}', '')" for f in fields
                                  if _NAME.match(f))
        if self._unaccent:
            text = f"trainyard_unaccent({text})"
        return f"to_tsvector('simple'::regconfig, {text})"

    def _install_unaccent(self) -> bool:
        """Make ``trainyard_unaccent`` usable, once per database at a time: processes starting
        together on a new database (web processes, workers) each took a failed race for
        "not available" and built a different text expression, which the index did not serve.
        Under an advisory lock, an existing function is used as it is."""
        from psycopg import errors

        try:
            with self.pool().connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_UNACCENT_LOCK,))
                if conn.execute("SELECT to_regprocedure('trainyard_unaccent(text)')"
                                ).fetchone()[0] is not None:
                    return True
                conn.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
                found = conn.execute(
                    "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON "
                    "n.oid = e.extnamespace WHERE e.extname = 'unaccent'").fetchone()
                schema = found[0].replace('"', '""')
                conn.execute(
                    "CREATE OR REPLACE FUNCTION trainyard_unaccent(text) RETURNS text "
                    "LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$ SELECT "
                    f"\"{schema}\".unaccent('\"{schema}\".unaccent'::regdictionary, $1) $$")
            return True
        except errors.Error:
            return False  # not installed or not allowed: accents then count

    def pool(self):
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    # After a fork the parent's pool is left alone, and kept referenced:
                    # closing it, or freeing it, would end the parent's sessions, whose sockets
                    # the child inherited (libpq says goodbye on the socket).
                    if self._pool is not None:
                        self._inherited.append(self._pool)
                    self._pool, self._pid = self._open_pool(), os.getpid()
                    self._tables = set()
        return self._pool

    def _open_pool(self):
        import psycopg
        from psycopg_pool import ConnectionPool

        try:  # one direct connection first: its error says why, where a pool's would not
            psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT).close()
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())
            raise StoreUnreachable(f"{redacted(self.url)} cannot be reached: {reason}") from None
        pool = ConnectionPool(self.url, min_size=1, max_size=POOL_SIZE, open=False,
                              timeout=30, kwargs={"autocommit": True},
                              check=ConnectionPool.check_connection,
                              name=f"trainyard-{os.getpid()}")
        pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        return pool

    def create(self, sql: str) -> None:
        """Run a ``CREATE ... IF NOT EXISTS``, which two sessions racing on the same new name
        may both attempt: the loser's error means the object is there."""
        from psycopg import errors

        with self.pool().connection() as conn:
            try:
                conn.execute(sql)
            except (errors.UniqueViolation, errors.DuplicateTable, errors.DuplicateObject):
                pass

    def ensure_table(self, name: str) -> None:
        if name in self._tables and self._pid == os.getpid():
            return
        self.create(f'CREATE TABLE IF NOT EXISTS "{name}" (_id text COLLATE "C" PRIMARY KEY, '
                    "doc jsonb NOT NULL, seq bigint GENERATED ALWAYS AS IDENTITY)")
        self._tables.add(name)

    def collection(self, name: str) -> Collection:
        return PostgresCollection(self, name)

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None
