"""Database servers for tests: a real PostgreSQL and a MongoDB wire server, each on a free port
of 127.0.0.1, in a temporary folder of its own.

- PostgreSQL: ``initdb`` + ``pg_ctl`` of the machine's PostgreSQL (on ``PATH`` or under
  ``/usr/lib/postgresql/*/bin``), never the machine's running server. PostgreSQL refuses to run
  as root: as root, the server runs as the ``postgres`` user (else ``nobody``), which owns the
  folder. Its database uses an ICU collation where PostgreSQL has ICU (Debian's has), so the
  tests show that the store orders strings byte by byte whatever the database's collation.
  :meth:`PostgresServer.fresh_url` gives each test its own schema, dropped afterwards.
- MongoDB: SecantusDB's ``secantusd-py`` (from the dev requirements), a MongoDB-compatible
  server speaking the wire protocol, single node. See :data:`SECANTUS_LACKS` for what it lacks.

Each server starts once per test process, on first use, and stops by its PID at the end of the
session (``stop_all`` from ``tests/conftest.py``, and an ``atexit`` safety net).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
#: the superuser initdb creates (trust authentication, on 127.0.0.1 and the socket only)
PG_USER = "trainyard"
PG_DATABASE = "trainyard"

#: What SecantusDB 0.7.0b3 (``secantusd-py``) does not do that MongoDB does, as far as the store
#: contract and its tests reach: no replica set or sharding (single node only, so the tests run
#: it ``--standalone`` and never use change streams or transactions across nodes); no text
#: indexes (``createIndex`` of a ``"text"`` key answers CannotCreateIndex, so
#: ``MongoStore.search`` matches words in the web process there, with a WARNING: the ``$text``
#: path is exercised only with ``TEST_MONGODB_URI``); it is a Python server, slower than
#: ``mongod`` under load. Every other MongoDB feature the contract uses (unique and compound
#: indexes, conditional single-document updates raced by threads and processes,
#: ``$in``/``$ne``/ranges/``$all``, sorts on several fields, nested values, projections) passes
#: against it.
SECANTUS_LACKS = ("replica sets, sharding, multi-node transactions (single node only), "
                  "text indexes")

#: parameters of the store backends on these servers, marked so that `make test-fast` skips them
POSTGRESQL = pytest.param("postgresql", marks=pytest.mark.database)
MONGODB = pytest.param("mongodb", marks=pytest.mark.database)
#: the backends several processes can share (mongomock lives in one process)
SHARED_BACKENDS = ("sqlite", POSTGRESQL, MONGODB)


def mongodb_url(base: str, db_name: str) -> str:
    """``base`` (a ``mongodb://`` URL) naming the database ``db_name`` instead."""
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + db_name, parts.query, parts.fragment))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def postgres_binary(name: str) -> str | None:
    """A PostgreSQL program: on PATH, else the newest of Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit()
                        else 0)
    return candidates[-1] if candidates else None


def _server_user() -> str | None:
    """Who runs PostgreSQL: None (this user) unless we are root, which initdb refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.fail("Running as root, and neither a `postgres` nor a `nobody` user exists to run "
                "the test PostgreSQL server as.", pytrace=False)


class PostgresServer:
    """A PostgreSQL cluster of its own, started with ``pg_ctl`` and stopped by its PID."""

    def __init__(self):
        self.initdb = postgres_binary("initdb")
        self.pg_ctl = postgres_binary("pg_ctl")
        self.port = free_port()
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="trainyard-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._admin = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{PG_DATABASE}"

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        user = {"user": self.user} if self.user else {}
        return subprocess.run(args, cwd=self.root, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, **user)

    def start(self) -> PostgresServer:
        if not (self.initdb and self.pg_ctl):
            pytest.fail("PostgreSQL's initdb/pg_ctl are not installed: run `make test` (or "
                        "`bash scripts/bootstrap.sh dev`), which installs the `postgresql` "
                        "package.", pytrace=False)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        base = [self.initdb, "-D", str(self.data), "-U", PG_USER, "-A", "trust", "-E", "UTF8",
                "--no-sync", "--locale=C.UTF-8"]
        done = self._run([*base, "--locale-provider=icu", "--icu-locale=en-US"])
        if done.returncode != 0:  # a PostgreSQL built without ICU
            shutil.rmtree(self.data, ignore_errors=True)
            done = self._run(base)
        if done.returncode != 0:
            pytest.fail(f"initdb failed: {done.stderr.strip()}", pytrace=False)
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        done = self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w",
                          "-t", "60", "-o", options, "start"], timeout=90)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            self.stop()
            pytest.fail(f"PostgreSQL did not start: {done.stderr.strip()} {log[-2000:]}",
                        pytrace=False)
        self._execute(f"CREATE DATABASE {PG_DATABASE}", database="postgres")
        return self

    def _execute(self, sql: str, database: str = PG_DATABASE) -> None:
        import psycopg

        url = f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)

    def admin(self):
        import psycopg

        if self._admin is None:
            self._admin = psycopg.connect(self.base_url, autocommit=True)
        return self._admin

    def fresh_url(self) -> tuple[str, str]:
        """A new, empty schema: (its URL, its name). Drop it with :meth:`drop`."""
        schema = f"test_{secrets.token_hex(6)}"
        with self._lock:
            self.admin().execute(f"CREATE SCHEMA {schema}")
        return f"{self.base_url}?options=-csearch_path%3D{schema}", schema

    def drop(self, schema: str) -> None:
        with self._lock:
            self.admin().execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        pid = self.pid()
        if pid is not None:
            done = self._run([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"])
            if done.returncode != 0 and self.pid() == pid:
                try:
                    os.kill(pid, signal.SIGKILL)  # the postmaster this server started
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.root, ignore_errors=True)


class SecantusServer:
    """``secantusd-py`` on a free port, its data in a temporary folder; stopped by its PID."""

    def __init__(self):
        self.binary = VENV_BIN / "secantusd-py"
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="trainyard-mongodb-"))
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> SecantusServer:
        if not self.binary.exists():
            pytest.fail(f"SecantusDB is not installed ({self.binary} is missing): run `make "
                        "test` (or `bash scripts/bootstrap.sh dev`).", pytrace=False)
        self._log = open(self.root / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(self.binary), "--host", "127.0.0.1", "--port", str(self.port),
             "--storage-path", str(self.root / "data"), "--standalone", "--log-level",
             "WARNING"], cwd=self.root, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)

        def up() -> bool:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                pytest.fail(f"secantusd-py exited at start (code {code}).", pytrace=False)
            return _answers(self.port)

        wait_until(up, timeout=60, interval=0.05, message="secantusd-py")
        return self

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds (its data is thrown away anyway)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.root, ignore_errors=True)


_servers: dict = {}
_lock = threading.Lock()


def _shared(name: str, build):
    if os.environ.get("TRAINYARD_TEST_FAST"):
        pytest.fail(f"`make test-fast` starts no database server, yet this test asked for "
                    f"{name}: mark it `database`.", pytrace=False)
    with _lock:
        if name not in _servers:
            _servers[name] = build().start()
        return _servers[name]


def postgres() -> PostgresServer:
    """This process's PostgreSQL server, started on first use."""
    return _shared("postgres", PostgresServer)


def mongodb() -> SecantusServer:
    """This process's MongoDB wire server (SecantusDB), started on first use."""
    return _shared("mongodb", SecantusServer)


def stop_all() -> None:
    """Stop every database server this process started (by PID) and remove their folders."""
    with _lock:
        for server in _servers.values():
            server.stop()
        _servers.clear()


atexit.register(stop_all)


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    return postgres()


@pytest.fixture(scope="session")
def mongodb_server() -> SecantusServer:
    return mongodb()
