"""Fixtures for the integration tests: a project's files over a local storage."""

from __future__ import annotations

import pytest

from cloud_storage import open_storage
from integration.file_manager import ProjectFiles


@pytest.fixture
def storage_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def local_storage(storage_root):
    return open_storage("file://" + str(storage_root))


@pytest.fixture
def files(local_storage) -> ProjectFiles:
    """The files of project ``wafer`` with its standard folders."""
    project_files = ProjectFiles(local_storage, "wafer")
    project_files.ensure_layout()
    return project_files
