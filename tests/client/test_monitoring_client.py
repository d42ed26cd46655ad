"""The client's ``monitoring`` part and the monitoring commands of the CLI against the real app
on a real threaded server: monitors, incidents, alert rules (a bad threshold names its field),
and the webhook with its secret shown once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.client.test_client_end_to_end import make_token
from tests.conftest import ADMIN
from tests.monitoring_world import insert_records, make_project, records
from trainyard_client import ApiError, Client
from trainyard_client.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_client_and_cli_read_monitors_and_manage_alerts(app, live_server, cli, monkeypatch):
    token = make_token(live_server.url)
    monkeypatch.setenv("TRAINYARD_URL", live_server.url)
    monkeypatch.setenv("TRAINYARD_TOKEN", token)
    platform = app.extensions["trainyard"]
    project = make_project(platform.db, platform.resolver,
                           platform.db.users.get_by_email(ADMIN["email"]))
    now = datetime.now(UTC)
    insert_records(platform.db, records(project, 200, start=now - timedelta(hours=1),
                                        shift=3, labeled=50, accuracy=1.0))
    app.extensions["monitoring"].compute(now)
    client = Client(live_server.url, token)

    window = client.monitoring.get(project.id, granularity="window")
    assert window["points"][0]["volume"]["predictions"] == 200
    code, out, _ = cli("monitoring", project.slug, "--window")
    assert code == 0 and " 200 " in out and "x" in out.splitlines()[1]
    code, out, _ = cli("incidents", project.slug, "--open")
    assert code == 0 and "Drift of x" in out

    rule = client.monitoring.add_rule(project.id, "prediction_drift", threshold=0.3)
    assert rule["kind"] == "prediction_drift"
    with pytest.raises(ApiError) as refused:
        client.monitoring.add_rule(project.id, "error_rate", threshold=3)
    assert refused.value.status == 422 and "threshold" in refused.value.details
    code, _, err = cli("alert-add", project.slug, "feature_drift", "--threshold", "0")
    assert code == 1 and "threshold" in err
    code, out, _ = cli("alert-add", project.slug, "no_traffic", "--hours", "6", "--retrain")
    assert code == 0 and "no_traffic" in out and "retrain" in out
    code, out, _ = cli("alerts", project.slug)
    assert code == 0 and out.count("\n") == 6  # four defaults and the two added
    code, out, _ = cli("alert-remove", project.slug, rule["id"])
    assert code == 0 and len(client.monitoring.rules(project.id)) == 5

    code, out, err = cli("webhook", project.slug, "--url", "ftp://example.com/x")
    assert code == 1 and "url" in err
    code, out, _ = cli("webhook", project.slug, "--url", "https://hooks.example.com/x")
    assert code == 0 and "Signing secret (shown only now): whsec_" in out
    code, out, _ = cli("webhook", project.slug, "--deliveries")
    assert code == 0 and "whsec_" not in out and "https://hooks.example.com/x" in out
    assert client.monitoring.incidents(project.id, "closed") == []
