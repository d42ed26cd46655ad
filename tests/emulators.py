"""Storage emulators as real servers for tests: moto_server (S3), Azurite (Azure Blob) and
gcp-storage-emulator (GCS), each on a free port of 127.0.0.1.

Each emulator starts once per test process, on first use, and is stopped by its PID at the end
of the session (the ``*_server`` fixtures, and an ``atexit`` safety net). The ``*_storage``
context managers create a fresh bucket or container with a unique name and yield a
:class:`Storage` on it under a unique prefix; ``storage.uri`` and ``storage.credentials`` are what
a project would be configured with. Use them from any test folder::

    from tests.emulators import moto_server, s3_storage  # noqa: F401 (fixture)

    def test_something(moto_server):
        with s3_storage() as storage:
            ...

A missing emulator binary fails the test with the command that installs it (``make test``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cloud_storage import Storage, open_storage
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
NODE_BIN = REPO / "node_modules" / ".bin"

#: Azurite's well-known development account (public, documented by Microsoft)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
#: moto accepts any credentials
S3_CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing",
                  "region": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_name(prefix: str) -> str:
    """A bucket/container name valid on every cloud: lowercase letters, digits and dashes."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


class EmulatorServer:
    """One emulator process on a free port; stopped by its PID (terminate, then kill)."""

    def __init__(self, name: str, binary: Path, args: list[str], *, port: int, workdir: Path,
                 ready_path: str = "/", env: dict | None = None):
        self.name = name
        self.binary = binary
        self.args = args
        self.port = port
        self.workdir = workdir
        self.ready_path = ready_path
        self.env = env or {}
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> EmulatorServer:
        if not self.binary.exists():
            pytest.fail(f"The {self.name} emulator is not installed ({self.binary} is missing): "
                        "run `make test` (or `bash scripts/bootstrap.sh dev node`), which "
                        "installs it.", pytrace=False)
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(self.workdir), **self.env}
        self._log = open(self.workdir / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([str(self.binary), *self.args], cwd=self.workdir,
                                        env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)

        def answers() -> bool:
            code = self.process.poll()
            if code is not None:
                self.stop()
                pytest.fail(f"The {self.name} emulator exited at start (code {code}); see its "
                            f"log in {self.workdir}.", pytrace=False)
            return self._answers()

        try:
            wait_until(answers, timeout=timeout, message=f"the {self.name} emulator")
        except AssertionError:
            self.stop()
            pytest.fail(f"The {self.name} emulator did not answer within {timeout}s.",
                        pytrace=False)
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + self.ready_path, timeout=2):
                return True
        except urllib.error.HTTPError:  # any HTTP answer means it is up
            return True
        except OSError:
            return False

    def stop(self, timeout: float = 10) -> None:
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


_servers: dict[str, EmulatorServer] = {}
_lock = threading.Lock()
_root: Path | None = None


def _workdir(name: str) -> Path:
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="trainyard-emulators-"))
    return _root / name


#: set by ``make test-fast``, which starts no emulator
FAST_RUN = "TRAINYARD_TEST_FAST"


def _shared(name: str, build) -> EmulatorServer:
    if os.environ.get(FAST_RUN):
        pytest.fail(f"`make test-fast` starts no emulator, yet this test asked for {name}: "
                    "request the moto_server, azurite_server or gcs_server fixture (which "
                    "marks the test `emulator`), or mark it so.", pytrace=False)
    with _lock:
        if name not in _servers:
            _servers[name] = build().start()
        return _servers[name]


def stop_all() -> None:
    """Stop every emulator this process started (by PID) and remove their folders."""
    global _root
    with _lock:
        for server in _servers.values():
            server.stop()
        _servers.clear()
        if _root is not None:
            shutil.rmtree(_root, ignore_errors=True)
            _root = None


atexit.register(stop_all)


def moto() -> EmulatorServer:
    """The shared moto_server (S3), started on first use."""
    def build():
        port = free_port()
        return EmulatorServer("S3 (moto_server)", VENV_BIN / "moto_server",
                              ["-H", "127.0.0.1", "-p", str(port)], port=port,
                              workdir=_workdir("moto"), ready_path="/moto-api/")
    return _shared("moto", build)


def azurite() -> EmulatorServer:
    """The shared Azurite blob service, started on first use."""
    def build():
        port = free_port()
        workdir = _workdir("azurite")
        return EmulatorServer(
            "Azure Blob (azurite-blob)", NODE_BIN / "azurite-blob",
            ["--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(workdir),
             "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"],
            port=port, workdir=workdir)
    return _shared("azurite", build)


def gcs_emulator() -> EmulatorServer:
    """The shared gcp-storage-emulator, started on first use.

    In memory (``-M``): its disk store maps object names to files, so a folder marker
    ``a/b/`` (a file ``a/b``) and an object ``a/b/c`` cannot both exist there.
    """
    def build():
        port = free_port()
        workdir = _workdir("gcs")
        return EmulatorServer(
            "GCS (gcp-storage-emulator)", VENV_BIN / "gcp-storage-emulator",
            ["start", "--host", "127.0.0.1", "--port", str(port), "-q", "--in-memory"],
            port=port, workdir=workdir, ready_path="/storage/v1/b")
    return _shared("gcs", build)


# -- credentials of each emulator ------------------------------------------------------------

def s3_credentials(server: EmulatorServer | None = None) -> dict:
    return {**S3_CREDENTIALS, "endpoint_url": (server or moto()).endpoint}


def azure_credentials(server: EmulatorServer | None = None) -> dict:
    endpoint = f"{(server or azurite()).endpoint}/{AZURITE_ACCOUNT}"
    return {"connection_string": (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};")}


def gcs_credentials(server: EmulatorServer | None = None) -> dict:
    return {"endpoint": (server or gcs_emulator()).endpoint}


# -- pytest fixtures (session-wide: one server per test run) --------------------------------
# None of them stops its server at teardown: ``stop_all`` at the session's end does
# (``pytest_sessionfinish`` in tests/conftest.py; atexit as well). A fixture that stopped
# them all when it was torn down would stop, say, moto_server before a session fixture set up
# earlier had emptied its bucket (pytest tears session fixtures down in reverse order, and the
# emulator fixtures do not depend on each other), which failed the last test of a worker.

@pytest.fixture(scope="session")
def moto_server() -> Iterator[EmulatorServer]:
    """moto_server on a free port: ``.endpoint`` is its URL, ``.port`` its port."""
    yield moto()


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[EmulatorServer]:
    """Azurite's blob service on a free port (account devstoreaccount1 under ``.endpoint``)."""
    yield azurite()


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[EmulatorServer]:
    """gcp-storage-emulator on a free port: ``.endpoint`` is its URL."""
    yield gcs_emulator()


# -- fresh storages on the emulators -----------------------------------------------------------

@contextmanager
def s3_storage(tmp_path: Path | None = None, *, prefix: str | None = None) -> Iterator[Storage]:
    """A fresh bucket on moto_server; yields an S3 storage on it under a unique prefix.

    The bucket and everything in it are deleted on exit (moto keeps objects in memory).
    """
    server = moto()
    bucket = unique_name("ty")
    prefix = unique_name("run") if prefix is None else prefix
    storage = open_storage(f"s3://{bucket}/{prefix}", s3_credentials(server))
    client = storage.client
    client.create_bucket(Bucket=bucket)
    try:
        yield storage
    finally:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                          UploadId=upload["UploadId"])
        client.delete_bucket(Bucket=bucket)


@contextmanager
def azure_storage(tmp_path: Path | None = None, *,
                  prefix: str | None = None) -> Iterator[Storage]:
    """A fresh container on Azurite; yields an Azure Blob storage on it under a unique prefix
    (``wasbs://container@devstoreaccount1/prefix``). The container is deleted on exit."""
    server = azurite()
    container = unique_name("ty")
    prefix = unique_name("run") if prefix is None else prefix
    storage = open_storage(f"wasbs://{container}@{AZURITE_ACCOUNT}/{prefix}",
                           azure_credentials(server))
    storage.service_client.create_container(container)
    try:
        yield storage
    finally:
        storage.service_client.delete_container(container)


# The GCS emulator serves one request at a time: its tests upload with few threads.
GCS_PARALLELISM = 2
GCS_CLEANUP_LIMIT = 200


@contextmanager
def gcs_storage(tmp_path: Path | None = None, *, prefix: str | None = None) -> Iterator[Storage]:
    """A fresh bucket on gcp-storage-emulator; yields a GCS storage on it under a unique prefix.
    The bucket and its objects are deleted on exit."""
    server = gcs_emulator()
    bucket = unique_name("ty")
    prefix = unique_name("run") if prefix is None else prefix
    storage = open_storage(f"gs://{bucket}/{prefix}", gcs_credentials(server))
    new_bucket = storage.client.bucket(bucket)
    # The emulator rewrites its whole metadata on every write: soft-deleted objects kept for
    # 7 days (the default) would slow every later test.
    new_bucket.soft_delete_policy.retention_duration_seconds = 0
    storage.client.create_bucket(new_bucket)
    try:
        yield storage
    finally:
        from google.api_core.exceptions import Conflict

        names = [blob.name for blob in storage.client.list_blobs(bucket)]
        # Deleting costs the emulator ~20 ms per object (it rewrites its metadata each time):
        # a crowded bucket is left to the in-memory emulator, which goes at the session's end.
        if len(names) <= GCS_CLEANUP_LIMIT:
            for name in names:
                new_bucket.delete_blob(name)
            try:
                new_bucket.delete()
            except Conflict:  # an interrupted resumable upload's session remains
                pass


# -- the same storages as Trainyard storage connections ------------------------------------

def connection_definition(name: str, storage) -> dict:
    """The storage-connection definition (API body) that points Trainyard at the bucket and
    prefix of ``storage``."""
    parts = urlsplit(storage.uri)
    prefix = parts.path.strip("/")
    creds = storage.credentials
    if parts.scheme == "s3":
        return {"name": name, "kind": "s3", "settings": {
            "bucket": parts.netloc, "prefix": prefix, "region": creds.get("region", ""),
            "endpoint_url": creds["endpoint_url"], "access_key_id": creds["access_key_id"]},
            "secrets": {"secret_access_key": creds["secret_access_key"]}}
    if parts.scheme in ("wasbs", "az"):
        return {"name": name, "kind": "azure", "settings": {
            "container": parts.netloc.split("@")[0], "prefix": prefix},
            "secrets": {"connection_string": creds["connection_string"]}}
    if parts.scheme == "gs":
        return {"name": name, "kind": "gcs", "settings": {
            "bucket": parts.netloc, "prefix": prefix, "endpoint": creds["endpoint"]}}
    return {"name": name, "kind": "local", "settings": {"directory": parts.path}}
