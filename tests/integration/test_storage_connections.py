"""Storage connections: secrets encrypted at rest and masked everywhere, plain-words checks, and
moving a trained project between storages (verified copy, old files removed, a failed move leaves
the project where it was)."""

from __future__ import annotations

import json

import pytest

from tests.factories import batch_files, cancer_frame, cancer_project, csv_bytes

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def raw_connection(app, connection_id: str) -> dict:
    return app.extensions["trainyard"].db.store.collection("storage_connections").get(
        connection_id)


def test_secrets_are_encrypted_at_rest_and_masked_in_every_answer(app, api, caplog):
    created = api.post("/storage-connections", json={
        "name": "Lake", "kind": "s3",
        "settings": {"bucket": "ml-lake", "prefix": "teams/a", "region": "eu-west-1",
                     "access_key_id": "AKIAEXAMPLE"},
        "secrets": {"secret_access_key": SECRET}})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["secrets"] == {"secret_access_key": "--------", "session_token": ""}
    stored = json.dumps(raw_connection(app, body["id"]))
    assert SECRET not in stored and "ml-lake" in stored

    # a masked value sent back keeps the secret; a new value replaces it
    kept = api.patch(f"/storage-connections/{body['id']}", json={
        "settings": {"region": "eu-west-3"}, "secrets": {"secret_access_key": "--------"}})
    assert kept.status_code == 200
    services = app.extensions["trainyard"]
    with app.app_context():
        connection = services.db.storage_connections.get(body["id"])
    assert services.box.decrypt(connection.secrets)["secret_access_key"] == SECRET
    assert connection.settings["region"] == "eu-west-3"
    api.patch(f"/storage-connections/{body['id']}",
              json={"secrets": {"secret_access_key": "new-secret-value"}})
    with app.app_context():
        connection = services.db.storage_connections.get(body["id"])
    assert services.box.decrypt(connection.secrets)["secret_access_key"] == "new-secret-value"

    for response in (api.get("/storage-connections"), api.get(f"/storage-connections/{body['id']}"),
                     api.get("/audit?per_page=200"), api.client.get("/admin/storage"),
                     api.client.get(f"/admin/storage/{body['id']}")):
        text = response.get_data(as_text=True)
        assert SECRET not in text and "new-secret-value" not in text
    assert SECRET not in caplog.text and "new-secret-value" not in caplog.text


@pytest.mark.parametrize("definition, field", [
    ({"kind": "s3", "settings": {"bucket": "Bad_Bucket!"}}, "bucket"),
    ({"kind": "s3", "settings": {"bucket": "ok-bucket", "access_key_id": "AKIA"}},
     "secret_access_key"),
    ({"kind": "azure", "settings": {"container": "data"}}, "connection_string"),
    ({"kind": "gcs", "settings": {"bucket": "ok-bucket"},
      "secrets": {"service_account_json": "{not json"}}, "service_account_json"),
    ({"kind": "local", "settings": {"directory": "relative/path"}}, "directory"),
    ({"kind": "ftp", "settings": {}}, "kind"),
    ({"kind": "s3", "settings": {"bucket": "ok-bucket", "prefix": "../up"}}, "prefix"),
])
def test_wrong_connection_fields_are_named(api, definition, field):
    response = api.post("/storage-connections", json={"name": "X", **definition})
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]
    assert api.get("/storage-connections").get_json()["total"] == 0


def test_test_connection_says_what_is_wrong(api, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = api.post("/storage-connections", json={
        "name": "Broken", "kind": "local",
        "settings": {"directory": str(blocker / "inside")}}).get_json()
    response = api.post(f"/storage-connections/{bad['id']}/test")
    assert response.status_code in (502, 503)
    assert response.get_json()["error"]["message"]
    good = api.post("/storage-connections", json={
        "name": "Disk", "kind": "local", "settings": {"directory": str(tmp_path / "disk")}})
    response = api.post(f"/storage-connections/{good.get_json()['id']}/test")
    assert response.status_code == 200 and "Connected" in response.get_json()["message"]


@pytest.mark.slow
def test_move_a_trained_project_to_another_storage_and_keep_using_it(app, api, tmp_path):
    project = api.create_project(cancer_project())
    api.upload(project["id"], "training_batch_files/", batch_files(cancer_frame(), "cancer", 2))
    trained = api.wait_final(project["id"], api.start(project["id"], "train").get_json()["id"])
    assert trained["status"] == "succeeded"
    services = app.extensions["trainyard"]
    with app.app_context():
        old_files = services.resolver.files(services.db.projects.get(project["id"]))
    before = {f.key: old_files.sha256(f.key) for f in old_files.list_files("")}
    assert any(k.startswith("models/v1/") for k in before)

    target = api.post("/storage-connections", json={
        "name": "Second disk", "kind": "local",
        "settings": {"directory": str(tmp_path / "second")}}).get_json()
    # the target's folder is in use -> refused without touching anything
    in_use = api.delete(f"/storage-connections/{target['id']}")
    assert in_use.status_code == 204  # not used yet: deletable
    target = api.post("/storage-connections", json={
        "name": "Second disk", "kind": "local",
        "settings": {"directory": str(tmp_path / "second")}}).get_json()

    moved = api.post(f"/projects/{project['id']}/executions",
                     json={"kind": "move", "target_connection_id": target["id"]})
    assert moved.status_code == 202, moved.get_json()
    done = api.wait_final(project["id"], moved.get_json()["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["files"] == len(before)
    after = api.get(f"/projects/{project['id']}").get_json()
    assert after["storage_connection_id"] == target["id"]
    with app.app_context():
        new_files = services.resolver.files(services.db.projects.get(project["id"]))
    assert {f.key: new_files.sha256(f.key) for f in new_files.list_files("")} == before
    assert old_files.list_files("") == []  # nothing orphaned on the old storage
    assert str(tmp_path / "second") in new_files.storage.uri.replace("%20", " ")
    assert api.delete(f"/storage-connections/{target['id']}").status_code == 409

    # the model still serves from its new home
    api.upload(project["id"], "prediction_batch_files/",
               [("cancer_20270101_000000.csv",
                 csv_bytes(cancer_frame().iloc[:25].drop(columns=["diagnosis"])))])
    predicted = api.wait_final(project["id"],
                               api.start(project["id"], "predict").get_json()["id"])
    assert predicted["status"] == "succeeded" and predicted["result"]["rows"] == 25


@pytest.mark.slow
def test_a_failed_move_leaves_the_project_on_its_old_storage(app, api, tmp_path):
    project = api.create_project(cancer_project())
    api.upload(project["id"], "training_batch_files/", batch_files(cancer_frame(), "cancer", 2))
    services = app.extensions["trainyard"]
    with app.app_context():
        files = services.resolver.files(services.db.projects.get(project["id"]))
    before = sorted(f.key for f in files.list_files(""))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the target folder should be")
    target = api.post("/storage-connections", json={
        "name": "Unwritable", "kind": "local",
        "settings": {"directory": str(blocker / "storage")}}).get_json()
    moved = api.post(f"/projects/{project['id']}/executions",
                     json={"kind": "move", "target_connection_id": target["id"]})
    if moved.status_code == 202:
        done = api.wait_final(project["id"], moved.get_json()["id"])
        assert done["status"] == "failed" and done["error"]
    else:  # refused up front because the target cannot even be listed
        assert moved.status_code in (409, 502, 503)
    assert api.get(f"/projects/{project['id']}").get_json()["storage_connection_id"] is None
    assert sorted(f.key for f in files.list_files("")) == before
