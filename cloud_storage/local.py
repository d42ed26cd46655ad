"""Local-disk storage: ``file:///absolute/path``."""

from __future__ import annotations

import errno
import functools
import logging
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from cloud_storage.base import ListPage, ObjectInfo, Storage, check_key, exact_size
from cloud_storage.configuration import ConfigField
from cloud_storage.registry import register_backend
from exception_layer import (
    InvalidKey,
    InvalidStorageUri,
    ObjectNotFound,
    PathConflict,
    StorageError,
    StorageFull,
    StorageUnavailable,
)

_TMP_PREFIX = ".trainyard-upload-"
logger = logging.getLogger(__name__)
#: the errors of a disk with no room left, and of a folder that cannot be written
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO}


def _storage_faults(method):
    """A full disk answers :class:`StorageFull` (507), an unwritable folder
    :class:`StorageUnavailable` (503), both naming the operation, never the server's paths."""

    @functools.wraps(method)
    def wrapper(self, key, *args, **kwargs):
        try:
            return method(self, key, *args, **kwargs)
        except OSError as exc:
            if exc.errno in _FULL:
                raise StorageFull(f"The storage has no room left for {key}; nothing was "
                                  "stored.") from exc
            if exc.errno in _UNWRITABLE:
                raise StorageUnavailable(f"The storage cannot write {key} right now (its folder "
                                         f"is not writable: {exc.strerror}); nothing was "
                                         "stored. Ask an administrator.") from exc
            raise
    return wrapper


def _discard(tmp: str) -> None:
    """Remove an unfinished upload's file; if even that fails, the sweeper removes it later."""
    try:
        Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("Could not remove an unfinished upload (%s); it will be swept later",
                       exc.strerror or type(exc).__name__)


def parse_file_uri(uri: str) -> Path:
    """``file:///abs/dir`` -> ``Path('/abs/dir')``; refuses relative paths and hosts."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise InvalidStorageUri("A local storage address looks like file:///absolute/folder.")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise InvalidStorageUri("A local storage folder must be an absolute path.")
    return Path(path)


def _sync_folders(left: Path, entered: Path, created: list[Path]) -> None:
    """Flush to disk the entries of the folder a name ``left``, the folder it ``entered`` and
    those of the folders ``created`` for it, so that a finished rename survives a power cut."""
    for folder in {left, entered, *(made.parent for made in created)}:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalStorage(Storage):
    """Files in a directory. Uploads are written beside the target, flushed to disk and renamed
    when complete, so an acknowledged upload survives a power cut whole."""

    scheme = "file"
    kind = "local"
    label = "Local disk"
    configuration = (
        ConfigField("directory", "Folder (absolute path on the server)", required=True,
                    pattern=r"^/", message="Give an absolute path, e.g. /srv/trainyard/storage.",
                    locates=True),
    )
    upload_chunk_size = 1024 * 1024

    def __init__(self, uri: str, credentials: dict | None = None, client=None):
        super().__init__(uri, credentials, client)
        self.root = parse_file_uri(uri)

    @classmethod
    def configured_location(cls, settings: dict, secrets: dict) -> tuple[str, dict]:
        return Path(settings["directory"]).as_uri(), {}

    def _location_root(self) -> str:
        # The real path: a folder reached through a symlink, or spelt with ``..``, is the same
        # place as the folder itself.
        return "file://" + os.path.realpath(self.root).rstrip("/") + "/"

    # -- helpers ---------------------------------------------------------------------

    def _path(self, key: str, *, folder: bool = False) -> Path:
        check_key(key, folder=folder)
        path = self.root.joinpath(key.rstrip("/")) if key.rstrip("/") else self.root
        # A symlink inside the root must not lead outside of it.
        resolved = path.resolve()
        root = self.root.resolve()
        if resolved != root and root not in resolved.parents:
            raise InvalidKey("This path leads outside the storage.")
        return path

    def _info(self, key: str, path: Path) -> ObjectInfo:
        st = path.stat()
        return ObjectInfo(key=key, size=st.st_size,
                          modified=datetime.fromtimestamp(st.st_mtime, UTC),
                          version=f"{st.st_ino}-{st.st_mtime_ns}")

    @staticmethod
    def _page(items: list[tuple[str, bool]], page_size: int, page_token: str | None):
        """Slice a sorted [(key, is_folder)] list after ``page_token``."""
        if page_token:
            items = [item for item in items if item[0] > page_token]
        page, rest = items[:page_size], items[page_size:]
        return page, (page[-1][0] if rest else None)

    # -- the interface -----------------------------------------------------------------

    def list(self, prefix: str = "", *, recursive: bool = False, page_size: int = 1000,
             page_token: str | None = None) -> ListPage:
        if prefix and not prefix.endswith("/"):
            raise InvalidKey("A folder path must end with '/'.")
        base = self._path(prefix, folder=True)
        if not base.is_dir():
            return ListPage()
        items: list[tuple[str, bool]] = []
        if recursive:
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if not d.startswith(_TMP_PREFIX)]
                rel = os.path.relpath(dirpath, base)
                rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
                items.extend((prefix + rel + f, False) for f in filenames
                             if not f.startswith(_TMP_PREFIX))
        else:
            with os.scandir(base) as entries:
                for entry in entries:
                    if entry.name.startswith(_TMP_PREFIX):
                        continue
                    if entry.is_dir():
                        items.append((prefix + entry.name + "/", True))
                    else:
                        items.append((prefix + entry.name, False))
        items.sort()
        page, token = self._page(items, page_size, page_token)
        result = ListPage(next_token=token)
        for key, is_folder in page:
            if is_folder:
                result.folders.append(key)
            else:
                try:
                    result.objects.append(self._info(key, self.root / key))
                except FileNotFoundError:  # deleted while listing
                    continue
        return result

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"No file named {key}.")
        return self._info(key, path)

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"No file named {key}.")
        return path

    def open_read(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")  # noqa: SIM115 - the caller closes it
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"No file named {key}.") from exc

    @_storage_faults
    def upload(self, key: str, stream: BinaryIO, *, size: int | None = None,
               content_type: str | None = None) -> ObjectInfo:
        path = self._path(key)
        if path.is_dir():
            raise PathConflict(f"{key} is a folder: a file cannot take its name.")
        created = self._make_parents(key, path)
        try:
            try:
                fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
            except FileNotFoundError:  # a failed upload beside this one removed the folder
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    drain = getattr(stream, "drain_into", None)
                    if drain is not None:  # the kernel moves the bytes (see Storage.upload)
                        moved = drain(out.fileno())
                        if size is not None and moved != size:
                            raise StorageError(f"The upload brought {moved} bytes, not the "
                                               f"{size} announced.")
                    else:
                        shutil.copyfileobj(exact_size(stream, size), out,
                                           self.upload_chunk_size)
                    out.flush()
                    # On disk before it has its name: after a power cut, a file under its
                    # final name is whole (a rename can otherwise reach the disk before the
                    # data, leaving an empty or short file that looks complete).
                    os.fdatasync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                _discard(tmp)
                raise
        except BaseException:
            # An interrupted upload leaves nothing visible, not even the folders it created.
            self._remove_empty(created)
            raise
        # The new name, and the folders made for it, on disk before the upload is acknowledged.
        _sync_folders(path.parent, path.parent, created)
        return self._info(key, path)

    @staticmethod
    def _remove_empty(created: list[Path]) -> None:
        """Remove the folders ``_make_parents`` created (outermost first), innermost first."""
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:  # another upload put something there meanwhile
                break

    def _make_parents(self, key: str, path: Path) -> list[Path]:
        """Create the missing parent folders of ``path``; return them, outermost first."""
        self.root.mkdir(parents=True, exist_ok=True)
        missing = []
        parent = path.parent
        while parent != self.root and not parent.is_dir() and not parent.exists():
            missing.append(parent)
            parent = parent.parent
        missing.reverse()
        for folder in missing:
            try:
                folder.mkdir(exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise PathConflict(f"A file is in the way of the folders of {key}.") from exc
        if not path.parent.is_dir():
            raise PathConflict(f"A file is in the way of the folders of {key}.")
        return missing

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"No file named {key}.") from exc

    def delete_prefix(self, prefix: str) -> int:
        if not prefix.endswith("/"):
            raise StorageError("delete_prefix needs a folder key ending in '/'.")
        base = self._path(prefix, folder=True)
        if not base.is_dir():
            return 0
        count = sum(len(files) for _, _, files in os.walk(base))
        if base == self.root:
            for child in base.iterdir():
                # a symlink is removed, never followed
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(base)
        return count

    @_storage_faults
    def make_folder(self, prefix: str) -> None:
        try:
            self._path(prefix, folder=True).mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise PathConflict(f"A file is in the way of the folder {prefix}.") from exc

    def _has_marker(self, prefix: str) -> bool:
        return self._path(prefix, folder=True).is_dir()

    def copy(self, src: str, dst: str) -> ObjectInfo:
        source = self._path(src)
        if not source.is_file():
            raise ObjectNotFound(f"No file named {src}.")
        with open(source, "rb") as stream:
            return self.upload(dst, stream)

    @_storage_faults
    def move(self, src: str, dst: str) -> ObjectInfo:
        source, target = self._path(src), self._path(dst)
        if not source.is_file():
            raise ObjectNotFound(f"No file named {src}.")
        if target.is_dir():
            raise PathConflict(f"{dst} is a folder: a file cannot take its name.")
        created = self._make_parents(dst, target)
        os.replace(source, target)
        _sync_folders(source.parent, target.parent, created)
        return self._info(dst, target)

    def move_prefix(self, src_prefix: str, dst_prefix: str) -> int:
        """Rename the folder: one step, so there is nothing to undo."""
        self._check_folder_move(src_prefix, dst_prefix)
        source, target = self._path(src_prefix, folder=True), self._path(dst_prefix, folder=True)
        if not source.is_dir():
            return 0
        if target.exists():  # a file of the folder's name: folder_exists saw no folder
            raise PathConflict(f"A file is in the way of the folder {dst_prefix}.")
        count = sum(1 for _, _, names in os.walk(source)
                    for name in names if not name.startswith(_TMP_PREFIX))
        created = self._make_parents(dst_prefix.rstrip("/"), target)
        try:
            os.rename(source, target)
        except OSError:
            self._remove_empty(created)
            raise
        _sync_folders(source.parent, target.parent, created)
        return count

    def sweep_incomplete_uploads(self, older_than: timedelta) -> int:
        """Remove the ``.trainyard-upload-*`` files of uploads that stopped more than
        ``older_than`` ago (a process killed mid-upload leaves its file behind)."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for folder, _, names in os.walk(self.root):
            for name in names:
                if not name.startswith(_TMP_PREFIX):
                    continue
                path = Path(folder) / name
                try:
                    if path.lstat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:  # finished or removed meanwhile
                    continue
                except OSError as exc:
                    logger.warning("Could not sweep an unfinished upload: %s",
                                   exc.strerror or type(exc).__name__)
        return removed

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"The storage folder cannot be created: "
                               f"{exc.strerror or type(exc).__name__}.") from exc
        if not os.access(self.root, os.W_OK):
            raise StorageError("The storage folder is not writable.")


register_backend(LocalStorage)
