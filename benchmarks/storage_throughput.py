"""Storage throughput through Trainyard's file manager against direct SDK calls.

For each backend (local disk, S3 on moto_server, Azure Blob on Azurite, GCS on
gcp-storage-emulator), it uploads and downloads one large file (500 MB by default) through the
running app (HTTP: ``PUT .../files/content`` streamed into the storage, ``GET .../files/content``
which streams or redirects to the cloud's signed URL) and through the cloud's own SDK to the same
emulator, in the same run (for local disk: a file copy, flushed to disk as Trainyard's local
storage flushes each upload). It prints MB/s for both, the ratio (target: at least 0.8), and
the web process's peak RSS growth during the upload (target: under 100 MB). For local disk it
also moves the file over a bare loopback TCP connection (no HTTP, no app), the ceiling of any
server on this machine, and prints how close Trainyard came to it.

    .venv/bin/python benchmarks/storage_throughput.py [--mb 500] [--backends local,s3,azure,gcs]
        [--rounds 5]
"""

from __future__ import annotations

import argparse
import fcntl
import http.client as http_client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import emulators  # noqa: E402 - the same emulator servers the tests use

ADMIN = {"email": "bench@example.com", "name": "Bench", "password": "benchmark password"}
CHUNK = 8 * 1024 * 1024
PIPE_BYTES = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_file(path: Path, megabytes: int) -> None:
    block = os.urandom(CHUNK)
    with open(path, "wb") as out:
        for _ in range(megabytes * 1024 * 1024 // CHUNK):
            out.write(block)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def worker_pid(master: int) -> int:
    """gunicorn's worker: the child of the master process."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.2)
    raise SystemExit("no gunicorn worker found")


class PeakRss:
    """Samples a process's RSS every 20 ms while in use."""

    def __init__(self, pid: int):
        self.pid, self.start, self.peak = pid, rss_kb(pid), rss_kb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kb(self.pid))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 1024


def start_trainyard(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(workdir / "data"), "INSTANCE_DIR": str(workdir / "inst"),
           "TRAINYARD_PORT": str(port), "LOG_LEVEL": "WARNING", "MAX_UPLOAD_MB": "4096"}
    proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "app.log", "wb"),
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/healthz", timeout=5).ok:
                return proc, base
        except requests.RequestException:  # not listening yet, or slow on a busy machine
            time.sleep(0.2)
    raise SystemExit("Trainyard did not start; see " + str(workdir / "app.log"))


def settle(*stale: Path) -> None:
    """Before each timed transfer: remove the files the previous one wrote and flush the page
    cache's dirty pages, so that no transfer pays for another's write-back or freed blocks."""
    for path in stale:
        path.unlink(missing_ok=True)
    os.sync()


def durable(path: Path) -> None:
    """Flush a written file's data and its folder's entry to disk, as ``LocalStorage.upload``
    does before an upload is acknowledged."""
    for target, flags, sync in ((path, os.O_RDONLY, os.fdatasync),
                                (path.parent, os.O_RDONLY | os.O_DIRECTORY, os.fsync)):
        fd = os.open(target, flags)
        try:
            sync(fd)
        finally:
            os.close(fd)


def direct_transfer(backend: str, storage, source: Path, sink: Path) -> tuple[float, float]:
    """Seconds to upload and download ``source`` with the cloud's own SDK (or the file
    system for local disk), to the same place Trainyard uses."""
    parts = urlsplit(storage.uri)
    key = f"{parts.path.strip('/')}/direct/big.bin".lstrip("/")
    creds = storage.credentials
    if backend == "local":
        target = Path(parts.path) / "direct" / "big.bin"
        target.parent.mkdir(parents=True, exist_ok=True)
        settle(target)
        began = time.perf_counter()
        shutil.copyfile(source, target)
        durable(target)  # what Trainyard's local storage does before it answers
        up = time.perf_counter() - began
        settle(sink)
        began = time.perf_counter()
        shutil.copyfile(target, sink)
        return up, time.perf_counter() - began
    if backend == "s3":
        import boto3
        from boto3.s3.transfer import TransferConfig

        client = boto3.client("s3", endpoint_url=creds["endpoint_url"],
                              aws_access_key_id=creds["access_key_id"],
                              aws_secret_access_key=creds["secret_access_key"],
                              region_name=creds.get("region") or "us-east-1")
        config = TransferConfig(multipart_chunksize=CHUNK)
        settle()
        began = time.perf_counter()
        client.upload_file(str(source), parts.netloc, key, Config=config)
        up = time.perf_counter() - began
        settle(sink)
        began = time.perf_counter()
        client.download_file(parts.netloc, key, str(sink), Config=config)
        return up, time.perf_counter() - began
    if backend == "azure":
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(creds["connection_string"],
                                                           api_version="2025-11-05")
        blob = service.get_blob_client(parts.netloc.split("@")[0], key)
        settle()
        began = time.perf_counter()
        with open(source, "rb") as data:
            blob.upload_blob(data, overwrite=True)
        up = time.perf_counter() - began
        settle(sink)
        began = time.perf_counter()
        with open(sink, "wb") as out:
            blob.download_blob().readinto(out)
        return up, time.perf_counter() - began
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    client = gcs.Client(project="bench", credentials=AnonymousCredentials(),
                        client_options={"api_endpoint": creds["endpoint"]})
    blob = client.bucket(parts.netloc).blob(key)  # the SDK's default chunks (100 MiB)
    settle()
    began = time.perf_counter()
    blob.upload_from_filename(str(source))
    up = time.perf_counter() - began
    settle(sink)
    began = time.perf_counter()
    blob.download_to_filename(str(sink))
    return up, time.perf_counter() - began


def app_transfer(http: requests.Session, base: str, project_id: str, source: Path,
                 sink: Path, pid: int) -> tuple[float, float, float]:
    """Upload then download through the app. The client hands the bytes to the kernel
    (sendfile up, splice down) so that it measures the server, not itself: requests' 8 KB
    writes, or even http.client's 8 MB blocks, cost this 2-core machine as much CPU as the
    server's side of the transfer."""
    netloc = urlsplit(base).netloc
    path = f"/api/v1/projects/{project_id}/files/content?path=data/big.bin"
    headers = {"Cookie": "; ".join(f"{c.name}={c.value}" for c in http.cookies),
               "X-CSRFToken": http.headers["X-CSRFToken"],
               "Content-Length": str(source.stat().st_size),
               "Content-Type": "application/octet-stream"}
    connection = http_client.HTTPConnection(netloc, timeout=3600)
    # The previous round's file goes first: replacing it would time its deletion too.
    http.delete(f"{base}/api/v1/projects/{project_id}/files", params={"path": "data/big.bin"},
                timeout=60)
    settle()
    with PeakRss(pid) as memory, open(source, "rb") as data:
        began = time.perf_counter()
        connection.putrequest("PUT", path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.sock.sendfile(data)
        response = connection.getresponse()
        response.read()
        up = time.perf_counter() - began
    if response.status != 201:
        raise SystemExit(f"upload failed: {response.status}")
    settle(sink)
    began = time.perf_counter()
    cookie = {"Cookie": headers["Cookie"]}
    location = fetch(netloc, path, cookie, sink)
    if location is not None:  # a cloud's signed URL: the bytes come from the cloud
        target = urlsplit(location)
        fetch(target.netloc, urlunsplit(("", "", target.path, target.query, "")), {}, sink)
    down = time.perf_counter() - began
    connection.close()
    return up, down, memory.growth_mb


def fetch(netloc: str, path: str, headers: dict, sink: Path) -> str | None:
    """GET ``path`` into ``sink`` with http.client: the body goes from the socket into the
    file with splice (as the upload uses sendfile), else in 8 MB reads into one buffer.
    Returns the Location of a redirect instead of following it."""
    connection = http_client.HTTPConnection(netloc, timeout=3600)
    try:
        connection.request("GET", path, headers=headers)
        sock = connection.sock  # http.client lets go of it when the answer closes the connection
        response = connection.getresponse()
        if response.status in (301, 302, 303, 307):
            response.read()
            return response.getheader("Location")
        if response.status != 200:
            raise SystemExit(f"download failed: {response.status} {response.read()[:200]!r}")
        with open(sink, "wb") as out:
            if response.length is not None and not response.chunked:
                splice_body(response, sock, out)
            else:
                buffer = memoryview(bytearray(CHUNK))
                while count := response.readinto(buffer):
                    out.write(buffer[:count])
        return None
    finally:
        connection.close()


def splice_body(response: http_client.HTTPResponse, sock: socket.socket, out) -> None:
    """Write what http.client has already buffered of the body, then splice the rest."""
    left = response.length
    held = response.fp.read(min(left, len(response.fp.peek())))
    out.write(held)
    out.flush()
    sock.setblocking(True)  # a timeout makes the socket non-blocking underneath
    splice_into(sock, out.fileno(), left - len(held))


def splice_into(sock: socket.socket, fd: int, count: int) -> None:
    """Move ``count`` bytes from ``sock`` into ``fd`` inside the kernel (socket, pipe, file)."""
    pipe_out, pipe_in = os.pipe()
    fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    try:
        while count:
            got = os.splice(sock.fileno(), pipe_in, min(count, PIPE_BYTES))
            if not got:
                raise SystemExit("transfer cut short")
            count -= got
            while got:
                got -= os.splice(pipe_out, fd, got)
    finally:
        os.close(pipe_out)
        os.close(pipe_in)


def loopback_transfer(source: Path, target: Path, sink: Path) -> tuple[float, float]:
    """Seconds to move ``source`` into ``target`` and back into ``sink`` over a bare loopback
    TCP connection, with the kernel calls the app and this client use (sendfile on one end,
    splice into the file on the other) and nothing else: no HTTP, no app. This is the most any
    server reached over the network can do on this machine; the local row's app figures are
    compared with it as well as with the file copy."""
    size = source.stat().st_size
    server = socket.create_server(("127.0.0.1", 0))
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            peer, _ = server.accept()
            with peer, open(target, "wb") as out:
                splice_into(peer, out.fileno(), size)
                durable(target)
                peer.sendall(b"k")
            peer, _ = server.accept()
            with peer, open(target, "rb") as data:
                peer.recv(1)
                peer.sendfile(data)
        except BaseException as exc:  # reported by the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        settle(target)
        began = time.perf_counter()
        with socket.create_connection(server.getsockname()) as sock, open(source, "rb") as data:
            sock.sendfile(data)
            if sock.recv(1) != b"k":
                raise SystemExit("loopback upload failed")
        up = time.perf_counter() - began
        settle(sink)
        began = time.perf_counter()
        with socket.create_connection(server.getsockname()) as sock, open(sink, "wb") as out:
            sock.sendall(b"g")
            splice_into(sock, out.fileno(), size)
        down = time.perf_counter() - began
    finally:
        thread.join(timeout=60)
        server.close()
    if failed:
        raise failed[0]
    return up, down


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--backends", default="local,s3,azure,gcs")
    parser.add_argument("--rounds", type=int, default=5,
                        help="transfers per figure, app and SDK alternating; the best counts")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    workdir = Path(tempfile.mkdtemp(prefix="trainyard-storage-bench-"))
    source, sink = workdir / "big.bin", workdir / "copy.bin"
    make_file(source, args.mb)
    size_mb = source.stat().st_size / 1e6
    app, base = start_trainyard(workdir)
    rows, ok = [], True
    loopback: list[tuple[float, float]] = []  # local disk's rounds over bare loopback TCP
    try:
        pid = worker_pid(app.pid)
        http = requests.Session()
        token = http.post(f"{base}/api/v1/setup", json=ADMIN, timeout=30).json()
        http.headers["X-CSRFToken"] = token["csrf_token"]
        for backend in backends:
            with ExitStack() as stack:
                if backend == "local":
                    from cloud_storage import open_storage

                    folder = workdir / "local-storage"
                    folder.mkdir()
                    storage = open_storage(folder.as_uri())
                else:
                    factory = {"s3": emulators.s3_storage, "azure": emulators.azure_storage,
                               "gcs": emulators.gcs_storage}[backend]
                    storage = stack.enter_context(factory())
                connection = http.post(
                    f"{base}/api/v1/storage-connections", timeout=30,
                    json=emulators.connection_definition(f"bench-{backend}", storage))
                connection.raise_for_status()
                project = http.post(f"{base}/api/v1/projects", timeout=30, json={
                    "name": f"Bench {backend}", "problem_type": "regression",
                    "storage_connection_id": connection.json()["id"],
                    "schema": {"filename_pattern": r"^x\.csv$", "target": "y",
                               "columns": [{"name": "x", "type": "float"},
                                           {"name": "y", "type": "float"}]}})
                project.raise_for_status()
                rounds = []
                for _ in range(args.rounds):
                    app_up, app_down, growth = app_transfer(http, base, project.json()["id"],
                                                            source, sink, pid)
                    assert sink.stat().st_size == source.stat().st_size
                    direct_up, direct_down = direct_transfer(backend, storage, source, sink)
                    figures = (size_mb / app_up, size_mb / direct_up, size_mb / app_down,
                               size_mb / direct_down, growth)
                    if backend == "local":
                        wire = loopback_transfer(source, workdir / "wire.bin", sink)
                        loopback.append((size_mb / wire[0], size_mb / wire[1]))
                        figures += loopback[-1]
                    rounds.append(figures)
                    print(f"{backend}: " + " ".join(f"{x:.1f}" for x in figures), flush=True)
                # The best of each figure (noise on a shared VM only ever slows a transfer
                # down), and the largest memory growth.
                best = [max(r[i] for r in rounds) for i in range(4)]
                rows.append((backend, *best, max(r[4] for r in rounds)))
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        app.wait(timeout=30)
        emulators.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{size_mb:.0f} MB file; MB/s through Trainyard vs the SDK directly\n")
    print(f"{'backend':<8}{'up app':>9}{'up SDK':>9}{'ratio':>7}{'down app':>10}"
          f"{'down SDK':>10}{'ratio':>7}{'RSS +MB':>9}  verdict")
    for backend, app_up, sdk_up, app_down, sdk_down, growth in rows:
        up_ratio, down_ratio = app_up / sdk_up, app_down / sdk_down
        passed = up_ratio >= 0.8 and down_ratio >= 0.8 and growth < 100
        ok &= passed
        print(f"{backend:<8}{app_up:>9.1f}{sdk_up:>9.1f}{up_ratio:>7.2f}{app_down:>10.1f}"
              f"{sdk_down:>10.1f}{down_ratio:>7.2f}{growth:>9.1f}  "
              f"{'PASS' if passed else 'FAIL'}")
    print("\nTargets: ratio >= 0.8 both ways; web process RSS growth < 100 MB during upload.")
    if loopback:
        local = next(row for row in rows if row[0] == "local")
        wire_up, wire_down = (max(r[i] for r in loopback) for i in range(2))
        print(f"\nFor scale, local disk over bare loopback TCP (sendfile into splice, no HTTP, "
              f"no app), best of {len(loopback)}:\n  up {wire_up:.1f} MB/s "
              f"({wire_up / local[2]:.2f} of the copy), down {wire_down:.1f} MB/s "
              f"({wire_down / local[4]:.2f} of the copy); Trainyard reached "
              f"{local[1] / wire_up:.2f} and {local[3] / wire_down:.2f} of it.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
