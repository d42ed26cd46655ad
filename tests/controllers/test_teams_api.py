"""Issue 23, deliverable 0: teams through the API and the pages. Admins create teams and name
leads, leads manage their members, a team's role on a project reaches its members (the higher of
their own role and the team's wins), and taking someone out of a team ends that access at once:
the project's API, its share links and the storage connections granted to the team."""

from __future__ import annotations

from pathlib import Path

import pytest

from entity.user import User
from tests.conftest import ApiClient
from tests.factories import cancer_project
from tests.security.conftest import PASSWORD, login_client, password_hash, unique


def _put(client: ApiClient, path: str, body: dict):
    return client.client.put("/api/v1" + path, json=body,
                             headers={"X-CSRFToken": client.client.csrf_token})


@pytest.fixture
def people(app, api):
    """Three members with no role anywhere, logged in: lead, member, stranger."""
    services = app.extensions["trainyard"]
    made = {}
    for name in ("lead", "member", "stranger"):
        user = services.db.users.add(User(email=f"{unique(name)}@example.com", name=name,
                                          password_hash=password_hash(PASSWORD)))
        client = ApiClient(login_client(app, user.email))
        client.user = user
        made[name] = client
    return made


@pytest.fixture
def team(api, people) -> dict:
    """A team led by ``lead``, with ``member`` in it."""
    created = api.post("/teams", json={"name": unique("Churn squad "), "description": "ML"})
    assert created.status_code == 201, created.get_json()
    team = created.get_json()
    assert _put(api, f"/teams/{team['id']}/members",
                {"email": people["lead"].user.email, "role": "lead"}).status_code == 200
    assert _put(people["lead"], f"/teams/{team['id']}/members",
                {"email": people["member"].user.email}).status_code == 200
    return team


def test_admins_create_teams_and_their_names_are_checked(api, people):
    made = api.post("/teams", json={"name": "Fraud Detection"})
    assert made.status_code == 201
    assert made.get_json()["slug"] == "fraud-detection" and made.get_json()["members"] == []
    for body, field in (({"name": "fraud detection"}, "name"), ({"name": ""}, "name"),
                        ({"name": "!!!"}, "name"), ({"name": 12}, "name"),
                        ({"name": "x", "description": ["no"]}, "description")):
        refused = api.post("/teams", json=body)
        assert refused.status_code == 422, (body, refused.get_json())
        assert field in refused.get_json()["error"]["details"]
    assert people["lead"].post("/teams", json={"name": "Mine"}).status_code == 403
    listed = people["stranger"].get("/teams").get_json()
    assert [t["name"] for t in listed["items"]] == ["Fraud Detection"]
    assert api.get("/teams/no-such-team").status_code == 404


def test_leads_manage_plain_members_and_only_admins_name_leads(api, people, team):
    lead, member, stranger = people["lead"], people["member"], people["stranger"]
    tid = team["id"]
    shown = api.get(f"/teams/{team['slug']}").get_json()
    assert [(m["user"]["email"], m["role"]) for m in shown["members"]] == [
        (lead.user.email, "lead"), (member.user.email, "member")]
    # a lead may not name a lead nor change one; a member and a stranger manage nothing
    assert _put(lead, f"/teams/{tid}/members", {"email": stranger.user.email,
                                                "role": "lead"}).status_code == 403
    for outsider in (member, stranger):
        assert _put(outsider, f"/teams/{tid}/members",
                    {"email": stranger.user.email}).status_code == 403
        assert outsider.delete(f"/teams/{tid}/members/{member.user.id}").status_code == 403
    assert _put(lead, f"/teams/{tid}/members", {"email": "nobody@example.com"}).get_json()[
        "error"]["details"] == {"email": "No account has this e-mail address; an admin can "
                                         "invite them."}
    assert _put(lead, f"/teams/{tid}/members", {"email": member.user.email,
                                                "role": "boss"}).status_code == 422
    assert lead.delete(f"/teams/{tid}/members/{member.user.id}").status_code == 204
    assert lead.delete(f"/teams/{tid}/members/{member.user.id}").status_code == 404
    assert lead.patch(f"/teams/{tid}", json={"name": "Renamed"}).status_code == 403
    assert lead.delete(f"/teams/{tid}").status_code == 403
    assert [m["user"]["email"] for m in api.get(f"/teams/{tid}/members").get_json()[
        "items"]] == [lead.user.email]


def test_a_team_role_reaches_its_members_and_leaving_ends_it_at_once(app, api, people, team):
    member, stranger = people["member"], people["stranger"]
    project = api.create_project(cancer_project())
    pid = project["id"]
    assert api.upload(pid, "docs/", [("readme.txt", b"hello")]).status_code == 201
    assert member.get(f"/projects/{pid}").status_code == 404
    given = _put(api, f"/projects/{pid}/teams", {"team": team["slug"], "role": "viewer"})
    assert given.status_code == 200 and given.get_json()["role"] == "viewer"
    assert api.get(f"/projects/{pid}").get_json()["teams"] == {team["id"]: "viewer"}
    assert member.get(f"/projects/{pid}").status_code == 200
    assert pid in [p["id"] for p in member.get("/projects").get_json()["items"]]
    assert stranger.get(f"/projects/{pid}").status_code == 404
    # viewer through the team: reads, may not write; an own editor role is higher and wins
    assert member.patch(f"/projects/{pid}", json={"description": "x"}).status_code == 403
    assert _put(api, f"/projects/{pid}/members", {"email": member.user.email,
                                                  "role": "editor"}).status_code == 200
    assert member.patch(f"/projects/{pid}", json={"description": "x"}).status_code == 200
    assert api.delete(f"/projects/{pid}/members/{member.user.id}").status_code == 204
    # a share link the member made stands for the member's access
    link = member.get(f"/projects/{pid}/files/link?path=docs/readme.txt").get_json()["url"]
    link = "/api/v1/download/" + link.rsplit("/api/v1/download/", 1)[1]
    download = app.test_client()
    assert download.get(link).status_code == 200
    assert people["lead"].delete(f"/teams/{team['id']}/members/"
                                 f"{member.user.id}").status_code == 204
    assert member.get(f"/projects/{pid}").status_code == 404
    refused = download.get(link)
    assert refused.status_code == 404 and "lost access" in refused.get_json()["error"]["message"]
    # a team taken off the project
    assert _put(api, f"/teams/{team['id']}/members",
                {"email": stranger.user.email}).status_code == 200
    assert stranger.get(f"/projects/{pid}").status_code == 200
    assert api.delete(f"/projects/{pid}/teams/{team['id']}").status_code == 204
    assert stranger.get(f"/projects/{pid}").status_code == 404
    assert api.delete(f"/projects/{pid}/teams/{team['id']}").status_code == 404
    assert _put(api, f"/projects/{pid}/teams", {"team": "no-such", "role": "viewer"}).get_json()[
        "error"]["details"] == {"team": "No such team."}
    # only owners name teams
    assert _put(people["lead"], f"/projects/{pid}/teams",
                {"team": team["id"], "role": "owner"}).status_code == 404


def test_a_team_holds_storage_grants_and_deleting_it_ends_everything(app, api, people, team,
                                                                     tmp_path):
    member = people["member"]
    folder = Path(tmp_path) / "team-disk"
    folder.mkdir()
    disk = api.post("/storage-connections", json={
        "name": unique("Team disk "), "kind": "local", "settings": {"directory": str(folder)},
        "grants": [{"type": "team", "id": team["id"]}]})
    assert disk.status_code == 201, disk.get_json()
    bad = api.patch(f"/storage-connections/{disk.get_json()['id']}",
                    json={"grants": [{"type": "team", "id": "nope"}]})
    assert bad.get_json()["error"]["details"] == {"grants": "No such team: nope."}
    # the admin's storage form offers the team and keeps its grant
    cid = disk.get_json()["id"]
    form = api.client.get(f"/admin/storage/{cid}").get_data(as_text=True)
    assert f'id="grant-team-{team["id"]}"' in form and "checked" in form
    saved = api.client.post(f"/admin/storage/{cid}", data={
        "csrf_token": api.client.csrf_token, "name": disk.get_json()["name"],
        "directory": str(folder), "grant_team": team["id"]})
    assert saved.status_code == 303
    assert api.get(f"/storage-connections/{cid}").get_json()["grants"] == [
        {"type": "team", "id": team["id"]}]
    definition = cancer_project() | {"name": unique("On team disk "),
                                     "storage_connection_id": disk.get_json()["id"]}
    assert member.post("/projects", json=definition).status_code == 201
    project = api.create_project(cancer_project() | {"name": unique("Shared ")})
    assert _put(api, f"/projects/{project['id']}/teams",
                {"team": team["id"], "role": "editor"}).status_code == 200
    assert api.delete(f"/teams/{team['id']}").status_code == 204
    assert member.get(f"/projects/{project['id']}").status_code == 404
    assert api.get(f"/projects/{project['id']}").get_json()["teams"] == {}
    shown = api.get(f"/storage-connections/{disk.get_json()['id']}").get_json()
    assert shown["grants"] == []
    again = member.post("/projects", json=definition | {"name": unique("Again ")})
    assert again.status_code == 422


def test_the_team_pages_and_the_project_members_page(app, api, admin_client, people, team):
    lead = people["lead"].client
    page = admin_client.get("/teams").get_data(as_text=True)
    assert team["name"] in page and "Create a team" in page
    assert "Create a team" not in lead.get("/teams").get_data(as_text=True)
    created = admin_client.post("/teams", data={"name": "Paged team",
                                                "csrf_token": admin_client.csrf_token})
    assert created.status_code == 303
    duplicate = admin_client.post("/teams", data={"name": "Paged team",
                                                  "csrf_token": admin_client.csrf_token})
    assert duplicate.status_code == 422
    assert "already exists" in duplicate.get_data(as_text=True)
    assert lead.post("/teams", data={"name": "Not mine",
                                     "csrf_token": lead.csrf_token}).status_code == 403
    stranger_email = people["stranger"].user.email
    added = lead.post(f"/teams/{team['slug']}", data={"email": stranger_email, "role": "member",
                                                      "csrf_token": lead.csrf_token})
    assert added.status_code == 303
    detail = lead.get(f"/teams/{team['slug']}").get_data(as_text=True)
    assert stranger_email in detail
    assert people["member"].client.post(f"/teams/{team['slug']}", data={
        "action": "remove", "user_id": people["stranger"].user.id,
        "csrf_token": people["member"].client.csrf_token}).status_code == 403
    project = api.create_project(cancer_project())
    given = admin_client.post(f"/projects/{project['slug']}/members", data={
        "action": "set_team", "team": team["id"], "role": "viewer",
        "csrf_token": admin_client.csrf_token})
    assert given.status_code == 303
    settings = admin_client.get(f"/projects/{project['slug']}/settings").get_data(as_text=True)
    assert f'data-team="{team["slug"]}"' in settings
    assert people["stranger"].get(f"/projects/{project['id']}").status_code == 200
    removed = admin_client.post(f"/projects/{project['slug']}/members", data={
        "action": "remove_team", "team_id": team["id"], "csrf_token": admin_client.csrf_token})
    assert removed.status_code == 303
    assert people["stranger"].get(f"/projects/{project['id']}").status_code == 404
    gone = admin_client.post(f"/teams/{team['slug']}/delete",
                             data={"csrf_token": admin_client.csrf_token})
    assert gone.status_code == 303 and api.get(f"/teams/{team['id']}").status_code == 404
