"""A storage backend's declaration of its connection fields is all the platform needs: a
throw-away backend registered here appears on the storage pages and in the API document, and
its fields are validated, encrypted and masked without a line written for it anywhere else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from cloud_storage import ConfigField, register_backend, registry
from cloud_storage.local import LocalStorage
from tests.factories import cancer_project

PASSPHRASE = "correct-horse-battery-staple"


class ShelfStorage(LocalStorage):
    """Local folders named by a folder and a shelf inside it (only ever used by this test)."""

    scheme = "shelf"
    kind = "shelf"
    label = "Shelf of a folder"
    configuration = (
        ConfigField("folder", "Folder", required=True, locates=True, pattern=r"^/",
                    message="The folder is an absolute path."),
        ConfigField("shelf", "Shelf", locates=True, help="lower-case letters",
                    pattern=r"^[A-Za-z]+$", message="A shelf is named with letters only.",
                    clean=str.lower),
        ConfigField("passphrase", "Passphrase", secret=True),
        ConfigField("note", "Sealed note", secret=True, multiline=True),
    )

    @classmethod
    def check_configuration(cls, settings: dict, secrets: dict) -> dict[str, str]:
        if settings.get("shelf") and not secrets.get("passphrase"):
            return {"passphrase": "A shelf needs a passphrase."}
        return {}

    @classmethod
    def configured_location(cls, settings: dict, secrets: dict) -> tuple[str, dict]:
        where = Path(settings["folder"], settings.get("shelf") or "")
        return where.as_uri(), cls.configured_credentials(settings, secrets)


@pytest.fixture
def shelf_backend(monkeypatch):
    registry.storage_kinds()  # the built-in backends first, as in the app
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    return register_backend(ShelfStorage)


def test_the_declaration_drives_the_pages(api, shelf_backend):
    listing = api.client.get("/admin/storage").get_data(as_text=True)
    assert "Add Shelf of a folder" in listing
    form = api.client.get("/admin/storage/new?kind=shelf").get_data(as_text=True)
    assert 'name="folder"' in form and "Folder *" in form
    assert 'name="shelf"' in form and "lower-case letters" in form
    assert 'id="passphrase" name="passphrase" type="password"' in form
    assert '<textarea class="form-control font-monospace" id="note" name="note"' in form

    posted = api.client.post("/admin/storage/new?kind=shelf", data={
        "csrf_token": api.client.csrf_token, "kind": "shelf", "name": "Shelf",
        "folder": "relative", "shelf": "ok"})
    assert posted.status_code == 422
    page = posted.get_data(as_text=True)
    assert "The folder is an absolute path." in page


def test_the_declaration_drives_validation(api, shelf_backend):
    def refused(settings: dict, secrets: dict | None = None) -> dict:
        response = api.post("/storage-connections", json={
            "name": "Shelf", "kind": "shelf", "settings": settings, "secrets": secrets or {}})
        assert response.status_code == 422, response.get_json()
        return response.get_json()["error"]["details"]

    assert refused({}) == {"folder": "Folder is required."}
    assert refused({"folder": "/srv", "shelf": 7}) == {"shelf": "Must be text."}
    assert refused({"folder": "srv", "shelf": "no-dashes"}, {"passphrase": "x"}) == {
        "folder": "The folder is an absolute path.",
        "shelf": "A shelf is named with letters only."}
    assert refused({"folder": "/srv", "shelf": "top"}) == {
        "passphrase": "A shelf needs a passphrase."}
    unknown = api.post("/storage-connections", json={"name": "X", "kind": "nowhere"})
    assert unknown.get_json()["error"]["details"] == {
        "kind": "Choose one of local, s3, azure, gcs, shelf."}
    assert api.get("/storage-connections").get_json()["total"] == 0


def test_the_declaration_drives_encryption_masking_and_the_location(app, api, tmp_path,
                                                                      shelf_backend):
    folder = tmp_path / "shelves"
    created = api.post("/storage-connections", json={
        "name": "Shelf", "kind": "shelf", "settings": {"folder": str(folder), "shelf": "Top"},
        "secrets": {"passphrase": PASSPHRASE}})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["settings"] == {"folder": str(folder), "shelf": "top"}  # cleaned
    assert body["secrets"] == {"passphrase": "--------", "note": ""}
    services = app.extensions["trainyard"]
    stored = services.db.store.collection("storage_connections").get(body["id"])
    assert PASSPHRASE not in json.dumps(stored)
    assert services.box.decrypt(stored["secrets"]) == {"passphrase": PASSPHRASE}

    # the mask sent back keeps the secret; the location is what the backend builds
    kept = api.patch(f"/storage-connections/{body['id']}",
                     json={"secrets": {"passphrase": "--------", "note": "sealed"}})
    assert kept.status_code == 200 and kept.get_json()["secrets"] == {
        "passphrase": "--------", "note": "--------"}
    with app.app_context():
        uri, credentials = services.resolver.location_of(body["id"])
    assert uri == (folder / "top").as_uri()
    assert credentials == {"passphrase": PASSPHRASE, "note": "sealed"}
    assert api.post(f"/storage-connections/{body['id']}/test").status_code == 200
    for page in (api.client.get("/admin/storage"), api.client.get(f"/admin/storage/{body['id']}"),
                 api.get("/storage-connections")):
        assert PASSPHRASE not in page.get_data(as_text=True)
    listing = api.client.get("/admin/storage").get_data(as_text=True)
    assert f"{folder}/top</td>" in listing  # where: the fields that locate the files

    # a locating field cannot change under a project that uses the connection
    api.create_project(cancer_project(storage_connection_id=body["id"]))
    moved = api.patch(f"/storage-connections/{body['id']}", json={"settings": {"shelf": "low"}})
    assert moved.status_code == 409


def test_the_declaration_drives_the_api_document(api, shelf_backend):
    document = api.get("/openapi.json").get_json()
    validate(document)
    schemas = document["components"]["schemas"]
    assert "shelf" in schemas["StorageConnectionInput"]["properties"]["kind"]["enum"]
    assert "shelf: folder, shelf, passphrase (secret), note (secret)" in \
        schemas["StorageConnectionInput"]["description"]
    (taken,) = [s for s in schemas["StorageConnectionInput"]["anyOf"]
                if s["properties"]["kind"] == {"const": "shelf"}]
    assert taken["title"] == "Shelf of a folder"
    assert taken["properties"]["settings"]["properties"]["shelf"] == {
        "type": "string", "title": "Shelf", "description": "lower-case letters"}
    assert taken["properties"]["secrets"]["properties"]["passphrase"]["writeOnly"] is True
    (shown,) = [s for s in schemas["StorageConnection"]["anyOf"]
                if s["properties"]["kind"] == {"const": "shelf"}]
    assert shown["properties"]["secrets"]["properties"]["note"]["enum"] == ["--------", ""]
