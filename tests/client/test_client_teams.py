"""Issue 23, deliverable 0: the client's ``teams`` part and the team commands of the CLI against
the real app on a real threaded server."""

from __future__ import annotations

import pytest
from werkzeug.security import generate_password_hash

from entity.user import User
from tests.client.test_client_end_to_end import make_token
from tests.factories import cancer_project
from trainyard_client import ApiError, Client
from trainyard_client.cli import main

pytestmark = pytest.mark.slow  # a real server, like the client's end-to-end test


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("TRAINYARD_URL", raising=False)
    monkeypatch.delenv("TRAINYARD_TOKEN", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_teams_through_the_client_and_the_cli(app, live_server, cli):
    token = make_token(live_server.url)
    db = app.extensions["trainyard"].db
    ada = db.users.add(User(email="ada@example.com", name="Ada",
                            password_hash=generate_password_hash("x" * 16)))
    client = Client(live_server.url, token)
    team = client.teams.create("Risk models", "credit risk")
    assert team["slug"] == "risk-models"
    assert client.teams.add_member("risk-models", ada.email, "lead")["role"] == "lead"
    assert [t["name"] for t in client.teams.list()] == ["Risk models"]
    project = client.projects.create(**cancer_project())
    assert client.teams.share_project(project, "risk-models", "editor")["role"] == "editor"
    assert client.projects.get(project["id"])["teams"] == {team["id"]: "editor"}
    client.teams.unshare_project(project, "risk-models")
    assert client.projects.get(project["id"])["teams"] == {}

    assert cli("login", "--url", live_server.url, "--token", token)[0] == 0
    code, out, _ = cli("teams")
    assert code == 0 and "risk-models  1 members  Risk models" in out
    code, out, _ = cli("team-create", "Fraud")
    assert code == 0 and "Created team fraud" in out
    code, out, _ = cli("team-add", "fraud", ada.email)
    assert code == 0 and f"{ada.email} is member of fraud" in out
    code, out, _ = cli("team", "fraud")
    assert code == 0 and f"member  {ada.email}" in out
    code, out, _ = cli("project-team", project["slug"], "fraud", "--role", "viewer")
    assert code == 0 and "Every member of fraud is viewer" in out
    code, out, _ = cli("project-team", project["slug"], "fraud", "--remove")
    assert code == 0 and "no longer holds a role" in out
    code, out, _ = cli("team-remove", "fraud", ada.email)
    assert code == 0 and client.teams.get("fraud")["members"] == []
    code, _, err = cli("team-add", "fraud", "nobody@example.com")
    assert code == 1 and "No account has this e-mail address" in err
    client.teams.delete("fraud")
    with pytest.raises(ApiError) as refused:
        client.teams.get("fraud")
    assert refused.value.status == 404
