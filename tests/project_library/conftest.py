"""Fixtures for the ML work: a project's files on a local storage in a temporary folder."""

from __future__ import annotations

import pytest

from cloud_storage import open_storage
from integration.file_manager import ProjectFiles
from tests.project_library.reporters import ListReporter


@pytest.fixture
def storage(tmp_path):
    """A LocalStorage rooted in the test's temporary folder."""
    return open_storage("file://" + str(tmp_path / "storage"))


@pytest.fixture
def files(storage):
    project_files = ProjectFiles(storage, "demo")
    project_files.ensure_layout()
    return project_files


@pytest.fixture
def reporter():
    return ListReporter()
