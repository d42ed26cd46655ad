"""The storage interface every backend implements.

Keys are ``/``-separated paths relative to the storage root given by the URI (``file:///srv/x``,
``s3://bucket/prefix``...). A key never starts with ``/``; a folder is a key prefix ending in ``/``.
Backends stream: nothing here holds a whole object in memory unless asked to (``read_bytes``).
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, ClassVar

from exception_layer import InvalidKey, ObjectNotFound, StorageError

DEFAULT_CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object (a file). ``key`` is relative to the storage root."""

    key: str
    size: int
    modified: datetime | None = None

    @property
    def name(self) -> str:
        return self.key.rstrip("/").rsplit("/", 1)[-1]


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


class Storage(ABC):
    """A place where files live, addressed by URI.

    Args:
        uri: the storage root (``scheme://...``), parsed by the backend.
        credentials: backend-specific secrets (a dict), or None for ambient/anonymous access.
        client: an SDK client to use instead of building one (tests, connection pooling).
    """

    scheme: ClassVar[str] = ""
    #: the chunk size the backend prefers for streamed uploads
    upload_chunk_size: ClassVar[int] = 8 * 1024 * 1024

    def __init__(self, uri: str, credentials: dict | None = None, client=None):
        self.uri = uri
        self.credentials = credentials or {}
        self._client = client

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
        object that looks whole.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; raise :class:`ObjectNotFound` if it does not exist."""

    @abstractmethod
    def make_folder(self, prefix: str) -> None:
        """Create an (empty) folder so that it shows in listings."""

    # -- shared logic, overridable where a backend does better ---------------------------

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

    def copy_prefix(self, src_prefix: str, dst_prefix: str) -> int:
        """Copy every object below ``src_prefix`` to the same relative keys below ``dst_prefix``."""
        count = 0
        for obj in list(self.iter_objects(src_prefix)):
            self.copy(obj.key, dst_prefix + obj.key[len(src_prefix):])
            count += 1
        return count

    def move_prefix(self, src_prefix: str, dst_prefix: str) -> int:
        """Move a whole folder; returns the number of objects moved."""
        count = self.copy_prefix(src_prefix, dst_prefix)
        self.delete_prefix(src_prefix)
        return count

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object below ``prefix`` (and its folder markers); returns the count."""
        if not prefix.endswith("/"):
            raise StorageError("delete_prefix needs a folder key ending in '/'.")
        count = 0
        for obj in list(self.iter_objects(prefix)):
            self.delete(obj.key)
            count += 1
        return count
