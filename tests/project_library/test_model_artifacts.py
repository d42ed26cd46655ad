"""Saving a model version and refusing to unpickle a changed model file."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from entity.model_version import ModelVersion
from exception_layer import ArtifactIntegrityError, Conflict
from project_library.model_artifacts import (
    load_verified_model,
    read_verified_file,
    save_model_version,
)


class _CreatesMarker:
    """Unpickling this runs ``open(path, "w")``: proof that a file was unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _fitted():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])  # noqa: N806
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, [0, 0, 1, 1])


def _version(artifacts: dict) -> ModelVersion:
    return ModelVersion(project_id="p1", version=3, execution_id="ex", algorithm="lr",
                        artifacts=artifacts)


def verify_version_files(files, version: ModelVersion) -> list[str]:
    """The recorded files of ``version`` that are missing or changed."""
    problems = []
    for name in sorted(version.artifacts or {}):
        try:
            read_verified_file(files, version, name)
        except ArtifactIntegrityError:
            problems.append(name)
    return problems


def test_saves_files_with_the_manifest_last_and_loads_them_back(files):
    hashes = save_model_version(files, 3, model=_fitted(), documents={"metrics.json": {"a": 1}},
                                binaries={"plots/x.png": b"png"})

    assert set(hashes) == {"model.joblib", "metrics.json", "plots/x.png", "manifest.json"}
    for name, digest in hashes.items():
        assert hashlib.sha256(files.read_bytes(f"models/v3/{name}")).hexdigest() == digest
    manifest = json.loads(files.read_bytes("models/v3/manifest.json"))
    assert manifest["files"] == {k: v for k, v in hashes.items() if k != "manifest.json"}
    model = load_verified_model(files, _version(hashes))
    assert model.predict([[3.0]]).tolist() == [1]
    assert verify_version_files(files, _version(hashes)) == []
    with pytest.raises(Conflict):
        save_model_version(files, 3, model=_fitted(), documents={})


def test_a_tampered_model_is_refused_and_never_unpickled(files, tmp_path):
    hashes = save_model_version(files, 3, model=_fitted(), documents={})
    marker = tmp_path / "unpickled.txt"
    evil = pickle.dumps(_CreatesMarker(str(marker)))
    pickle.loads(evil)  # the payload works: loading it creates the marker...
    assert marker.exists()
    marker.unlink()
    files.upload_bytes("models/v3/model.joblib", evil)

    with pytest.raises(ArtifactIntegrityError) as caught:
        load_verified_model(files, _version(hashes))

    assert not marker.exists()  # ...but it was never loaded
    assert "model.joblib of model version 3 does not match its recorded checksum" in \
        caught.value.message
    assert verify_version_files(files, _version(hashes)) == ["model.joblib"]


def test_missing_model_or_checksum_is_refused(files):
    hashes = save_model_version(files, 3, model=_fitted(), documents={})
    with pytest.raises(ArtifactIntegrityError, match="no recorded checksum"):
        load_verified_model(files, _version({}))
    files.delete("models/v3/model.joblib")
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        load_verified_model(files, _version(hashes))
