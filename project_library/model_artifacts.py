"""Storing and loading the files of a model version (``models/v<N>/``).

A version folder holds ``model.joblib`` (the fitted pipeline; ``model.skops`` for an imported
model, rebuilt by skops without unpickling: project_library/imported_models.py), JSON
documents (metrics, leaderboard, ``reference_profile.json`` for drift checks), plots, and
``manifest.json``, written last, with the SHA-256 of every other file. A model is unpickled only
after its bytes match the checksum recorded in the registry: unpickling runs code, so a file that
was changed on the storage must never be loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from datetime import UTC, datetime

import joblib

from entity.model_version import ModelVersion
from entity.project import BatchSchema
from exception_layer import ArtifactIntegrityError, Conflict, ObjectNotFound
from integration.file_manager import MODELS, ProjectFiles
from project_library.imported_models import SKOPS_FILE, imported_model, load_skops

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
#: the training data's per-feature profile that prediction compares new rows with (drift)
REFERENCE_PROFILE_FILE = "reference_profile.json"


def version_folder(version: int) -> str:
    """The project-relative folder of model version ``version``: ``models/v<N>/``."""
    return f"{MODELS}v{int(version)}/"


def sha256_hex(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def json_bytes(document) -> bytes:
    """``document`` as UTF-8 JSON (indented, keys in insertion order, no NaN)."""
    return json.dumps(document, indent=2, allow_nan=False, ensure_ascii=False).encode("utf-8")


def save_model_version(files: ProjectFiles, version: int, *, model=None,
                       model_file: tuple[str, bytes] | None = None, documents: dict,
                       binaries: dict[str, bytes] | None = None) -> dict[str, str]:
    """Write a model version's files into ``models/v<version>/``, the manifest last.

    Args:
        files: the project's files.
        version: the version number.
        model: the fitted estimator, stored as ``model.joblib``.
        model_file: instead of ``model``, the model's file as it is (an imported skops file:
            ``("model.skops", bytes)``).
        documents: JSON-serialisable documents by relative file name (``metrics.json``...).
        binaries: other files by relative name (``plots/roc_curve.png``...).

    Returns:
        ``{relative file name: sha256}`` of every file written, ``manifest.json`` included (the
        manifest lists all the others).

    Raises:
        Conflict: the version folder already holds a complete version (a manifest).
        StorageError: the storage refused a write.
    """
    folder = version_folder(version)
    if files.exists(folder + MANIFEST_FILE):
        raise Conflict(f"Model version {version} already exists; it was not overwritten.")
    if files.folder_exists(folder):
        files.delete_folder(folder)  # leftovers of an interrupted save of this version

    if model_file is None:
        buffer = io.BytesIO()
        joblib.dump(model, buffer, compress=3)
        model_file = (MODEL_FILE, buffer.getvalue())
    contents: dict[str, bytes] = dict([model_file])
    contents.update({name: json_bytes(doc) for name, doc in documents.items()})
    contents.update(binaries or {})

    hashes: dict[str, str] = {}
    for name, data in contents.items():
        files.upload_bytes(folder + name, data)
        hashes[name] = sha256_hex(data)
    manifest = {"version": int(version),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "files": dict(sorted(hashes.items()))}
    manifest_data = json_bytes(manifest)
    files.upload_bytes(folder + MANIFEST_FILE, manifest_data)
    hashes[MANIFEST_FILE] = sha256_hex(manifest_data)
    return hashes


def read_verified_file(files: ProjectFiles, version: ModelVersion, name: str) -> bytes:
    """The bytes of file ``name`` of ``version``, after checking them against the registry.

    Raises:
        ArtifactIntegrityError: no checksum is recorded for the file, the file is missing, or
            its bytes do not match the recorded SHA-256.
    """
    expected = (version.artifacts or {}).get(name)
    if not expected:
        raise ArtifactIntegrityError(
            f"Model version {version.version} has no recorded checksum for {name}; "
            "it was not loaded.")
    try:
        data = files.read_bytes(version_folder(version.version) + name)
    except ObjectNotFound:
        raise ArtifactIntegrityError(
            f"{name} of model version {version.version} is missing from the storage.") from None
    if not hmac.compare_digest(sha256_hex(data), expected):
        raise ArtifactIntegrityError(
            f"{name} of model version {version.version} does not match its recorded checksum "
            "(it was changed after training); it was not loaded.")
    return data


def verify_version_files(files: ProjectFiles, version: ModelVersion) -> None:
    """Check that every file the registry recorded for ``version`` is in its folder with its
    SHA-256, the manifest included, and that the model and the manifest are among them; used
    before a version is made the one predictions use.

    Raises:
        ArtifactIntegrityError (409): a file is missing or changed, or nothing was recorded;
            the message names the first such file.
    """
    recorded = dict(version.artifacts or {})
    model_file = SKOPS_FILE if SKOPS_FILE in recorded else MODEL_FILE
    for required in (model_file, MANIFEST_FILE):
        if required not in recorded:
            raise ArtifactIntegrityError(
                f"Model version {version.version} has no recorded checksum for {required}; "
                "it cannot serve predictions.")
    folder = version_folder(version.version)
    for name, expected in sorted(recorded.items()):
        try:
            actual = files.sha256(folder + name)
        except ObjectNotFound:
            raise ArtifactIntegrityError(
                f"{name} of model version {version.version} is missing from the storage; "
                "the version cannot serve predictions.") from None
        if not hmac.compare_digest(actual, expected):
            raise ArtifactIntegrityError(
                f"{name} of model version {version.version} does not match its recorded "
                "checksum (it was changed after training); the version cannot serve "
                "predictions.")


def load_verified_model(files: ProjectFiles, version: ModelVersion):
    """Load the fitted pipeline of ``version``, checking its SHA-256 BEFORE unpickling it.

    Args:
        files: the project's files.
        version: the registry entry; ``version.artifacts["model.joblib"]`` is the checksum.

    Returns:
        The fitted scikit-learn pipeline.

    Raises:
        ArtifactIntegrityError: the model file is missing, has no recorded checksum, or was
            changed; it is never unpickled in those cases.
    """
    if SKOPS_FILE in (version.artifacts or {}):  # imported: rebuilt by skops, never unpickled
        estimator = load_skops(read_verified_file(files, version, SKOPS_FILE))
        return imported_model(estimator, BatchSchema.from_dict(version.schema))
    data = read_verified_file(files, version, MODEL_FILE)
    return joblib.load(io.BytesIO(data))
