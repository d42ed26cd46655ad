"""The storage contract (``cloud_storage/base.py``), held against every storage backend.

The ``storage`` fixture (conftest.py) yields a fresh, empty storage of each registered backend.
"""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from datetime import datetime

import pytest
from generated_stream import GeneratedStream, generated_sha256

from cloud_storage import ObjectInfo, backend_for, known_schemes, open_storage
from exception_layer import (
    InvalidKey,
    InvalidStorageUri,
    ObjectNotFound,
    PathConflict,
    StorageError,
)

MB = 1024 * 1024


def keys(objects) -> list[str]:
    return [o.key for o in objects]


def everything(storage, prefix: str = "") -> list[str]:
    return [o.key for o in storage.iter_objects(prefix)]


# -- upload, stat, read --------------------------------------------------------------------

def test_upload_stat_read_round_trip(storage):
    info = storage.upload_bytes("reports/summary.csv", b"a,b\n1,2\n", content_type="text/csv")
    assert info.key == "reports/summary.csv" and info.size == 8 and info.name == "summary.csv"
    stat = storage.stat("reports/summary.csv")
    assert stat.key == "reports/summary.csv" and stat.size == 8
    assert isinstance(stat.modified, datetime) and stat.modified.tzinfo is not None
    assert storage.read_bytes("reports/summary.csv") == b"a,b\n1,2\n"
    with storage.open_read("reports/summary.csv") as stream:
        assert stream.read(4) == b"a,b\n"
        assert stream.read() == b"1,2\n"
    assert storage.exists("reports/summary.csv")
    assert not storage.exists("reports/other.csv")


def test_upload_replaces_an_existing_object(storage):
    storage.upload_bytes("x.bin", b"long old content")
    assert storage.upload_bytes("x.bin", b"new").size == 3
    assert storage.read_bytes("x.bin") == b"new"
    assert keys(storage.list("").objects) == ["x.bin"]


def test_the_version_changes_with_every_write_and_listing_agrees_with_stat(storage):
    # Two writes of the same size within the same second differ only by their version: that
    # is what tells a folder move that a file was replaced while it moved.
    first = storage.upload_bytes("v.bin", b"one")
    assert first.version and storage.stat("v.bin").version == first.version
    second = storage.upload_bytes("v.bin", b"two")
    listed = storage.list("").objects
    assert second.version and second.version != first.version
    assert [(o.key, o.version) for o in listed] == [("v.bin", second.version)]
    assert storage.stat("v.bin").version == second.version


def test_empty_object(storage):
    assert storage.upload_bytes("empty", b"").size == 0
    assert storage.stat("empty").size == 0
    assert storage.read_bytes("empty") == b""
    assert list(storage.iter_read("empty")) == []


def test_upload_from_a_stream_with_unknown_size(storage):
    stream = GeneratedStream(3 * MB + 17)
    assert storage.upload("big/blob.bin", stream).size == 3 * MB + 17
    assert storage.sha256("big/blob.bin") == generated_sha256(3 * MB + 17)


def test_fifty_megabytes_stream_in_and_out_in_bounded_memory(storage):
    size = 50 * MB
    tracemalloc.start()
    try:
        info = storage.upload("large/fifty.bin", GeneratedStream(size), size=size)
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest, received = hashlib.sha256(), 0
        for chunk in storage.iter_read("large/fifty.bin", chunk_size=MB):
            digest.update(chunk)
            received += len(chunk)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == size == received == storage.stat("large/fifty.bin").size
    assert digest.hexdigest() == generated_sha256(size)
    # What a backend may hold for one upload is its own (S3 keeps parts in flight, GCS a window
    # to resume from), but it is bounded, below the file's size and far below the 100 MB target.
    assert storage.upload_memory <= 40 * MB
    assert upload_peak < storage.upload_memory + 2 * MB, f"upload held {upload_peak / MB:.1f} MB"
    assert download_peak < 20 * MB, f"download held {download_peak / MB:.1f} MB"


def test_sha256_helper(storage):
    data = b"trainyard" * 100_000
    storage.upload_bytes("h.bin", data)
    assert storage.sha256("h.bin") == hashlib.sha256(data).hexdigest()
    assert storage.sha256(storage.upload_bytes("e", b"").key) == hashlib.sha256().hexdigest()


def test_names_with_spaces_and_unicode(storage):
    key = "données ✓/rapport final.csv"
    storage.upload_bytes(key, "é,ü\n".encode())
    assert storage.read_bytes(key) == "é,ü\n".encode()
    assert storage.stat(key).name == "rapport final.csv"
    assert storage.list("").folders == ["données ✓/"]
    assert keys(storage.list("données ✓/").objects) == [key]
    storage.copy(key, "copie/rapport final (1).csv")
    storage.move("copie/rapport final (1).csv", "日本語/ファイル.csv")
    assert sorted(everything(storage)) == sorted([key, "日本語/ファイル.csv"])
    storage.delete(key)
    assert not storage.exists(key)


# -- listing -------------------------------------------------------------------------------

@pytest.fixture
def tree(storage, put_many):
    put_many(storage, ["a.txt", "b.txt", "docs/readme.md", "docs/guide/intro.md",
                       "docs/guide/setup.md", "data/2024/jan.csv", "zeta/z.bin"])
    return storage


def test_list_one_level_shows_files_and_sub_folders(tree):
    page = tree.list("")
    assert keys(page.objects) == ["a.txt", "b.txt"]
    assert page.folders == ["data/", "docs/", "zeta/"]
    assert page.next_token is None
    page = tree.list("docs/")
    assert keys(page.objects) == ["docs/readme.md"]
    assert page.folders == ["docs/guide/"]
    assert [o.size for o in page.objects] == [len(b"docs/readme.md")]
    assert keys(tree.list("docs/guide/").objects) == ["docs/guide/intro.md",
                                                      "docs/guide/setup.md"]


def test_recursive_list_shows_every_object_below_and_no_folders(tree):
    page = tree.list("", recursive=True)
    assert keys(page.objects) == sorted(["a.txt", "b.txt", "docs/readme.md",
                                         "docs/guide/intro.md", "docs/guide/setup.md",
                                         "data/2024/jan.csv", "zeta/z.bin"])
    assert page.folders == []
    assert keys(tree.list("docs/", recursive=True).objects) == [
        "docs/guide/intro.md", "docs/guide/setup.md", "docs/readme.md"]


def test_list_of_a_missing_folder_is_empty(tree):
    page = tree.list("nothing/here/")
    assert page.objects == [] and page.folders == [] and page.next_token is None
    assert tree.list("nothing/", recursive=True).objects == []


def test_list_needs_a_folder_key(tree):
    with pytest.raises(InvalidKey):
        tree.list("docs")


def test_list_of_an_empty_storage(storage):
    page = storage.list("")
    assert page.objects == [] and page.folders == [] and page.next_token is None
    storage.check()


def _collect(storage, prefix, *, recursive, page_size):
    objects, folders, pages, token = [], [], 0, None
    while True:
        page = storage.list(prefix, recursive=recursive, page_size=page_size, page_token=token)
        assert len(page.objects) + len(page.folders) <= page_size
        objects += keys(page.objects)
        folders += page.folders
        pages += 1
        token = page.next_token
        if token is None:
            return objects, folders, pages
        assert pages < 1000, "pagination does not end"


@pytest.fixture
def crowd(crowded_storage):
    """1,105 objects: 1,100 files directly in many/ and 5 sub-folders with one file each.

    Shared by the tests that only list it (conftest's ``crowded_storage``), one per backend.
    """
    return crowded_storage


def test_recursive_pagination_over_more_than_a_thousand_objects(crowd):
    storage, files, nested = crowd
    objects, folders, pages = _collect(storage, "many/", recursive=True, page_size=100)
    assert objects == sorted(files + nested)
    assert len(set(objects)) == len(objects) == 1105
    assert folders == [] and pages == 12
    first = storage.list("many/", recursive=True)  # the default page size is 1,000
    assert len(first.objects) == 1000 and first.next_token is not None
    assert everything(storage, "many/") == sorted(files + nested)


def test_one_level_pagination_over_more_than_a_thousand_objects(crowd):
    storage, files, nested = crowd
    objects, folders, pages = _collect(storage, "many/", recursive=False, page_size=250)
    assert objects == files
    assert folders == [f"many/sub{j}/" for j in range(5)]
    assert sorted(objects + folders) == objects + folders  # one sorted sequence across pages
    assert pages == 5


# -- folders -------------------------------------------------------------------------------

def test_make_folder_shows_an_empty_folder(storage):
    storage.make_folder("empty/")
    storage.make_folder("deep/er/est/")
    page = storage.list("")
    assert page.folders == ["deep/", "empty/"] and page.objects == []
    assert storage.list("deep/er/").folders == ["deep/er/est/"]
    assert storage.list("empty/").objects == [] and storage.list("empty/").folders == []
    assert storage.folder_exists("empty/")
    assert storage.folder_exists("deep/er/est/")
    storage.make_folder("empty/")  # idempotent
    storage.upload_bytes("empty/now-full.txt", b"1")
    assert keys(storage.list("empty/").objects) == ["empty/now-full.txt"]


def test_folder_exists(storage):
    storage.upload_bytes("ab/x.txt", b"1")
    assert storage.folder_exists("ab/")
    assert storage.folder_exists("")
    assert not storage.folder_exists("a/")
    assert not storage.folder_exists("ab/x.txt/")
    assert not storage.folder_exists("missing/")


# -- copy, move, delete --------------------------------------------------------------------

def test_copy(storage):
    storage.upload_bytes("src/a.bin", b"payload")
    storage.upload_bytes("dst/a.bin", b"to be replaced")
    info = storage.copy("src/a.bin", "dst/a.bin")
    assert info.key == "dst/a.bin" and info.size == 7
    assert storage.read_bytes("dst/a.bin") == b"payload"
    assert storage.read_bytes("src/a.bin") == b"payload"
    assert storage.copy("src/a.bin", "new/deep/b.bin").size == 7
    with pytest.raises(ObjectNotFound):
        storage.copy("src/missing.bin", "x.bin")
    assert not storage.exists("x.bin")


def test_move(storage):
    storage.upload_bytes("src/a.bin", b"payload")
    info = storage.move("src/a.bin", "moved/a.bin")
    assert info.key == "moved/a.bin" and info.size == 7
    assert storage.read_bytes("moved/a.bin") == b"payload"
    assert not storage.exists("src/a.bin")
    with pytest.raises(ObjectNotFound):
        storage.move("src/a.bin", "again.bin")
    assert not storage.exists("again.bin")


def test_delete(storage):
    storage.upload_bytes("d/x.txt", b"1")
    storage.upload_bytes("d/y.txt", b"2")
    storage.delete("d/x.txt")
    assert keys(storage.list("d/").objects) == ["d/y.txt"]
    with pytest.raises(ObjectNotFound):
        storage.stat("d/x.txt")
    with pytest.raises(ObjectNotFound):
        storage.delete("d/x.txt")
    with pytest.raises(ObjectNotFound):
        storage.delete("never/was.txt")


def test_missing_objects_raise_object_not_found(storage):
    storage.upload_bytes("folder/file.txt", b"1")
    for missing in ("nope.txt", "folder/nope.txt", "folder", "folder/file.txt/deeper"):
        with pytest.raises(ObjectNotFound):
            storage.stat(missing)
        with pytest.raises(ObjectNotFound):
            storage.open_read(missing)
        with pytest.raises(ObjectNotFound):
            storage.read_bytes(missing)
        with pytest.raises(ObjectNotFound):
            storage.delete(missing)
        assert not storage.exists(missing)
    with pytest.raises(ObjectNotFound):
        list(storage.iter_read("nope.txt"))


def test_delete_prefix(storage, put_many):
    put_many(storage, ["a/1", "a/2", "a/deep/3", "a/deep/er/4", "ab/5", "ab/a/6", "a.txt",
                       "b/a/7"])
    storage.make_folder("a/empty/")
    assert storage.delete_prefix("a/") == 4
    assert everything(storage, "a/") == []
    assert not storage.folder_exists("a/")
    assert "a/" not in storage.list("").folders
    assert everything(storage) == ["a.txt", "ab/5", "ab/a/6", "b/a/7"]
    assert storage.delete_prefix("a/") == 0
    assert storage.delete_prefix("missing/") == 0
    with pytest.raises(StorageError):
        storage.delete_prefix("ab")
    assert storage.delete_prefix("ab/a/") == 1
    assert everything(storage) == ["a.txt", "ab/5", "b/a/7"]


def test_move_prefix(storage, put_many):
    put_many(storage, {"in/x/1.csv": b"1", "in/x/2/3 ü.csv": b"3", "in/xy/4.csv": b"4"})
    storage.make_folder("in/x/empty/")
    storage.make_folder("in/x/2/deeper/")
    assert storage.move_prefix("in/x/", "out/y z/") == 2
    assert everything(storage) == ["in/xy/4.csv", "out/y z/1.csv", "out/y z/2/3 ü.csv"]
    assert not storage.folder_exists("in/x/")
    assert storage.list("in/").folders == ["in/xy/"]
    assert storage.read_bytes("out/y z/2/3 ü.csv") == b"3"
    # the empty folders came along
    assert storage.list("out/y z/").folders == ["out/y z/2/", "out/y z/empty/"]
    assert storage.list("out/y z/2/").folders == ["out/y z/2/deeper/"]
    # an empty folder moves too; a missing one moves nothing
    assert storage.move_prefix("out/y z/empty/", "moved-empty/") == 0
    assert storage.folder_exists("moved-empty/") and not storage.folder_exists("out/y z/empty/")
    assert storage.move_prefix("missing/", "elsewhere/") == 0
    assert not storage.folder_exists("elsewhere/")


def test_refused_folder_moves_change_nothing(storage, put_many):
    put_many(storage, {"a/1.csv": b"1", "a/sub/2.csv": b"2", "b/3.csv": b"3"})
    before = everything(storage)
    for src, dst, error in [("a/", "a/sub/inner/", InvalidKey), ("a/", "a/", InvalidKey),
                            ("a/", "b/", PathConflict), ("", "c/", InvalidKey),
                            ("a/", "../c/", InvalidKey)]:
        with pytest.raises(error):
            storage.move_prefix(src, dst)
    assert everything(storage) == before


def test_a_file_written_into_a_folder_while_it_moves_is_not_lost(storage, put_many,
                                                                 monkeypatch):
    """Another client writes into the folder during its move (done from the move's own
    copy calls, so that it happens at a known moment; the storage is real)."""
    put_many(storage, {f"a/{i}.csv": str(i).encode() for i in range(3)})
    copy, calls = storage.copy, []

    def copy_while_written_to(src, dst):
        calls.append(src)
        if len(calls) == 2:
            storage.upload_bytes("a/new.csv", b"new")
            storage.upload_bytes("a/0.csv", b"R")  # the same size, most likely the same second
        return copy(src, dst)

    monkeypatch.setattr(storage, "copy", copy_while_written_to)
    if storage.scheme == "file":  # one rename: nothing is written in between
        assert storage.move_prefix("a/", "b/") == 3
        return
    assert storage.move_prefix("a/", "b/") == 3
    assert everything(storage, "b/") == ["b/0.csv", "b/1.csv", "b/2.csv"]
    assert everything(storage, "a/") == ["a/0.csv", "a/new.csv"]
    assert storage.read_bytes("a/0.csv") == b"R"
    assert storage.read_bytes("a/new.csv") == b"new"


def test_a_folder_move_that_fails_midway_leaves_the_folder_where_it_was(storage, put_many,
                                                                         monkeypatch):
    """The third copy fails (a fault injected into this storage object; the storage is real),
    as a connection lost midway would."""
    put_many(storage, {f"a/{i}.csv": str(i).encode() for i in range(5)})
    copy, calls = storage.copy, []

    def failing_copy(src, dst):
        calls.append(src)
        if len(calls) == 3:
            raise StorageError("connection lost")
        return copy(src, dst)

    monkeypatch.setattr(storage, "copy", failing_copy)
    if storage.scheme == "file":  # one rename: it cannot fail midway, and copies nothing
        assert storage.move_prefix("a/", "b/") == 5
        assert calls == [] and everything(storage, "b/") == [f"b/{i}.csv" for i in range(5)]
        return
    with pytest.raises(StorageError, match="connection lost"):
        storage.move_prefix("a/", "b/")
    assert everything(storage) == [f"a/{i}.csv" for i in range(5)]
    assert not storage.folder_exists("b/")
    assert storage.read_bytes("a/2.csv") == b"2"


# -- interrupted uploads -------------------------------------------------------------------

def test_an_interrupted_upload_leaves_nothing_visible(storage):
    with pytest.raises(ConnectionResetError):
        storage.upload("new/folder/part.bin", GeneratedStream(4 * MB, fail_after=MB))
    assert not storage.exists("new/folder/part.bin")
    assert everything(storage) == []
    page = storage.list("")
    assert page.objects == [] and page.folders == []
    assert not storage.folder_exists("new/")


@pytest.mark.parametrize("actual, announced", [(2 * MB, 3 * MB), (3 * MB, 2 * MB),
                                               (10, 20), (20, 10), (0, 5)])
def test_an_upload_of_another_size_than_announced_is_refused(storage, actual, announced):
    storage.upload_bytes("kept.bin", b"old")
    for key in ("kept.bin", "new/fresh.bin"):
        with pytest.raises(StorageError, match=f"{announced}"):
            storage.upload(key, GeneratedStream(actual), size=announced)
    assert storage.read_bytes("kept.bin") == b"old"
    assert everything(storage) == ["kept.bin"] and not storage.folder_exists("new/")


def test_an_interrupted_overwrite_keeps_the_old_object(storage):
    storage.upload_bytes("keep/me.bin", b"old and whole")
    storage.make_folder("keep/empty/")
    with pytest.raises(ConnectionResetError):
        storage.upload("keep/me.bin", GeneratedStream(4 * MB, fail_after=2 * MB))
    with pytest.raises(ConnectionResetError):
        storage.upload("keep/empty/new.bin", GeneratedStream(MB, fail_after=10))
    assert storage.read_bytes("keep/me.bin") == b"old and whole"
    assert everything(storage) == ["keep/me.bin"]
    assert storage.list("keep/").folders == ["keep/empty/"]  # an existing folder stays


class _Drained(io.BytesIO):
    """A body that hands its bytes to a file descriptor itself, as a spliced upload does."""

    def drain_into(self, fd: int) -> int:
        return os.write(fd, self.read())


def _record_disk_calls(monkeypatch) -> list[tuple[str, object]]:
    """Record (and still make) the calls that put data and names on disk."""
    calls = []
    real = {name: getattr(os, name) for name in ("fdatasync", "fsync", "replace", "rename")}

    def fdatasync(fd):
        calls.append(("data", os.fstat(fd).st_size))
        real["fdatasync"](fd)

    def fsync(fd):
        calls.append(("folder", os.readlink(f"/proc/self/fd/{fd}")))
        real["fsync"](fd)

    def renaming(name):
        def rename(src, dst):
            calls.append(("rename", str(dst)))
            real[name](src, dst)
        return rename

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", renaming("replace"))
    monkeypatch.setattr(os, "rename", renaming("rename"))
    return calls


@pytest.mark.parametrize("body", [io.BytesIO, _Drained])
def test_a_local_upload_is_on_disk_before_it_takes_its_name(tmp_path, monkeypatch, body):
    """A power cut cannot be made here, so the system calls are recorded instead (the real ones
    still run): the data is flushed before the rename that makes the file visible, and the
    folders' new entries before the upload is acknowledged."""
    storage = open_storage((tmp_path / "store").as_uri())
    storage.upload_bytes("old.txt", b"x")
    calls = _record_disk_calls(monkeypatch)
    storage.upload("new/deeper/data.bin", body(b"12345"), size=5)
    root = str(tmp_path / "store")
    assert calls[:2] == [("data", 5), ("rename", f"{root}/new/deeper/data.bin")]
    assert sorted(calls[2:]) == [("folder", root), ("folder", f"{root}/new"),
                                 ("folder", f"{root}/new/deeper")]
    assert storage.read_bytes("new/deeper/data.bin") == b"12345"


def test_a_local_move_is_on_disk_when_it_returns(tmp_path, monkeypatch):
    """As above, recorded: after a file or folder move, both folders' entries are flushed."""
    storage = open_storage((tmp_path / "store").as_uri())
    storage.upload_bytes("a/one.txt", b"1")
    storage.upload_bytes("b/two.txt", b"2")
    root = str(tmp_path / "store")
    calls = _record_disk_calls(monkeypatch)
    storage.move("a/one.txt", "c/one.txt")
    assert calls[0] == ("rename", f"{root}/c/one.txt")
    assert sorted(calls[1:]) == [("folder", root), ("folder", f"{root}/a"),
                                 ("folder", f"{root}/c")]
    calls.clear()
    storage.move_prefix("b/", "d/e/")
    assert calls[0] == ("rename", f"{root}/d/e")
    assert sorted(calls[1:]) == [("folder", root), ("folder", f"{root}/d")]
    assert everything(storage) == ["c/one.txt", "d/e/two.txt"]


# -- keys ----------------------------------------------------------------------------------

BAD_KEYS = ["../x", "a/../../x", "a/./b", "/abs/x", "a//b", "a\\b", "..\\x", "a\x00b",
            "a\nb", "tab\there", "del\x7f", "c1\x85ctl", "lone\ud800surrogate", "", "..", "."]


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_malformed_keys_are_refused(storage, bad):
    storage.upload_bytes("ok.txt", b"1")
    attempts = [
        lambda: storage.upload_bytes(bad, b"x"),
        lambda: storage.upload(bad, io.BytesIO(b"x")),
        lambda: storage.stat(bad),
        lambda: storage.open_read(bad),
        lambda: storage.delete(bad),
        lambda: storage.copy("ok.txt", bad),
        lambda: storage.copy(bad, "copy.txt"),
        lambda: storage.move("ok.txt", bad),
        lambda: storage.move(bad, "moved.txt"),
    ]
    if bad:
        attempts += [lambda: storage.make_folder(bad + "/"),
                     lambda: storage.list(bad + "/"),
                     lambda: storage.delete_prefix(bad + "/")]
    for attempt in attempts:
        with pytest.raises(InvalidKey):
            attempt()
    assert everything(storage) == ["ok.txt"]


def test_root_folder_key_must_be_empty_not_a_slash(storage):
    with pytest.raises(InvalidKey):
        storage.list("/")
    with pytest.raises(InvalidKey):
        storage.make_folder("/")


# -- registry ------------------------------------------------------------------------------

def test_unknown_scheme_lists_the_known_schemes():
    with pytest.raises(InvalidStorageUri) as caught:
        open_storage("ftp://host/dir")
    message = caught.value.message
    assert "ftp://" in message
    for scheme in known_schemes():
        assert f"{scheme}://" in message
    assert "file://" in message
    with pytest.raises(InvalidStorageUri, match=r"\(none\); known schemes"):
        backend_for("/no/scheme")


@pytest.mark.parametrize("uri", ["s3://bucket-a/a/../b", "gs://bucket-a/x//y",
                                 "wasbs://container@account/a/./b"])
def test_a_bad_folder_in_an_object_store_address_is_refused(uri):
    with pytest.raises(InvalidStorageUri, match="The folder in the storage address"):
        open_storage(uri, {})
    assert open_storage(uri.split("/")[0] + "//" + uri.split("/")[2] + "/ok/dir/", {}).prefix \
        == "ok/dir/"


def test_object_info_name():
    assert ObjectInfo("a/b/c.csv", 1).name == "c.csv"
    assert ObjectInfo("a/b/", 0).name == "b"
