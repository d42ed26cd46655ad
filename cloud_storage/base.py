"""The storage interface every backend implements.

Keys are ``/``-separated paths relative to the storage root given by the URI (``file:///srv/x``,
``s3://bucket/prefix``...). A key never starts with ``/``; a folder is a key prefix ending in ``/``.
Backends stream: nothing here holds a whole object in memory unless asked to (``read_bytes``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import random
import threading
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

from exception_layer import (
    InvalidKey,
    InvalidStorageUri,
    ObjectNotFound,
    PathConflict,
    PlatformError,
    StorageError,
    StorageUnavailable,
)

DEFAULT_CHUNK_SIZE = 1024 * 1024

logger = logging.getLogger("trainyard.storage")

if TYPE_CHECKING:
    from cloud_storage.configuration import ConfigField

T = TypeVar("T")
R = TypeVar("R")  # a response being read


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object (a file). ``key`` is relative to the storage root.

    ``version`` changes when the object is written again with other content, even of the same
    size in the same second (S3's and Azure's ETag, GCS's generation, the file's inode and
    nanosecond modification time on local disk); None where the storage did not say.
    """

    key: str
    size: int
    modified: datetime | None = None
    version: str | None = None

    @property
    def name(self) -> str:
        return self.key.rstrip("/").rsplit("/", 1)[-1]


def bare_etag(etag: str | None) -> str | None:
    """An ETag without its quotes (servers quote it in one answer and not in another)."""
    return (etag.strip('"') or None) if etag else None


@dataclass
class ListPage:
    """One page of a listing: the files and sub-folders directly under a prefix."""

    objects: list[ObjectInfo] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    next_token: str | None = None


def _is_control(char: str) -> bool:
    # C0 and C1 control characters, DEL, and lone surrogates (which cannot be encoded to UTF-8)
    return unicodedata.category(char) in ("Cc", "Cs")


def check_key(key: str, *, folder: bool = False) -> str:
    """Return ``key`` if it is a well-formed relative key, else raise :class:`InvalidKey`.

    Refuses empty segments, ``.`` and ``..``, backslashes, NUL and control characters (C0, DEL
    and C1), lone surrogates, and a leading ``/``. A folder key may end with ``/``.
    """
    if not isinstance(key, str):
        raise InvalidKey("A path must be text.")
    if key == "" and folder:  # the root
        return key
    body = key[:-1] if folder and key.endswith("/") else key
    if body == "" or body.startswith("/"):
        raise InvalidKey("A path must be relative and not empty.")
    if "\\" in body or any(_is_control(c) for c in body):
        raise InvalidKey("A path may not contain backslashes or control characters.")
    for part in body.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKey("A path may not contain empty, '.' or '..' segments.")
    return key


def join_key(*parts: str) -> str:
    """Join key parts with single slashes (keeps a trailing slash of the last part)."""
    cleaned = [p.strip("/") for p in parts if p and p.strip("/")]
    joined = "/".join(cleaned)
    if parts and parts[-1].endswith("/") and joined:
        joined += "/"
    return joined


# -- retries -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures (timeouts, 5xx, throttling) are retried.

    ``attempts`` tries in all; before try ``n + 1`` the caller sleeps
    ``base_delay * 2 ** (n - 1)`` seconds, capped at ``max_delay``, with jitter (50-100%).
    """

    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, failures: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (failures - 1)) * random.uniform(0.5, 1)


def call_with_retry(operation: Callable[[], T], *, is_transient: Callable[[BaseException], bool],
                    policy: RetryPolicy, description: str = "storage call",
                    summarize: Callable[[BaseException], str] = lambda exc: type(exc).__name__,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``operation``; retry it with exponential backoff while it fails transiently.

    Each retry is logged on the ``trainyard.storage`` logger with ``summarize(exc)`` (which must
    not carry secrets: SDK messages may quote signed URLs). A permanent failure, or the last
    transient one, is raised as is.
    """
    failures = 0
    while True:
        try:
            return operation()
        except Exception as exc:
            failures += 1
            if failures >= policy.attempts or not is_transient(exc):
                raise
            delay = policy.delay(failures)
            logger.warning("%s failed transiently (%s); retry %d of %d in %.2fs", description,
                           summarize(exc), failures, policy.attempts - 1, delay)
            sleep(delay)


# -- error helpers shared by the cloud backends ------------------------------------------------

def safe_endpoint(url: str) -> str:
    """``url`` without user info, query or fragment (where secrets such as SAS tokens live)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__]
        pending += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)


def describe_connection_failure(exc: BaseException) -> str:
    """Why a connection failed, in plain words (read from the chain of ``exc``)."""
    chain = list(_exception_chain(exc))
    text = " ".join(f"{type(e).__name__} {e}" for e in chain).lower()
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return "connection refused"
    if any(word in text for word in ("name or service not known", "nodename nor servname",
                                     "name resolution", "getaddrinfo", "no address associated",
                                     "temporary failure in name", "nameresolution")):
        return "the host name could not be resolved"
    if any(isinstance(e, TimeoutError) for e in chain) or "timed out" in text \
            or "timeout" in text:
        return "the connection timed out"
    if "certificate" in text or "ssl" in text:
        return "the secure (TLS) connection failed"
    if "reset" in text or "aborted" in text or "remote end closed" in text:
        return "the connection was closed by the server"
    return "the connection failed"


def unreachable(endpoint: str, exc: BaseException) -> StorageUnavailable:
    """The :class:`StorageUnavailable` error for a failed connection to ``endpoint``."""
    return StorageUnavailable(
        f"Cannot reach the storage at {safe_endpoint(endpoint)}: "
        f"{describe_connection_failure(exc)}.")


# -- streams --------------------------------------------------------------------------------

#: parts of a large upload sent at once (each part is held in memory until sent)
UPLOAD_PARALLELISM = 3


def uri_prefix(path: str) -> str:
    """The folder part of an object-store address (``/a/b`` -> ``"a/b/"``, ``""`` for none),
    checked like a key."""
    prefix = path.strip("/")
    if not prefix:
        return ""
    try:
        check_key(prefix)
    except InvalidKey as exc:
        raise InvalidStorageUri("The folder in the storage address is not valid: "
                                f"{exc.message}") from exc
    return prefix + "/"


def send_parts_in_parallel(first, stream: BinaryIO, part_size: int,
                           send: Callable[[int, bytes | bytearray], T], *,
                           parallelism: int = UPLOAD_PARALLELISM,
                           max_parts: int | None = None) -> list[T]:
    """Read ``stream`` part by part (``first`` is the part already read) and ``send(number,
    data)`` up to ``parallelism`` parts at once, numbered from 1; returns the sends' results in
    order. Memory stays bounded: at most ``parallelism + 1`` parts are held. The first failure
    is raised once the parts in flight have ended.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    results: list = []
    in_flight: deque = deque()
    data, number = first, 0
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        try:
            while data:
                number += 1
                if max_parts is not None and number > max_parts:
                    raise StorageError("The file is too large for one upload.")
                in_flight.append(pool.submit(send, number, data))  # no copy
                data = None
                if len(in_flight) >= parallelism:
                    results.append(in_flight.popleft().result())
                data = read_fully(stream, part_size)
            while in_flight:
                results.append(in_flight.popleft().result())
        finally:
            for future in in_flight:
                future.cancel()
    return results


def read_fully(stream: BinaryIO, size: int) -> bytes | bytearray:
    """Read ``size`` bytes, or fewer only at the end of the stream (raw streams read short).

    Reads into one buffer (no second copy) when the stream has ``readinto``.
    """
    readinto = getattr(stream, "readinto", None)
    if readinto is None:
        pieces, missing = [], size
        while missing > 0:
            piece = stream.read(missing)
            if not piece:
                break
            pieces.append(piece)
            missing -= len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)
    buffer = bytearray(size)
    filled = 0
    with memoryview(buffer) as view:
        while filled < size:
            count = readinto(view[filled:])
            if not count:
                break
            filled += count
    del buffer[filled:]
    return buffer


def first_chunk(stream: BinaryIO, chunk_size: int, size: int | None) -> tuple[bytes | bytearray,
                                                                                  bool]:
    """Read the start of an upload: ``(data, complete)``, ``complete`` when the stream ended
    within ``chunk_size`` bytes (then one plain request stores it). ``size``, the announced size
    (held by :class:`ExactSize`), keeps small uploads from allocating a whole chunk."""
    limit = chunk_size if size is None else max(1, min(chunk_size, size + 1))
    data = read_fully(stream, limit)
    if len(data) < limit:
        return data, True
    if limit < chunk_size:  # the size hint was short: fill the chunk
        data = bytearray(data) + read_fully(stream, chunk_size - limit)
        return data, len(data) < chunk_size
    return data, False


class ExactSize(io.RawIOBase):
    """``stream`` held to the ``size`` its caller announced: reading past it, or reaching its
    end short of it, raises :class:`StorageError`. Backends read uploads through it, so an
    upload of another size than announced fails before it is committed, on every backend."""

    def __init__(self, stream: BinaryIO, size: int):
        super().__init__()
        self._stream, self.size, self.received = stream, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            count = readinto(buffer) or 0
        else:
            data = self._stream.read(len(buffer))
            count = len(data)
            buffer[:count] = data
        self.received += count
        if self.received > self.size:
            raise StorageError(f"The upload has more bytes than the {self.size} announced.")
        if not count and len(buffer) and self.received < self.size:
            raise StorageError(f"The upload ended after {self.received} of its "
                               f"{self.size} bytes.")
        return count


def exact_size(stream: BinaryIO, size: int | None) -> BinaryIO:
    """``stream`` checked against ``size`` when the caller announced one."""
    return stream if size is None else ExactSize(stream, size)


class FullReads(io.RawIOBase):
    """A view of ``stream`` whose ``read(n)`` returns ``n`` bytes unless the stream ends.

    SDKs that upload in chunks take a short read for the end of the data. ``error`` keeps what
    reading the source raised, so that a caller can tell a failing source (re-raised as is) from
    a failing storage.
    """

    def __init__(self, stream: BinaryIO):
        super().__init__()
        self._stream = stream
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            if size is None or size < 0:
                return self._stream.read()
            return read_fully(self._stream, size)
        except BaseException as exc:
            self.error = exc
            raise

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (a streamed download).

    ``close`` calls ``on_close`` (to release the connection) if given.
    """

    def __init__(self, chunks: Iterator[bytes], on_close: Callable[[], None] | None = None):
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            self._pending = memoryview(b"")
            if self._on_close is not None:
                self._on_close()
        super().close()


class _EndedEarly(Exception):
    """A response's body ended before the bytes it announced."""


def resuming_reads(size: int, open_at: Callable[[int], R], read: Callable[[R, int], bytes],
                   close: Callable[[R], None], cut: tuple[type[BaseException], ...], *,
                   policy: RetryPolicy, piece: int, label: str, what: str,
                   summarize: Callable[[BaseException], str]) -> Iterator[bytes]:
    """The ``size`` bytes of an object, in pieces of up to ``piece``, from responses that
    ``open_at(position)`` opens (from ``position`` on). A response cut midway (one of the
    ``cut`` errors, or an early end) is replaced by one opened at the next byte, after
    ``policy``'s back-off; ``policy.attempts`` cuts in a row without a byte gained give up
    with :class:`StorageUnavailable`. ``open_at`` raises for what must not be resumed (the
    object replaced meanwhile)."""
    position, failures = 0, 0
    while position < size:
        response = open_at(position)
        try:
            while position < size:
                data = read(response, min(piece, size - position))
                if not data:
                    raise _EndedEarly("The download ended early.")
                position += len(data)
                failures = 0
                yield data
        except (*cut, _EndedEarly) as exc:
            failures += 1
            if failures >= policy.attempts:
                raise StorageUnavailable(f"Reading {what} was interrupted {failures} times "
                                         "without progress; try again later.") from exc
            delay = policy.delay(failures)
            logger.warning("%s interrupted (%s); resuming from byte %d, retry %d of %d in "
                           "%.2fs", label, summarize(exc), position, failures,
                           policy.attempts - 1, delay)
            time.sleep(delay)
        finally:
            close(response)


def replaced_while_read(key: str) -> StorageError:
    return StorageError(f"{key} was replaced while it was being read; read it again.")


def chunk_stream(chunks: Iterator[bytes], on_close: Callable[[], None] | None = None,
                 buffer_size: int = DEFAULT_CHUNK_SIZE) -> BinaryIO:
    """A buffered binary file object (``read(n)``, ``with``) over ``chunks``."""
    return io.BufferedReader(ChunkReader(chunks, on_close), buffer_size)


class Storage(ABC):
    """A place where files live, addressed by URI.

    Args:
        uri: the storage root (``scheme://...``), parsed by the backend.
        credentials: backend-specific secrets (a dict), or None for ambient/anonymous access.
        client: an SDK client to use instead of building one (tests, connection pooling).
    """

    scheme: ClassVar[str] = ""
    #: the kind of storage connection admins create for this backend ("": none), its name on
    #: the pages, and the fields of such a connection (see cloud_storage.configuration)
    kind: ClassVar[str] = ""
    label: ClassVar[str] = ""
    configuration: ClassVar[tuple[ConfigField, ...]] = ()
    #: the chunk size the backend prefers for streamed uploads
    upload_chunk_size: ClassVar[int] = 8 * 1024 * 1024
    #: parts of a large upload in flight at once (memory: about (parallelism + 1) x chunk)
    upload_parallelism: ClassVar[int] = UPLOAD_PARALLELISM
    #: a streamed download is read in pieces of this size
    download_chunk_size: ClassVar[int] = 1024 * 1024
    #: how transient failures are retried; set an instance's ``retry_policy`` to change it
    retry_policy: RetryPolicy = RetryPolicy()

    @property
    def upload_memory(self) -> int:
        """About the most memory one streamed upload holds, whatever the file's size."""
        return (self.upload_parallelism + 1) * self.upload_chunk_size

    def __init__(self, uri: str, credentials: dict | None = None, client=None):
        self.uri = uri
        self.credentials = credentials or {}
        self._client = client
        self._client_lock = threading.Lock()

    @classmethod
    def check_configuration(cls, settings: dict, secrets: dict) -> dict[str, str]:
        """The rules that span several fields of a connection (each field's own rules are in
        its declaration): ``{field: message}`` for what is wrong, empty when all is well.

        Args:
            settings: the checked non-secret fields, by name.
            secrets: the secret fields (new or stored), by name.
        """
        return {}

    @classmethod
    def configured_location(cls, settings: dict, secrets: dict) -> tuple[str, dict]:
        """The storage URI and the ``credentials`` of a connection with these fields: what
        :func:`open_storage` takes (see :meth:`configured_credentials`)."""
        raise NotImplementedError(f"{cls.__name__} cannot be configured as a connection")

    @classmethod
    def configured_credentials(cls, settings: dict, secrets: dict) -> dict:
        """The set fields of a connection that are not part of where its files are."""
        locating = {f.name for f in cls.configuration if f.locates}
        return {k: v for k, v in {**settings, **secrets}.items() if v and k not in locating}

    def _sdk_client(self):
        """The injected SDK client, or the one ``_build_client`` makes on first use (once,
        even when several threads ask at the same moment)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    def _build_client(self):
        """Backends with an SDK build their client here."""
        raise NotImplementedError(f"{type(self).__name__} has no SDK client")

    def __repr__(self) -> str:  # never the credentials
        return f"<{type(self).__name__} {self.uri}>"

    # -- what each backend implements -------------------------------------------------

    @abstractmethod
    def list(
        self, prefix: str = "", *, recursive: bool = False, page_size: int = 1000,
        page_token: str | None = None,
    ) -> ListPage:
        """List objects under ``prefix`` (a folder key ending in ``/`` or ``""``).

        Non-recursive listings return the direct files in ``objects`` and the direct sub-folders
        (keys ending in ``/``) in ``folders``; recursive ones return every object below and no
        folders. Results are sorted by key; ``next_token`` is set when more remain. Folder marker
        objects (keys ending in ``/``) are never returned as objects.
        """

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Return the object's info; raise :class:`ObjectNotFound` if it does not exist."""

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """Open the object for streamed reading (a readable binary file object, closeable)."""

    @abstractmethod
    def upload(self, key: str, stream: BinaryIO, *, size: int | None = None,
               content_type: str | None = None) -> ObjectInfo:
        """Store ``stream`` under ``key``, replacing any object there.

        The object becomes visible only once complete: an interrupted upload never leaves an
        object that looks whole, nor does a stream of another length than ``size`` when
        ``size`` is given (:class:`StorageError`; read it through :func:`exact_size`).

        A stream with a ``drain_into(fd)`` method (a request body under gunicorn,
        ``controllers/spliced_body.py``) can move all its remaining bytes into a file descriptor
        inside the kernel; a backend that writes to a file may use it instead of ``read``.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; raise :class:`ObjectNotFound` if it does not exist."""

    @abstractmethod
    def make_folder(self, prefix: str) -> None:
        """Create an (empty) folder so that it shows in listings."""

    # -- keys of object stores (a bucket or container under a prefix) --------------------

    #: the folder inside the bucket or container that is this storage's root ("" or "a/b/")
    prefix: str = ""

    def _full(self, key: str, *, folder: bool = False) -> str:
        """The object name of ``key`` (checked) in the bucket."""
        return self.prefix + check_key(key, folder=folder)

    def _relative(self, name: str) -> str:
        """``key`` of a listed object name; refuses names outside the prefix."""
        if not name.startswith(self.prefix):
            raise StorageError("The storage listed an object outside of this storage's folder.")
        return name[len(self.prefix):]

    # -- where this storage is, comparable across storages --------------------------------

    def location(self, prefix: str = "") -> str:
        """The address of the folder ``prefix`` ("" or ending in ``/``) that compares across
        storages: two folders overlap (one holds the other) exactly when one's location starts
        with the other's. Every location ends with ``/``.

        Raises:
            InvalidKey: ``prefix`` is not a folder key.
        """
        if prefix:
            check_key(prefix, folder=True)
        return self._location_root() + self._folder_key(prefix)

    def _location_root(self) -> str:
        """The location of this storage's root: by default the URI's scheme and authority (the
        bucket or container) and the folder in it. A backend whose URIs can name one place in
        several ways returns one spelling for all of them."""
        parts = urlsplit(self.uri)
        return f"{parts.scheme.lower()}://{parts.netloc}/{self.prefix}"

    @staticmethod
    def _folder_key(prefix: str) -> str:
        if prefix and not prefix.endswith("/"):
            raise InvalidKey("A folder path must end with '/'.")
        return prefix

    # -- shared logic, overridable where a backend does better ---------------------------

    def signed_url(self, key: str, expires_seconds: int = 3600) -> str | None:
        """A URL that lets anyone holding it download ``key`` for ``expires_seconds``, or None
        when this storage cannot sign (local disk, no signing key in the credentials)."""
        check_key(key)
        return None

    def local_path(self, key: str) -> Path | None:
        """The file on this machine's disk that holds ``key``, for zero-copy serving, or None
        when the object lives elsewhere (every cloud backend)."""
        check_key(key)
        return None

    def _is_transient(self, exc: BaseException) -> bool:
        """True if retrying the call that raised ``exc`` may succeed (backends override)."""
        return False

    @staticmethod
    def _code(exc: BaseException) -> tuple[str, int | None]:
        """The service's error code and HTTP status carried by ``exc`` (backends override)."""
        return "", None

    def _summarize_error(self, exc: BaseException) -> str:
        """A short, secret-free description of ``exc`` for the retry log: the service's code
        and status where the backend's :meth:`_code` finds them, else the exception's type."""
        code, status = self._code(exc)
        return f"{code} (HTTP {status})" if code or status else type(exc).__name__

    def _translate_error(self, exc: BaseException, key: str | None) -> BaseException:
        """The :class:`PlatformError` that ``exc`` (an SDK error) means; ``exc`` if unknown."""
        return exc

    def _call(self, description: str, operation: Callable[[], T], *,
              key: str | None = None) -> T:
        """Run one SDK call with retries, raising SDK errors as platform errors.

        ``key`` names the object concerned, so that "not found" becomes :class:`ObjectNotFound`.
        """
        try:
            return call_with_retry(operation, is_transient=self._is_transient,
                                   policy=self.retry_policy, description=description,
                                   summarize=self._summarize_error)
        except PlatformError:
            raise
        except Exception as exc:
            translated = self._translate_error(exc, key)
            if translated is exc:
                raise
            raise translated from exc

    def check(self) -> None:
        """Verify that the storage is reachable and the credentials work (raises otherwise)."""
        self.list("", page_size=1)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def folder_exists(self, prefix: str) -> bool:
        """True if anything (object or marker) lives under the folder ``prefix``."""
        page = self.list(prefix, recursive=True, page_size=1)
        return bool(page.objects) or self._has_marker(prefix)

    def _has_marker(self, prefix: str) -> bool:
        return False

    def iter_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object below ``prefix``, page after page."""
        token = None
        while True:
            page = self.list(prefix, recursive=True, page_token=token)
            yield from page.objects
            token = page.next_token
            if not token:
                return

    def iter_read(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the object's bytes chunk by chunk."""
        with self.open_read(key) as stream:
            while True:
                chunk = stream.read(chunk_size)
                if not chunk:
                    return
                yield chunk

    def read_bytes(self, key: str) -> bytes:
        """Read a whole (small) object into memory."""
        with self.open_read(key) as stream:
            return stream.read()

    def upload_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        return self.upload(key, io.BytesIO(data), size=len(data), content_type=content_type)

    def sha256(self, key: str) -> str:
        """The SHA-256 hex digest of an object, computed while streaming it."""
        digest = hashlib.sha256()
        for chunk in self.iter_read(key):
            digest.update(chunk)
        return digest.hexdigest()

    def copy(self, src: str, dst: str) -> ObjectInfo:
        """Copy one object (backends override with a server-side copy)."""
        info = self.stat(src)
        with self.open_read(src) as stream:
            return self.upload(dst, stream, size=info.size)

    def move(self, src: str, dst: str) -> ObjectInfo:
        """Move one object: copy, then delete the source."""
        info = self.copy(src, dst)
        self.delete(src)
        return info

    def iter_folders(self, prefix: str = "") -> Iterator[str]:
        """Every folder below ``prefix`` (empty ones too), parents before their children."""
        waiting = [self._folder_key(prefix)]
        while waiting:
            folder, token = waiting.pop(), None
            while True:
                page = self.list(folder, page_token=token)
                yield from page.folders
                waiting.extend(page.folders)
                token = page.next_token
                if not token:
                    break

    def move_prefix(self, src_prefix: str, dst_prefix: str) -> int:
        """Move a whole folder, its files and its empty sub-folders, to ``dst_prefix``, which
        must not exist yet; returns the number of files moved.

        Every file is copied first, and the originals are deleted only once all the copies are
        made: a copy that fails removes the copies already made, and the folder stays where it
        was. A failure while the originals are deleted leaves files in both places, never in
        neither. A file written into the folder while it moved (new, or replaced) stays where
        it was written.
        """
        self._check_folder_move(src_prefix, dst_prefix)
        objects = list(self.iter_objects(src_prefix))
        # Folders holding no file anywhere below are kept by their markers alone.
        filled = {o.key[:i + 1] for o in objects for i, c in enumerate(o.key) if c == "/"}
        empty = [f for f in (src_prefix, *self.iter_folders(src_prefix)) if f not in filled]
        if not objects and not self.folder_exists(src_prefix):
            return 0
        try:
            for obj in objects:
                self.copy(obj.key, dst_prefix + obj.key[len(src_prefix):])
            for folder in empty:
                self.make_folder(dst_prefix + folder[len(src_prefix):])
        except BaseException:
            # dst_prefix did not exist: everything below it is a copy made here.
            try:
                self.delete_prefix(dst_prefix)
            except StorageError:
                logger.warning("Copies below %s could not be removed after a failed move.",
                               dst_prefix)
            raise
        copied = set(objects)  # an ObjectInfo equals another only with the same version
        now = list(self.iter_objects(src_prefix))
        if set(now) == copied:
            self.delete_prefix(src_prefix)  # in batches where the storage can
        else:
            for obj in now:
                if obj in copied:
                    self.delete(obj.key)
            logger.warning("Files written into %s while it moved to %s stay where they were "
                           "written.", src_prefix, dst_prefix)
        return len(objects)

    def _check_folder_move(self, src_prefix: str, dst_prefix: str) -> None:
        src_prefix, dst_prefix = self._folder_key(src_prefix), self._folder_key(dst_prefix)
        check_key(src_prefix, folder=True)
        check_key(dst_prefix, folder=True)
        if not src_prefix or not dst_prefix:
            raise InvalidKey("A folder move needs two folders below the storage's root.")
        if dst_prefix.startswith(src_prefix):
            raise InvalidKey(f"{src_prefix} cannot be moved into itself.")
        if self.folder_exists(dst_prefix):
            raise PathConflict(f"{dst_prefix} already exists.")

    def sweep_incomplete_uploads(self, older_than: timedelta) -> int:
        """Remove what uploads that never finished left behind, when they started more than
        ``older_than`` ago; returns how many were removed.

        A failed upload cleans up after itself; this is for those whose process died first
        (kill -9, a power cut) or whose clean-up failed too. The default keeps nothing to
        sweep: a backend whose unfinished uploads the service itself expires (Azure discards
        uncommitted blocks after 7 days, GCS resumable sessions after a week) needs no more.
        """
        return 0

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object below ``prefix`` (and its folder markers); returns the count."""
        if not prefix.endswith("/"):
            raise StorageError("delete_prefix needs a folder key ending in '/'.")
        count = 0
        for obj in list(self.iter_objects(prefix)):
            self.delete(obj.key)
            count += 1
        return count
