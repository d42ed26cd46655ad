"""Database fixtures for the entity tests: every test runs once per document-store backend.

Backends:
- ``sqlite``: a file in the test's ``tmp_path`` (``sqlite:////abs/path``);
- ``postgresql``: a real PostgreSQL server the tests start (``tests/databases.py``, one per
  test process), a fresh schema per test, dropped afterwards;
- ``mongomock``: mongomock behind :class:`MongoStore`, a fresh database per test, dropped
  afterwards (kept for what a wire server cannot show: see ``test_store_contract.py``);
- ``mongodb``: a real MongoDB wire server, a unique database dropped afterwards: the server
  named by ``TEST_MONGODB_URI`` when it is set (a real ``mongod``), else SecantusDB started by
  the tests (``tests/databases.py``; what it lacks is in ``SECANTUS_LACKS`` there).

The ``postgresql`` and ``mongodb`` variants are marked ``database``: ``make test-fast`` leaves
them out.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta

import pytest

from entity.base import utcnow
from entity.database import Database
from entity.project import BatchSchema, ColumnSpec, Project
from entity.store import DocumentStore, open_store
from entity.user import User
from tests import databases

BACKENDS = ("sqlite", databases.POSTGRESQL, "mongomock", databases.MONGODB)


@dataclass
class Backend:
    name: str
    url: str
    store: DocumentStore


def _unique_db_name() -> str:
    return f"trainyard_test_{secrets.token_hex(6)}"


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """A fresh, empty store of each backend (closed and, on a server, dropped afterwards)."""
    name, schema = request.param, None
    if name == "sqlite":
        url = f"sqlite:///{tmp_path / 'trainyard.db'}"  # tmp_path is absolute: four slashes
    elif name == "postgresql":
        url, schema = databases.postgres().fresh_url()
    elif name == "mongomock":
        url = f"mongomock://localhost/{_unique_db_name()}"
    else:
        base = os.environ.get("TEST_MONGODB_URI") or databases.mongodb().base_url
        url = databases.mongodb_url(base, _unique_db_name())
    store = open_store(url)
    yield Backend(name, url, store)
    store.close()
    if name == "postgresql":
        databases.postgres().drop(schema)
    elif name != "sqlite":  # mongomock's one in-memory server lives as long as the process
        store.client().drop_database(store.db_name)
        store.close()


@pytest.fixture
def shared_url(request, tmp_path):
    """A database URL that other processes can open too (mongomock lives in one process), for
    ``@pytest.mark.parametrize("shared_url", databases.SHARED_BACKENDS, indirect=True)``."""
    kind = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    elif kind == "postgresql":
        url, schema = databases.postgres().fresh_url()
        yield url
        databases.postgres().drop(schema)
    else:
        base = os.environ.get("TEST_MONGODB_URI") or databases.mongodb().base_url
        url = databases.mongodb_url(base, _unique_db_name())
        yield url
        store = open_store(url)
        store.client().drop_database(store.db_name)
        store.close()


@pytest.fixture
def store(backend) -> DocumentStore:
    return backend.store


@pytest.fixture
def db(backend) -> Database:
    """Every repository over the backend's store, with its indexes."""
    database = Database(backend.store)
    database.ensure_indexes()
    return database


# -- document factories -------------------------------------------------------------------

def schema_factory(**overrides) -> BatchSchema:
    values = {
        "filename_pattern": r"^wafer_\d{8}_\d{6}\.csv$",
        "columns": [ColumnSpec("sensor_1", "float"), ColumnSpec("sensor_2", "float"),
                    ColumnSpec("wafer", "category"), ColumnSpec("quality", "category")],
        "target": "quality",
        "ignored": ["wafer"],
    }
    values.update(overrides)
    return BatchSchema(**values)


@pytest.fixture
def make_user(db):
    """Add a user; keyword arguments override the defaults."""
    counter = iter(range(1, 10_000))

    def make(**overrides) -> User:
        n = next(counter)
        values = {"email": f"user{n}@example.com", "name": f"User {n}",
                  "password_hash": "hash"}
        values.update(overrides)
        return db.users.add(User(**values))

    return make


@pytest.fixture
def make_project(db, make_user):
    """Add a project; keyword arguments override the defaults."""
    counter = iter(range(1, 10_000))

    def make(**overrides) -> Project:
        n = next(counter)
        values = {"name": f"Project {n}", "slug": f"project-{n}",
                  "problem_type": "classification", "schema": schema_factory(),
                  "owner_id": overrides.pop("owner_id", None) or make_user().id}
        values.update(overrides)
        return db.projects.add(Project(**values))

    return make


@pytest.fixture
def clock():
    """Distinct, increasing timestamps: ``clock(i)`` is i seconds after a fixed start."""
    start = utcnow().replace(microsecond=0) - timedelta(days=1)
    return lambda seconds: start + timedelta(seconds=seconds)


@pytest.fixture
def make_schema():
    """Build a valid :class:`BatchSchema`; keyword arguments override its fields."""
    return schema_factory
