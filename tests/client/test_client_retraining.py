"""The client and the ``trainyard`` CLI manage retraining schedules (a refused rule names its
field, a time-zone change moves the next run), and the CLI's start records itself in the
execution's trigger; against the real app on a real threaded server."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.client.test_client_end_to_end import make_token
from tests.factories import cancer_project
from trainyard_client import ApiError, Client
from trainyard_client.cli import main

pytestmark = pytest.mark.slow


def test_schedules_through_the_client_and_the_cli(live_server, tmp_path, monkeypatch, capsys):
    token = make_token(live_server.url)
    client = Client(live_server.url, token)
    project = client.projects.create(**cancer_project("Scheduled"))

    created = client.schedules.create(project, "0 3 * * *", "UTC", description="nightly")
    assert created["enabled"] and datetime.fromisoformat(created["next_run_at"]).hour == 3
    with pytest.raises(ApiError) as refused:
        client.schedules.create(project, "0 3 * * *", "Nowhere/Land")
    assert refused.value.status == 422 and "timezone" in refused.value.details
    moved = client.schedules.update(project, created["id"], timezone="America/New_York")
    assert datetime.fromisoformat(moved["next_run_at"]).hour in (7, 8)  # 03:00 EST/EDT

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("TRAINYARD_URL", live_server.url)
    monkeypatch.setenv("TRAINYARD_TOKEN", token)

    def cli(*argv):
        capsys.readouterr()
        code = main(list(argv))
        return (code, *capsys.readouterr())

    code, out, _ = cli("schedule", "scheduled", "list")
    assert code == 0 and created["id"] in out and "America/New_York" in out
    code, _, err = cli("schedule", "scheduled", "add", "--cron", "0 3 * *")
    assert code == 1 and "cron:" in err
    code, out, _ = cli("schedule", "scheduled", "off", "--id", created["id"])
    assert code == 0 and " off " in out
    code, _, _ = cli("schedule", "scheduled", "delete", "--id", created["id"])
    assert code == 0 and client.schedules.list(project) == []

    code, out, _ = cli("run", "scheduled", "train")
    assert code == 0
    started = client.executions.get(project, out.strip())
    assert started["trigger"]["by"] == "user" and started["trigger"]["via"] == "cli"


def test_challengers_through_the_client_and_the_cli(live_server, monkeypatch, capsys,
                                                   tmp_path):
    from tests.e2e.test_browser_retraining import _seed_challenger

    token = make_token(live_server.url)
    client = Client(live_server.url, token)
    project = client.projects.create(**cancer_project("Challenged"))
    _seed_challenger(live_server.app, project["id"])
    pending = client.models.challengers(project, "pending")
    assert [v["version"] for v in pending] == [2]
    assert pending[0]["challenge"]["source"] == "feedback"

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("TRAINYARD_URL", live_server.url)
    monkeypatch.setenv("TRAINYARD_TOKEN", token)
    capsys.readouterr()
    assert main(["challengers", "challenged", "--pending"]) == 0
    assert "v2  pending  accuracy 0.92 vs v1 0.91 on feedback (40 rows)" in \
        capsys.readouterr().out
    assert main(["challengers", "challenged", "--reject", "2"]) == 0
    assert capsys.readouterr().out.startswith("v2 rejected:")
    with pytest.raises(ApiError) as again:
        client.models.approve(project, 2)
    assert again.value.status == 409
    assert client.projects.get(project["id"])["active_version"] == 1
