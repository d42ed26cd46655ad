"""Train then predict on each of the four storages (local disk, S3 on moto_server, Azure Blob on
Azurite, GCS on gcp-storage-emulator): batch files, archives, models and outputs land in the
chosen bucket under <prefix>/<project>/, and deleting the project leaves nothing behind."""

from __future__ import annotations

import contextlib

import pytest

from tests.emulators import (  # noqa: F401 - the *_server names are fixtures
    azure_storage,
    azurite_server,
    connection_definition,
    gcs_server,
    gcs_storage,
    moto_server,
    s3_storage,
)
from tests.factories import batch_files, cancer_frame, cancer_project, csv_bytes

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def local_storage(tmp_path):
    from cloud_storage import open_storage

    folder = tmp_path / "local-bucket"
    folder.mkdir()
    yield open_storage(folder.as_uri())


FACTORIES = {"local": local_storage, "s3": s3_storage, "azure": azure_storage,
             "gcs": gcs_storage}


@pytest.mark.parametrize("backend", sorted(FACTORIES))
def test_train_and_predict_on_each_storage(api, backend, tmp_path):
    with FACTORIES[backend](tmp_path) as storage:
        created = api.post("/storage-connections",
                           json=connection_definition(f"{backend} bucket", storage))
        assert created.status_code == 201, created.get_json()
        tested = api.post(f"/storage-connections/{created.get_json()['id']}/test")
        assert tested.status_code == 200, tested.get_json()
        project = api.create_project(cancer_project(
            storage_connection_id=created.get_json()["id"]))
        pid, slug = project["id"], project["slug"]
        frame = cancer_frame()
        assert api.upload(pid, "training_batch_files/",
                          batch_files(frame.iloc[:500], "cancer", 2)).status_code == 201
        broken = frame.iloc[:20].assign(mean_radius="huge")
        storage.upload_bytes(f"{slug}/training_batch_files/cancer_20261231_000000.csv",
                             csv_bytes(broken))

        trained = api.wait_final(pid, api.start(pid, "train").get_json()["id"])
        assert trained["status"] == "succeeded", trained
        assert trained["result"]["metrics"]["accuracy"] > 0.9
        keys = {o.key for o in storage.iter_objects(f"{slug}/")}
        assert f"{slug}/models/v1/model.joblib" in keys
        assert f"{slug}/models/v1/manifest.json" in keys
        assert f"{slug}/archive/{trained['id']}/bad/cancer_20261231_000000.csv" in keys
        assert f"{slug}/archive/{trained['id']}/validation_report.json" in keys

        unseen = frame.iloc[500:].drop(columns=["diagnosis"])
        assert api.upload(pid, "prediction_batch_files/",
                          [("cancer_20270101_000000.csv", csv_bytes(unseen))]).status_code == 201
        predicted = api.wait_final(pid, api.start(pid, "predict").get_json()["id"])
        assert predicted["status"] == "succeeded", predicted
        assert predicted["result"]["rows"] == len(unseen)
        output_key = f"{slug}/prediction_output/{predicted['id']}/predictions.csv"
        assert storage.exists(output_key)
        download = api.get(f"/projects/{pid}/executions/{predicted['id']}/output.csv")
        assert download.status_code == 200
        assert download.data.count(b"\n") == len(unseen) + 1

        assert api.delete(f"/projects/{pid}").status_code == 204
        assert list(storage.iter_objects(f"{slug}/")) == []  # nothing orphaned
