"""The exception hierarchy (exception_layer/errors.py): one base with a code, an HTTP status and
a message safe to show; specific subclasses; the API's error body."""

from __future__ import annotations

import pytest

import exception_layer
from exception_layer import (
    ExecutionInProgress,
    NotFound,
    PlatformError,
    StorageUnavailable,
    ValidationFailed,
)

#: every error class: (its code, its HTTP status, the class it specialises)
HIERARCHY = {
    "PlatformError": ("platform_error", 500, "Exception"),
    "BadRequest": ("bad_request", 400, "PlatformError"),
    "ValidationFailed": ("validation_failed", 422, "PlatformError"),
    "Unauthenticated": ("unauthenticated", 401, "PlatformError"),
    "AccessDenied": ("access_denied", 403, "PlatformError"),
    "ReadOnlyFolder": ("read_only_folder", 403, "AccessDenied"),
    "NotFound": ("not_found", 404, "PlatformError"),
    "Conflict": ("conflict", 409, "PlatformError"),
    "ExecutionInProgress": ("execution_in_progress", 409, "Conflict"),
    "DuplicateKey": ("duplicate", 409, "Conflict"),
    "PathConflict": ("path_conflict", 409, "Conflict"),
    "PayloadTooLarge": ("payload_too_large", 413, "PlatformError"),
    "TooManyRequests": ("too_many_requests", 429, "PlatformError"),
    "ArtifactIntegrityError": ("artifact_integrity", 409, "PlatformError"),
    "StorageError": ("storage_error", 502, "PlatformError"),
    "StorageUnavailable": ("storage_unavailable", 503, "StorageError"),
    "StorageAuthError": ("storage_auth", 502, "StorageError"),
    "StorageFull": ("storage_full", 507, "StorageError"),
    "ObjectNotFound": ("object_not_found", 404, "NotFound"),
    "InvalidKey": ("invalid_path", 400, "BadRequest"),
    "InvalidStorageUri": ("invalid_storage_uri", 400, "BadRequest"),
}


def test_the_package_exports_every_error_class():
    assert sorted(exception_layer.__all__) == sorted(HIERARCHY)


@pytest.mark.parametrize("name", sorted(HIERARCHY))
def test_each_error_has_its_code_status_parent_and_a_default_message(name):
    code, status, parent = HIERARCHY[name]
    cls = getattr(exception_layer, name)
    assert (cls.code, cls.status) == (code, status)
    assert cls.__mro__[1].__name__ == parent
    if cls is not ExecutionInProgress:  # it always names the execution
        error = cls()
        assert error.message == cls.default_message and str(error) == error.message
        assert error.message.strip() and error.details is None


def test_codes_are_unique():
    codes = [code for code, _, _ in HIERARCHY.values()]
    assert len(codes) == len(set(codes))


def test_the_error_body_carries_code_message_and_details_only_when_given():
    assert NotFound("No project p1.").to_dict() == {"code": "not_found",
                                                    "message": "No project p1."}
    failed = ValidationFailed(details={"name": "A name is required."})
    assert failed.to_dict() == {"code": "validation_failed", "message": "Some fields are not "
                                "valid.", "details": {"name": "A name is required."}}
    assert PlatformError(details=[]).to_dict()["details"] == []  # empty, but given


def test_execution_in_progress_names_the_execution_and_its_kind():
    error = ExecutionInProgress("ex42", "train")
    assert error.message == ("A train execution of this project is already in progress (ex42); "
                             "wait for it to finish or cancel it.")
    assert error.details == {"execution_id": "ex42"} and error.execution_id == "ex42"
    assert ExecutionInProgress("ex43").message.startswith("An execution of this project")
    assert isinstance(error, exception_layer.Conflict) and error.status == 409


def test_the_cause_stays_out_of_the_message():
    """Internals travel as ``__cause__`` (for the server log), never in the message."""
    try:
        try:
            raise OSError("connection refused to 10.0.0.7:9000 with key=AKIA...")
        except OSError as exc:
            raise StorageUnavailable() from exc
    except StorageUnavailable as error:
        assert "10.0.0.7" not in error.message and "AKIA" not in str(error.to_dict())
        assert isinstance(error.__cause__, OSError)
