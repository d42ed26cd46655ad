"""Unfinished uploads leave nothing behind (issue 21, item 8): a failed upload cleans up, a
storage fault is a clear error (507 for a full disk, 503 for a folder that cannot be written),
and what a dead process or a failed clean-up left is swept once it is old enough."""

from __future__ import annotations

import errno
import io
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from cloud_storage import open_storage
from exception_layer import StorageFull, StorageUnavailable
from tests.emulators import (  # noqa: F401 - the *_server names are fixtures
    azure_storage,
    azurite_server,
    moto_server,
    s3_storage,
)


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".trainyard-upload-*"))


class FaultAfter(io.RawIOBase):
    """A stream of ``size`` bytes that calls ``fault()`` once half of it has been read."""

    def __init__(self, size: int, fault):
        self.size, self.sent, self.fault, self.faulted = size, 0, fault, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.sent >= self.size // 2 and not self.faulted:
            self.faulted = True
            self.fault()
        count = min(len(buffer), self.size - self.sent)
        buffer[:count] = b"x" * count
        self.sent += count
        return count


def _immutable(folder: Path, on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", str(folder)], check=True,
                   capture_output=True)


@pytest.fixture
def immutable_folders(tmp_path):
    """chattr +i makes a folder unwritable even for root (tests here run as root)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        _immutable(probe, True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("chattr +i is not available here")
    _immutable(probe, False)
    made = []
    yield made
    for folder in made:
        _immutable(folder, False)


def test_a_folder_made_unwritable_mid_upload_is_a_503_and_the_sweeper_removes_the_rest(
        tmp_path, immutable_folders):
    """The finding: a fault in the middle of an upload left a 1.57 MB hidden file, and the
    error was a 500 with a traceback."""
    storage = open_storage(f"file://{tmp_path / 'root'}")
    storage.make_folder("notes/")
    folder = tmp_path / "root" / "notes"

    def fault():
        immutable_folders.append(folder)
        _immutable(folder, True)
    with pytest.raises(StorageUnavailable, match="cannot write notes/big.bin"):
        storage.upload("notes/big.bin", FaultAfter(1_570_000, fault), size=1_570_000)
    # the clean-up could not remove it either (the folder refuses); the sweeper will
    assert _leftovers(tmp_path / "root") == ["notes/" + os.listdir(folder)[0]]
    _immutable(folder, False)
    assert storage.sweep_incomplete_uploads(timedelta(hours=1)) == 0  # too young yet
    assert storage.sweep_incomplete_uploads(timedelta(0)) == 1
    assert _leftovers(tmp_path / "root") == [] and not storage.exists("notes/big.bin")


def test_an_unwritable_folder_is_a_503(tmp_path, immutable_folders):
    storage = open_storage(f"file://{tmp_path / 'root'}")
    storage.make_folder("notes/")
    immutable_folders.append(tmp_path / "root" / "notes")
    _immutable(tmp_path / "root" / "notes", True)
    with pytest.raises(StorageUnavailable) as refused:
        storage.upload_bytes("notes/a.txt", b"hello")
    assert refused.value.status == 503 and str(tmp_path) not in refused.value.message


def test_a_full_disk_is_a_507_and_leaves_nothing(tmp_path, monkeypatch):
    storage = open_storage(f"file://{tmp_path / 'root'}")

    def full(fd):  # a disk reports no room left at the latest when the data is flushed
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fdatasync", full)
    with pytest.raises(StorageFull) as refused:
        storage.upload("deep/er/big.bin", io.BytesIO(b"x" * 100_000), size=100_000)
    assert refused.value.status == 507
    assert _leftovers(tmp_path / "root") == []
    assert not (tmp_path / "root" / "deep").exists()  # nor the folders made for it


def test_the_local_sweeper_takes_only_old_unfinished_uploads(tmp_path):
    root = tmp_path / "root"
    storage = open_storage(f"file://{root}")
    storage.upload_bytes("a/kept.txt", b"a file")
    old, young = root / "a" / ".trainyard-upload-old", root / ".trainyard-upload-young"
    old.write_bytes(b"x")
    young.write_bytes(b"x")
    two_days_ago = young.stat().st_mtime - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    assert storage.sweep_incomplete_uploads(timedelta(days=1)) == 1
    assert not old.exists() and young.exists() and storage.exists("a/kept.txt")


def test_the_s3_sweeper_aborts_old_multipart_uploads_below_its_prefix(moto_server):  # noqa: F811
    with s3_storage() as storage:
        client = storage.client
        started = client.create_multipart_upload(Bucket=storage.bucket,
                                                  Key=storage._full("stuck.bin"))
        client.upload_part(Bucket=storage.bucket, Key=storage._full("stuck.bin"), PartNumber=1,
                           UploadId=started["UploadId"], Body=b"x" * 1024)
        other = client.create_multipart_upload(Bucket=storage.bucket, Key="elsewhere/x.bin")
        # moto reports every upload as started in 2010: "younger than a century" is kept
        assert storage.sweep_incomplete_uploads(timedelta(days=36500)) == 0
        assert storage.sweep_incomplete_uploads(timedelta(0)) == 1
        left = client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
        assert [u["UploadId"] for u in left] == [other["UploadId"]]
        client.abort_multipart_upload(Bucket=storage.bucket, Key="elsewhere/x.bin",
                                      UploadId=other["UploadId"])


def test_the_azure_sweeper_deletes_only_blobs_that_were_never_committed(azurite_server):  # noqa: F811
    import base64

    with azure_storage() as storage:
        storage.upload_bytes("kept.txt", b"committed")
        for name in ("stuck.bin", "kept.txt"):  # staged, never committed (beside kept.txt too)
            storage._blob(storage._full(name)).stage_block(
                base64.b64encode(b"run-000001").decode(), b"x" * 100, length=100)
        assert storage.sweep_incomplete_uploads(timedelta(hours=1)) == 0  # too young yet
        assert storage.sweep_incomplete_uploads(timedelta(0)) == 1
        staged = [b.name for b in storage.container_client.list_blobs(
            name_starts_with=storage.prefix, include=["uncommittedblobs"])]
        assert staged == [storage._full("kept.txt")]
        assert storage.read_bytes("kept.txt") == b"committed"
