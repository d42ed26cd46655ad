"""One project's files on whatever storage it uses.

Paths here are relative to the project's folder (``<storage root>/<slug>/``) and checked before
they reach the storage: no ``..``, absolute paths, backslashes, NUL or control characters, and
nothing that resolves outside the project.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator
from typing import BinaryIO

from cloud_storage import ListPage, ObjectInfo, Storage, check_key
from exception_layer import InvalidKey, ObjectNotFound, PlatformError, ReadOnlyFolder

TRAINING = "training_batch_files/"
PREDICTION = "prediction_batch_files/"
ARCHIVE = "archive/"
MODELS = "models/"
OUTPUT = "prediction_output/"
#: ground-truth labels for past predictions (``prediction_id`` and the target), as CSV files
FEEDBACK = "feedback/"
STANDARD_FOLDERS = (TRAINING, PREDICTION, ARCHIVE, MODELS, OUTPUT, FEEDBACK)
#: folders the platform writes; users may read them but not upload into them
SYSTEM_FOLDERS = (ARCHIVE, MODELS, OUTPUT)
#: folders the file manager shows but never changes for a user: a model version is written by
#: training and deleted whole through the model registry, which verifies it before serving
READ_ONLY_FOLDERS = (MODELS,)
MAX_NAME_LENGTH = 255


def batch_folder(path: str) -> str | None:
    """The batch folder ``path`` lies in (:data:`TRAINING` or :data:`PREDICTION`), else None."""
    for folder in (TRAINING, PREDICTION):
        if path.startswith(folder):
            return folder
    return None


def check_path(path: str, *, folder: bool = False) -> str:
    """Validate a user-supplied project-relative path; return it normalised.

    Raises :class:`InvalidKey` with a message that says what is wrong.
    """
    if not isinstance(path, str):
        raise InvalidKey("A path must be text.")
    if folder and path and not path.endswith("/"):
        path += "/"
    if path.startswith("/"):
        raise InvalidKey("Absolute paths are not allowed.")
    if "\x00" in path:
        raise InvalidKey("File names may not contain NUL characters.")
    check_key(path, folder=folder)
    for part in path.rstrip("/").split("/"):
        if part and len(part.encode()) > MAX_NAME_LENGTH:
            raise InvalidKey(f"A file or folder name may be at most {MAX_NAME_LENGTH} bytes.")
        if part.startswith(".trainyard-"):
            raise InvalidKey("Names starting with .trainyard- are reserved.")
    return path


def check_user_may_change(path: str) -> str:
    """Refuse a user's change (upload, delete, move, rename, new folder) at ``path`` when it
    lies in a read-only folder (:data:`READ_ONLY_FOLDERS`); return ``path`` normalised.

    Raises:
        ReadOnlyFolder (403): ``path`` is in a model version folder.
        InvalidKey: ``path`` is not a valid path.
    """
    path = check_path(path, folder=path.endswith("/")) if path else ""
    for folder in READ_ONLY_FOLDERS:
        if path.startswith(folder):
            raise ReadOnlyFolder(
                f"Model versions are read-only in the file manager ({path}): a version is "
                "deleted whole, through the model registry (the project's Models page, or "
                "DELETE /api/v1/projects/<id>/models/<version>).")
    return path


#: characters that change the direction text is shown in: a name holding one displays as
#: something other than what it is ("invoice\u202excs.exe" shows as "invoiceexe.scx")
DIRECTION_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                               "\u2066\u2067\u2068\u2069")


def check_file_name(name: str) -> str:
    """Validate a single file name (no folders in it), with a reason for each kind of refusal:
    a line break, a backslash, a text-direction control, then :func:`check_path`'s rules."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidKey("A file name is required.")
    if "/" in name:
        raise InvalidKey("A file name may not contain '/'.")
    if "\n" in name or "\r" in name:
        raise InvalidKey("A file name may not contain a line break.")
    if "\\" in name:
        raise InvalidKey("A file name may not contain a backslash (\\); folders are separated "
                         "by '/'.")
    controls = sorted({f"U+{ord(c):04X}" for c in name if c in DIRECTION_CONTROLS})
    if controls:
        raise InvalidKey(f"A file name may not contain text-direction control characters "
                         f"({', '.join(controls)}): they make it display as another name.")
    return check_path(name)


def _paths_as_the_user_gave_them(method):
    """The storage names keys with the project's folder in front (``<slug>/notes/a.txt``); an
    error it raises reaches the user with the path as they know it (``notes/a.txt``)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except PlatformError as exc:
            _without_prefix(exc, self.prefix)
            raise

    return wrapper


def _without_prefix(exc: PlatformError, prefix: str) -> None:
    """Take the project's folder out of the keys ``exc``'s message names."""
    # Only where a key starts: not inside another word or path.
    relative = re.sub(rf"(?<![\w./-]){re.escape(prefix)}", "", exc.message)
    if relative != exc.message:
        exc.message, exc.args = relative, (relative,)


class ProjectFiles:
    """The files of the project whose folder is ``slug`` on ``storage``."""

    def __init__(self, storage: Storage, slug: str):
        if not isinstance(slug, str) or not slug or "/" in slug:
            raise InvalidKey("Invalid project folder.")
        check_key(slug)  # no '.', '..', backslash or control characters
        self.storage = storage
        self.slug = slug
        self.prefix = f"{slug}/"

    def key(self, path: str, *, folder: bool = False) -> str:
        """The storage key for a project-relative path (validated)."""
        return self.prefix + check_path(path, folder=folder)

    def relative(self, key: str) -> str:
        if not key.startswith(self.prefix):
            # A listing returned a key outside the project: never pass it on.
            raise InvalidKey("A listed key is outside the project's folder.")
        return key[len(self.prefix):]

    def _relative_info(self, info: ObjectInfo) -> ObjectInfo:
        return dataclasses.replace(info, key=self.relative(info.key))

    # -- layout ------------------------------------------------------------------------

    @_paths_as_the_user_gave_them
    def ensure_layout(self) -> None:
        """Create the standard folders."""
        for folder in STANDARD_FOLDERS:
            self.storage.make_folder(self.prefix + folder)

    # -- reading -----------------------------------------------------------------------

    @_paths_as_the_user_gave_them
    def list(self, path: str = "", *, page_token: str | None = None,
             page_size: int = 200) -> ListPage:
        """Files and folders directly in ``path`` (a folder), paths relative to the project."""
        key = self.key(path, folder=True) if path else self.prefix
        page = self.storage.list(key, page_size=page_size, page_token=page_token)
        return ListPage(objects=[self._relative_info(o) for o in page.objects],
                        folders=[self.relative(f) for f in page.folders],
                        next_token=page.next_token)

    @_paths_as_the_user_gave_them
    def list_files(self, folder: str) -> list[ObjectInfo]:
        """Every file below ``folder`` (recursively), sorted by path."""
        return [self._relative_info(o)
                for o in self.storage.iter_objects(self.key(folder, folder=True))]

    @_paths_as_the_user_gave_them
    def stat(self, path: str) -> ObjectInfo:
        return self._relative_info(self.storage.stat(self.key(path)))

    @_paths_as_the_user_gave_them
    def exists(self, path: str) -> bool:
        return self.storage.exists(self.key(path))

    @_paths_as_the_user_gave_them
    def folder_exists(self, path: str) -> bool:
        return self.storage.folder_exists(self.key(path, folder=True))

    @_paths_as_the_user_gave_them
    def local_path(self, path: str):
        """The file on this machine that holds ``path``, or None if the storage is remote."""
        return self.storage.local_path(self.key(path))

    @_paths_as_the_user_gave_them
    def open_read(self, path: str) -> BinaryIO:
        return self.storage.open_read(self.key(path))

    def iter_read(self, path: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        # The storage's iter_read is a generator: its errors come while it is read, not here.
        return self._paths_as_the_user_gave_them_while(
            self.storage.iter_read(self.key(path), chunk_size))

    def _paths_as_the_user_gave_them_while(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """``chunks``, whose errors (raised while they are read) name paths as the user does."""
        try:
            yield from chunks
        except PlatformError as exc:
            _without_prefix(exc, self.prefix)
            raise

    @_paths_as_the_user_gave_them
    def read_bytes(self, path: str) -> bytes:
        return self.storage.read_bytes(self.key(path))

    @_paths_as_the_user_gave_them
    def sha256(self, path: str) -> str:
        return self.storage.sha256(self.key(path))

    # -- writing -----------------------------------------------------------------------

    @_paths_as_the_user_gave_them
    def upload(self, path: str, stream: BinaryIO, *, size: int | None = None,
               content_type: str | None = None) -> ObjectInfo:
        info = self.storage.upload(self.key(path), stream, size=size, content_type=content_type)
        return self._relative_info(info)

    @_paths_as_the_user_gave_them
    def upload_bytes(self, path: str, data: bytes) -> ObjectInfo:
        return self._relative_info(self.storage.upload_bytes(self.key(path), data))

    @_paths_as_the_user_gave_them
    def make_folder(self, path: str) -> str:
        key = self.key(path, folder=True)
        self.storage.make_folder(key)
        return self.relative(key)

    @_paths_as_the_user_gave_them
    def copy(self, src: str, dst: str) -> ObjectInfo:
        return self._relative_info(self.storage.copy(self.key(src), self.key(dst)))

    @_paths_as_the_user_gave_them
    def move(self, src: str, dst: str) -> ObjectInfo:
        return self._relative_info(self.storage.move(self.key(src), self.key(dst)))

    @_paths_as_the_user_gave_them
    def move_folder(self, src: str, dst: str) -> int:
        """Move a folder and everything in it to ``dst``, which must not exist; returns the
        number of files moved (see ``Storage.move_prefix``)."""
        return self.storage.move_prefix(self.key(src, folder=True), self.key(dst, folder=True))

    @_paths_as_the_user_gave_them
    def delete(self, path: str) -> None:
        """Delete a file, or a whole folder when ``path`` ends with ``/``."""
        if path.endswith("/"):
            if not self.folder_exists(path):
                raise ObjectNotFound(f"No folder named {path}.")
            self.delete_folder(path)
            return
        self.storage.delete(self.key(path))

    @_paths_as_the_user_gave_them
    def delete_folder(self, path: str) -> int:
        return self.storage.delete_prefix(self.key(path, folder=True))

    @_paths_as_the_user_gave_them
    def delete_all(self) -> int:
        """Delete every file of the project (used when the project is deleted)."""
        return self.storage.delete_prefix(self.prefix)
