"""Issue 21, item 1: a member could read, write and delete through any storage connection an
admin registered. Each attack of the report is replayed here:

- ``/projects/new`` listed every connection to any user;
- a member created a project named ``victim`` on a local connection whose folder held
  ``victim/secret.txt``: the project adopted the folder, the member downloaded the secret, and
  deleting the project removed the folder;
- on a connection whose folder holds the default storage, a project named ``storage`` read
  another project's model and wrote into its batch folder.

Now a connection is usable only by admins and the users it is granted to (or everyone, when it
is available to all projects), and hidden from the others; a project starts in an empty folder
that lies neither inside nor around another project's or the default storage; deleting a
project removes only what is under its own root; and a move obeys the same rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from entity.project import Project
from entity.user import User
from tests.conftest import ApiClient
from tests.factories import cancer_project
from tests.security.conftest import PASSWORD, login_client, password_hash, unique

NO_SUCH = "No such storage connection."


@pytest.fixture
def member(app, api) -> ApiClient:
    """A member with no role anywhere, logged in (``member.user`` is the user)."""
    services = app.extensions["trainyard"]
    user = services.db.users.add(User(email=f"{unique('member')}@example.com", name="Mallory",
                                      role="member", password_hash=password_hash(PASSWORD)))
    client = ApiClient(login_client(app, user.email))
    client.user = user
    return client


def connection(api: ApiClient, directory: Path, **extra) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    made = api.post("/storage-connections", json={
        "name": unique("Disk "), "kind": "local", "settings": {"directory": str(directory)},
        **extra})
    assert made.status_code == 201, made.get_json()
    return made.get_json()


def grant(api: ApiClient, connection_id: str, *users: User, **extra) -> dict:
    changed = api.patch(f"/storage-connections/{connection_id}", json={
        "grants": [{"type": "user", "id": u.id} for u in users], **extra})
    assert changed.status_code == 200, changed.get_json()
    return changed.get_json()


def default_storage(app) -> Path:
    return Path(app.config["DATA_DIR"]) / "storage"


def refused(response, field: str = "storage_connection_id") -> str:
    assert response.status_code == 422, response.get_json()
    return response.get_json()["error"]["details"][field]


def test_a_connection_is_hidden_from_the_users_it_is_not_granted_to(app, api, member,
                                                                     tmp_path):
    disk = connection(api, tmp_path / "team-disk")
    assert disk["grants"] == [] and disk["available_to_all"] is False

    page = member.client.get("/projects/new").get_data(as_text=True)
    assert disk["id"] not in page and disk["name"] not in page
    assert disk["id"] in api.client.get("/projects/new").get_data(as_text=True)  # admins
    assert refused(member.post("/projects", json=cancer_project(
        "Mine", storage_connection_id=disk["id"]))) == NO_SUCH
    assert member.get("/storage-connections").status_code == 403

    own = member.create_project(cancer_project("Own project"))
    moved = member.start(own["id"], "move", target_connection_id=disk["id"])
    assert refused(moved, "target_connection_id") == NO_SUCH

    granted = grant(api, disk["id"], member.user)
    assert granted["grants"] == [{"type": "user", "id": member.user.id}]
    assert disk["id"] in member.client.get("/projects/new").get_data(as_text=True)
    assert member.create_project(cancer_project(
        "On the team disk", storage_connection_id=disk["id"]))["storage_connection_id"] == \
        disk["id"]
    audit = api.get("/audit?action=storage.grants").get_json()["items"]
    assert audit[0]["details"] == {"grants": [{"type": "user", "id": member.user.id}],
                                   "available_to_all": False}

    # taken back: hidden again, and the admin form shows who has it
    grant(api, disk["id"])
    assert refused(member.post("/projects", json=cancer_project(
        "Again", storage_connection_id=disk["id"]))) == NO_SUCH
    everyone = grant(api, disk["id"], available_to_all=True)
    assert everyone["available_to_all"] is True
    assert disk["id"] in member.client.get("/projects/new").get_data(as_text=True)


def test_grants_are_set_on_the_admin_form_and_checked(app, api, member, tmp_path):
    disk = connection(api, tmp_path / "form-disk")
    form = api.client.get(f"/admin/storage/{disk['id']}").get_data(as_text=True)
    assert f'value="{member.user.id}"' in form and 'name="available_to_all"' in form
    saved = api.client.post(f"/admin/storage/{disk['id']}", data={
        "csrf_token": api.client.csrf_token, "name": disk["name"],
        "directory": disk["settings"]["directory"], "grant_user": member.user.id})
    assert saved.status_code == 303
    shown = api.get(f"/storage-connections/{disk['id']}").get_json()
    assert shown["grants"] == [{"type": "user", "id": member.user.id}]
    assert shown["available_to_all"] is False

    for grants in ([{"type": "team", "id": "t1"}], [{"type": "user", "id": "nobody"}],
                   "everyone", [{"type": "user"}]):
        wrong = api.patch(f"/storage-connections/{disk['id']}", json={"grants": grants})
        assert refused(wrong, "grants")
    assert refused(api.patch(f"/storage-connections/{disk['id']}",
                             json={"available_to_all": "yes"}), "available_to_all")


def test_a_project_never_adopts_a_folder_that_holds_files(app, api, member, tmp_path):
    disk_folder = tmp_path / "shared-disk"
    (disk_folder / "victim").mkdir(parents=True)
    (disk_folder / "victim" / "secret.txt").write_text("the victim's secret")
    disk = connection(api, disk_folder)
    grant(api, disk["id"], member.user)

    attempt = member.post("/projects", json=cancer_project(
        "victim", storage_connection_id=disk["id"]))
    assert "already holds files under victim/" in refused(attempt)
    assert member.get("/projects").get_json()["total"] == 0

    # a project in an empty folder of its own; deleting it leaves its neighbours alone
    fresh = member.create_project(cancer_project("fresh", storage_connection_id=disk["id"]))
    assert (disk_folder / "fresh" / "training_batch_files").is_dir()
    assert member.delete(f"/projects/{fresh['id']}").status_code == 204
    assert (disk_folder / "victim" / "secret.txt").read_text() == "the victim's secret"
    assert not (disk_folder / "fresh").exists() or not any((disk_folder / "fresh").rglob("*.*"))


def test_no_project_root_inside_or_around_the_default_storage(app, api, member, tmp_path):
    victim = api.create_project(cancer_project("Victim"))
    model = default_storage(app) / victim["slug"] / "models" / "v4" / "model.joblib"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"the victim's model")

    around = connection(api, Path(app.config["DATA_DIR"]))  # holds DATA_DIR/storage
    inside = connection(api, default_storage(app) / victim["slug"])
    link = tmp_path / "link-to-storage"
    link.symlink_to(default_storage(app), target_is_directory=True)
    through_a_link = connection(api, link)
    for disk in (around, inside, through_a_link):
        grant(api, disk["id"], member.user)

    for disk, name in ((around, "storage"), (inside, "models"), (inside, "elsewhere"),
                       (through_a_link, "via-a-link")):
        attempt = member.post("/projects", json=cancer_project(
            name, storage_connection_id=disk["id"]))
        assert "default storage" in refused(attempt), (disk["name"], name)
    # the connection around the default storage is fine for a folder beside it
    beside = member.create_project(cancer_project("beside",
                                                  storage_connection_id=around["id"]))
    assert beside["storage_connection_id"] == around["id"]
    assert model.read_bytes() == b"the victim's model"


def test_no_project_root_inside_or_around_another_projects(app, api, member, tmp_path):
    outer = connection(api, tmp_path / "outer")
    inner = connection(api, tmp_path / "outer" / "team")
    for disk in (outer, inner):
        grant(api, disk["id"], member.user)
    api.create_project(cancer_project("team", storage_connection_id=outer["id"]))
    attempt = member.post("/projects", json=cancer_project(
        "Anything", storage_connection_id=inner["id"]))
    assert "another project's folder" in refused(attempt)

    # and around: a folder that holds another project's root
    parent = connection(api, tmp_path)
    grant(api, parent["id"], member.user)
    attempt = member.post("/projects", json=cancer_project(
        "outer", storage_connection_id=parent["id"]))
    assert "another project's folder" in refused(attempt)


def test_a_move_obeys_the_same_rules(app, api, member, tmp_path):
    own = member.create_project(cancer_project("Movable"))
    full_folder = tmp_path / "full"
    (full_folder / own["slug"]).mkdir(parents=True)
    (full_folder / own["slug"] / "left-over.csv").write_text("a,b\n")
    full = connection(api, full_folder)
    inside = connection(api, default_storage(app) / "sub")
    aside = connection(api, tmp_path / "aside")
    for disk in (full, inside, aside):
        grant(api, disk["id"], member.user)
    api.create_project(cancer_project("Neighbour", storage_connection_id=aside["id"]))
    into_neighbour = connection(api, tmp_path / "aside" / "neighbour")
    grant(api, into_neighbour["id"], member.user)

    for disk, reason in ((full, "already holds files"), (inside, "default storage"),
                         (into_neighbour, "another project's folder")):
        moved = member.start(own["id"], "move", target_connection_id=disk["id"])
        assert moved.status_code == 409, (reason, moved.get_json())
        assert reason in moved.get_json()["error"]["message"]
    assert member.get(f"/projects/{own['id']}/executions").get_json()["total"] == 0
    assert (full_folder / own["slug"] / "left-over.csv").exists()


def test_deleting_a_project_removes_only_what_is_under_its_own_root(app, api, member):
    """Roots that overlapped before they were checked (an older database): deleting the
    project around the default storage, or inside another's root, deletes none of their
    files; a project whose root is its own loses its files with it."""
    victim = api.create_project(cancer_project("Victim"))
    model = default_storage(app) / victim["slug"] / "models" / "v4" / "model.joblib"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"the victim's model")
    around = connection(api, Path(app.config["DATA_DIR"]))
    inside = connection(api, default_storage(app) / victim["slug"])
    services = app.extensions["trainyard"]
    schema = services.db.projects.get(victim["id"]).schema
    for disk, slug in ((around, "storage"), (inside, "models")):
        services.db.projects.add(Project(
            name=slug, slug=slug, problem_type="classification", owner_id=member.user.id,
            schema=schema, storage_connection_id=disk["id"]))
    legacy = {p["slug"]: p["id"] for p in member.get("/projects").get_json()["items"]}
    assert member.get(f"/projects/{legacy['models']}/files/content?path=v4/model.joblib"
                      ).status_code == 200  # what the overlap let through

    for slug in ("models", "storage"):
        assert member.delete(f"/projects/{legacy[slug]}").status_code == 204
    assert member.get("/projects").get_json()["total"] == 0
    assert model.read_bytes() == b"the victim's model"
    assert (default_storage(app) / victim["slug"] / "training_batch_files").is_dir()

    assert api.delete(f"/projects/{victim['id']}").status_code == 204
    assert not model.exists()


def test_a_move_from_an_overlapping_root_leaves_the_others_files(app, api, member):
    """A project of an older database whose root lies inside another's: moving it away copies
    what its root held, and removes none of it from the other project."""
    victim = api.create_project(cancer_project("Victim"))
    model = default_storage(app) / victim["slug"] / "models" / "v4" / "model.joblib"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"the victim's model")
    inside = connection(api, default_storage(app) / victim["slug"])
    services = app.extensions["trainyard"]
    legacy = services.db.projects.add(Project(
        name="models", slug="models", problem_type="classification", owner_id=member.user.id,
        schema=services.db.projects.get(victim["id"]).schema, storage_connection_id=inside["id"]))
    aside = connection(api, Path(app.config["DATA_DIR"]).parent / "aside")
    grant(api, aside["id"], member.user)

    moved = member.start(legacy.id, "move", target_connection_id=aside["id"])
    assert moved.status_code == 202, moved.get_json()
    assert member.wait_final(legacy.id, moved.get_json()["id"])["status"] == "succeeded"
    assert (Path(aside["settings"]["directory"]) / "models" / "v4" / "model.joblib").exists()
    assert model.read_bytes() == b"the victim's model"
