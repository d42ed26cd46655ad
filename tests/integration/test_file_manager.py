"""ProjectFiles (integration/file_manager.py) over LocalStorage: layout, project-relative paths,
path checks (with property-based tests), symlinks, deletes."""

from __future__ import annotations

import io
import os
import tempfile
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_storage import open_storage
from exception_layer import InvalidKey, ObjectNotFound
from integration.file_manager import (
    MAX_NAME_LENGTH,
    PREDICTION,
    STANDARD_FOLDERS,
    TRAINING,
    ProjectFiles,
    batch_folder,
    check_file_name,
    check_path,
)

# -- layout and listing --------------------------------------------------------------------


@pytest.mark.parametrize("path, folder", [
    ("training_batch_files/", TRAINING), ("training_batch_files/2026/a.csv", TRAINING),
    ("prediction_batch_files/b.csv", PREDICTION), ("prediction_batch_files/", PREDICTION),
    ("notes/training_batch_files/a.csv", None), ("training_batch_files", None), ("", None),
    ("archive/ex1/good/a.csv", None)])
def test_batch_folder_names_the_batch_folder_a_path_lies_in(path, folder):
    assert batch_folder(path) == folder


def test_ensure_layout_creates_the_standard_folders(files, storage_root):
    assert len(STANDARD_FOLDERS) == 6
    page = files.list()
    assert page.folders == sorted(STANDARD_FOLDERS) and page.objects == []
    for folder in STANDARD_FOLDERS:
        assert files.folder_exists(folder)
        assert (storage_root / "wafer" / folder).is_dir()
    files.ensure_layout()  # idempotent
    assert files.list().folders == sorted(STANDARD_FOLDERS)


def test_listing_returns_project_relative_paths(files):
    info = files.upload_bytes("training_batch_files/wafer_01.csv", b"a,b\n")
    assert info.key == "training_batch_files/wafer_01.csv" and info.size == 4
    files.upload("training_batch_files/2024/wafer_02.csv", io.BytesIO(b"abc"))
    assert files.make_folder("training_batch_files/empty") == "training_batch_files/empty/"
    for path in ("training_batch_files/", "training_batch_files"):
        page = files.list(path)
        assert [o.key for o in page.objects] == ["training_batch_files/wafer_01.csv"]
        assert page.folders == ["training_batch_files/2024/", "training_batch_files/empty/"]
    assert [o.key for o in files.list_files("training_batch_files/")] == [
        "training_batch_files/2024/wafer_02.csv", "training_batch_files/wafer_01.csv"]
    assert files.stat("training_batch_files/wafer_01.csv").key == \
        "training_batch_files/wafer_01.csv"
    assert files.read_bytes("training_batch_files/2024/wafer_02.csv") == b"abc"
    assert b"".join(files.iter_read("training_batch_files/wafer_01.csv")) == b"a,b\n"
    with files.open_read("training_batch_files/wafer_01.csv") as stream:
        assert stream.read() == b"a,b\n"
    assert len(files.sha256("training_batch_files/wafer_01.csv")) == 64
    assert files.exists("training_batch_files/wafer_01.csv")
    copied = files.copy("training_batch_files/wafer_01.csv", "prediction_batch_files/w.csv")
    assert copied.key == "prediction_batch_files/w.csv"
    moved = files.move("prediction_batch_files/w.csv", "prediction_batch_files/x/w.csv")
    assert moved.key == "prediction_batch_files/x/w.csv"
    assert not files.exists("prediction_batch_files/w.csv")


def test_listing_pages(files):
    for i in range(7):
        files.upload_bytes(f"training_batch_files/f{i}.csv", b"1")
    seen, token = [], None
    while True:
        page = files.list("training_batch_files/", page_size=3, page_token=token)
        seen += [o.key for o in page.objects]
        token = page.next_token
        if token is None:
            break
    assert seen == [f"training_batch_files/f{i}.csv" for i in range(7)]


def test_projects_do_not_see_each_other(local_storage, files):
    neighbour = ProjectFiles(local_storage, "wafer-2")
    neighbour.upload_bytes("training_batch_files/theirs.csv", b"x")
    files.upload_bytes("training_batch_files/ours.csv", b"y")
    assert [o.key for o in files.list_files("")] == ["training_batch_files/ours.csv"]
    assert files.delete_all() == 1
    assert neighbour.read_bytes("training_batch_files/theirs.csv") == b"x"


# -- path checks ---------------------------------------------------------------------------

LONG_NAME = "é" * 128  # 256 bytes in UTF-8
BAD_PATHS = [
    "..", "../wafer-2/training_batch_files/x.csv", "training_batch_files/../../etc/passwd",
    "/etc/passwd", "/training_batch_files/x.csv", "training_batch_files\\x.csv",
    "..\\..\\x", "x\x00.csv", "x\x00/../y", "line\nbreak.csv", "tab\t.csv", "esc\x1b.csv",
    "del\x7f.csv", "nel\x85.csv", "a//b.csv", "./x.csv", "training_batch_files/./x.csv",
    ".trainyard-upload-123", "training_batch_files/.trainyard-upload-abc",
    "archive/.trainyard-state/x", f"training_batch_files/{LONG_NAME}.csv",
    f"{LONG_NAME}/x.csv", "lone\udc80surrogate.csv",
]


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_every_operation_refuses_unsafe_paths(files, storage_root, bad):
    files.upload_bytes("training_batch_files/ok.csv", b"1")
    before = sorted(p.relative_to(storage_root) for p in storage_root.rglob("*"))
    attempts = [
        lambda: files.key(bad), lambda: files.list(bad), lambda: files.list_files(bad),
        lambda: files.stat(bad), lambda: files.exists(bad), lambda: files.folder_exists(bad),
        lambda: files.open_read(bad), lambda: list(files.iter_read(bad)),
        lambda: files.read_bytes(bad), lambda: files.sha256(bad),
        lambda: files.upload(bad, io.BytesIO(b"x")), lambda: files.upload_bytes(bad, b"x"),
        lambda: files.make_folder(bad), lambda: files.copy("training_batch_files/ok.csv", bad),
        lambda: files.copy(bad, "training_batch_files/c.csv"),
        lambda: files.move("training_batch_files/ok.csv", bad),
        lambda: files.move(bad, "training_batch_files/m.csv"), lambda: files.delete(bad),
        lambda: files.delete(bad + "/"), lambda: files.delete_folder(bad),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidKey):
            attempt()
    assert sorted(p.relative_to(storage_root) for p in storage_root.rglob("*")) == before


def test_a_name_of_exactly_255_bytes_is_accepted(files):
    name = "é" * 125 + "a.csv"
    assert len(name.encode()) == MAX_NAME_LENGTH
    assert files.upload_bytes(f"training_batch_files/{name}", b"1").size == 1


def test_unicode_and_spaces_are_accepted(files):
    path = "training_batch_files/données ✓/rapport final.csv"
    files.upload_bytes(path, b"1")
    assert files.list("training_batch_files/données ✓/").objects[0].key == path


@pytest.mark.parametrize("bad", ["", "  ", "a/b.csv", "..", "x\x00", ".trainyard-x"])
def test_check_file_name(bad):
    with pytest.raises(InvalidKey):
        check_file_name(bad)
    assert check_file_name("wafer 01.csv") == "wafer 01.csv"


@pytest.mark.parametrize("slug", ["", "a/b", "..", ".", "a\\b", "x\x00", None])
def test_project_folder_must_be_one_safe_name(local_storage, slug):
    with pytest.raises(InvalidKey):
        ProjectFiles(local_storage, slug)


def test_folder_paths_are_normalised(files):
    assert check_path("a", folder=True) == "a/"
    assert check_path("a/b/", folder=True) == "a/b/"
    assert check_path("", folder=True) == ""
    assert files.key("training_batch_files", folder=True) == "wafer/training_batch_files/"
    with pytest.raises(InvalidKey):
        check_path("")


# -- symlinks ------------------------------------------------------------------------------

def test_a_symlink_to_outside_the_root_cannot_be_read_or_written_through(
        files, storage_root, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    outside_dir = tmp_path / "outside"
    outside_dir.mkdir()
    (outside_dir / "inner.txt").write_text("also secret")
    project = storage_root / "wafer" / "training_batch_files"
    os.symlink(secret, project / "link.csv")
    os.symlink(outside_dir, project / "linked-dir")
    attempts = [
        lambda: files.read_bytes("training_batch_files/link.csv"),
        lambda: files.open_read("training_batch_files/link.csv"),
        lambda: files.sha256("training_batch_files/link.csv"),
        lambda: files.stat("training_batch_files/link.csv"),
        lambda: files.copy("training_batch_files/link.csv", "training_batch_files/c.csv"),
        lambda: files.move("training_batch_files/link.csv", "training_batch_files/m.csv"),
        lambda: files.upload_bytes("training_batch_files/link.csv", b"overwrite"),
        lambda: files.read_bytes("training_batch_files/linked-dir/inner.txt"),
        lambda: files.list("training_batch_files/linked-dir/"),
        lambda: files.list_files("training_batch_files/linked-dir/"),
        lambda: files.upload_bytes("training_batch_files/linked-dir/new.txt", b"x"),
        lambda: files.delete("training_batch_files/linked-dir/inner.txt"),
        lambda: files.delete("training_batch_files/linked-dir/"),
        lambda: files.make_folder("training_batch_files/linked-dir/sub"),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidKey):
            attempt()
    assert secret.read_text() == "top secret"
    assert sorted(p.name for p in outside_dir.iterdir()) == ["inner.txt"]
    # deleting the whole project removes the links, never what they point to
    files.delete_all()
    assert secret.read_text() == "top secret"
    assert (outside_dir / "inner.txt").read_text() == "also secret"


def test_a_symlinked_project_folder_pointing_outside_is_refused(local_storage, storage_root,
                                                               tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, storage_root / "evil")
    evil = ProjectFiles(local_storage, "evil")
    with pytest.raises(InvalidKey):
        evil.ensure_layout()
    with pytest.raises(InvalidKey):
        evil.delete_all()
    assert list(elsewhere.iterdir()) == []


def test_errors_name_paths_as_the_user_gave_them_also_while_a_file_is_read(files):
    """The storage's keys start with the project's folder (``wafer/``); its messages reach
    the user without it, also from a read that fails only once iterated."""
    for read in (lambda: files.read_bytes("notes/gone.txt"),
                 lambda: list(files.iter_read("notes/gone.txt"))):
        with pytest.raises(ObjectNotFound) as failure:
            read()
        assert "notes/gone.txt" in failure.value.message
        assert "wafer/" not in failure.value.message and "wafer/" not in str(failure.value)


# -- deletes -------------------------------------------------------------------------------

def test_delete_a_file(files):
    files.upload_bytes("training_batch_files/a.csv", b"1")
    files.delete("training_batch_files/a.csv")
    assert not files.exists("training_batch_files/a.csv")
    with pytest.raises(ObjectNotFound):
        files.delete("training_batch_files/a.csv")
    with pytest.raises(ObjectNotFound):
        files.delete("training_batch_files")  # a folder without its trailing slash


def test_delete_a_folder_path_ending_with_a_slash(files):
    files.upload_bytes("training_batch_files/old/a.csv", b"1")
    files.upload_bytes("training_batch_files/old/deeper/b.csv", b"2")
    files.upload_bytes("training_batch_files/older/c.csv", b"3")
    files.make_folder("training_batch_files/empty/")
    files.delete("training_batch_files/old/")
    assert not files.folder_exists("training_batch_files/old/")
    assert files.list("training_batch_files/").folders == [
        "training_batch_files/empty/", "training_batch_files/older/"]
    files.delete("training_batch_files/empty/")
    assert files.list("training_batch_files/").folders == ["training_batch_files/older/"]
    with pytest.raises(ObjectNotFound):
        files.delete("training_batch_files/old/")
    with pytest.raises(ObjectNotFound):
        files.delete("never/was/")
    assert files.delete_folder("training_batch_files/older") == 1


def test_delete_all(files, storage_root):
    files.upload_bytes("training_batch_files/a.csv", b"1")
    files.upload_bytes("models/v1/model.joblib", b"2")
    files.upload_bytes("archive/e1/good/a.csv", b"3")
    assert files.delete_all() == 3
    assert files.list().folders == [] and files.list_files("") == []
    assert not (storage_root / "wafer").exists()
    assert files.delete_all() == 0


# -- property-based checks -----------------------------------------------------------------

TRICKY = ["/", "/", "..", ".", "\\", "\x00", "\x01", "\n", "\x1f", "\x7f", "\x85", "\u2028",
          "\ud800", "é", "✓", " ", "a", "b", ".trainyard-", "~", "\u202e", "%2e%2e"]
paths = st.lists(st.one_of(st.sampled_from(TRICKY), st.text(min_size=1, max_size=3),
                           st.characters(blacklist_categories=())),
                 max_size=14).map("".join)


def _segments(path: str) -> list[str]:
    body = path.rstrip("/")
    return body.split("/") if body else []


def _assert_safe(path: str, root: str) -> None:
    for segment in _segments(path):
        assert segment not in ("", ".", "..")
        assert "\\" not in segment
        assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in segment)
        assert not segment.startswith(".trainyard-")
        assert len(segment.encode()) <= MAX_NAME_LENGTH
    joined = os.path.normpath(os.path.join(root, path))
    assert joined == root or joined.startswith(root + os.sep)


@settings(max_examples=300, deadline=None)
@given(path=paths, folder=st.booleans())
def test_check_path_refuses_or_returns_a_safe_path(path, folder):
    root = "/srv/trainyard/project"
    try:
        checked = check_path(path, folder=folder)
    except InvalidKey:
        return
    _assert_safe(checked, root)
    assert not checked.startswith("/")
    assert check_path(checked, folder=folder) == checked  # normalised once and for all
    if folder:
        assert checked == "" or checked.endswith("/")
    else:
        assert checked and not checked.endswith("/")


@settings(max_examples=200, deadline=None)
@given(path=paths)
def test_whatever_is_written_stays_inside_the_project_folder(path):
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.realpath(tmp)
        files = ProjectFiles(open_storage("file://" + root), "proj")
        try:
            info = files.upload_bytes(path, b"x")
        except InvalidKey:
            assert not os.path.exists(os.path.join(root, "proj"))
            return
        written = [os.path.join(d, f) for d, _, names in os.walk(root) for f in names]
        assert written == [os.path.join(root, "proj", info.key)]
        assert files.read_bytes(info.key) == b"x"
        assert [o.key for o in files.list_files("")] == [info.key]
