"""The monitoring API: monitor points as the background job stored them, alert rules with their
validation (a wrong threshold is a 422 naming the field, and nothing is stored), incidents, and
the webhook (http(s) only, the secret shown once and encrypted at rest)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import ADMIN
from tests.monitoring_world import insert_records, make_project, records

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def world(app, api):
    platform = app.extensions["trainyard"]
    owner = platform.db.users.get_by_email(ADMIN["email"])
    project = make_project(platform.db, platform.resolver, owner)
    insert_records(platform.db, records(project, 300, start=NOW - timedelta(hours=2),
                                        shift=2.5, labeled=100, accuracy=0.8))
    app.extensions["monitoring"].compute(NOW)
    return platform, project


def test_monitoring_answers_the_stored_points(api, world):
    _, project = world
    body = api.get(f"/projects/{project.id}/monitoring?granularity=window").get_json()
    assert body["granularity"] == "window" and body["active_version"] == 1
    assert body["window_hours"] == 24
    (point,) = body["points"]
    assert point["version"] == 1 and point["volume"]["predictions"] == 300
    assert point["metrics"]["accuracy"] == pytest.approx(0.8)
    assert point["drift"]["features"]["x"]["status"] == "drift"
    days = api.get(f"/projects/{project.id}/monitoring?version=1&from="
                   f"{(NOW - timedelta(days=2)).date()}").get_json()["points"]
    assert [p["granularity"] for p in days] == ["day"] * len(days) and days
    assert api.get(f"/projects/{project.id}/monitoring?version=2").get_json()["points"] == []
    for bad in ("granularity=hour", "version=x", "from=yesterday"):
        answer = api.get(f"/projects/{project.id}/monitoring?{bad}")
        assert answer.status_code == 400, bad


def test_incidents_are_listed_and_read(api, world):
    _, project = world
    listed = api.get(f"/projects/{project.id}/incidents?status=open").get_json()
    assert listed["total"] == 1 and listed["items"][0]["kind"] == "feature_drift"
    one = api.get(f"/projects/{project.id}/incidents/{listed['items'][0]['id']}").get_json()
    assert one["status"] == "open" and one["version"] == 1
    assert api.get(f"/projects/{project.id}/incidents/nope").status_code == 404
    assert api.get(f"/projects/{project.id}/incidents?status=maybe").status_code == 400


def test_rules_have_defaults_and_are_created_changed_and_deleted(api, world):
    _, project = world
    url = f"/projects/{project.id}/alert-rules"
    kinds = [r["kind"] for r in api.get(url).get_json()["items"]]
    assert kinds == ["feature_drift", "metric_drop", "error_rate", "no_traffic"]
    made = api.post(url, json={"kind": "metric_threshold", "metric": "accuracy",
                               "threshold": 0.7, "retrain": True})
    assert made.status_code == 201, made.get_json()
    rule = made.get_json()
    assert rule["retrain"] is True and rule["enabled"] is True
    changed = api.patch(f"{url}/{rule['id']}", json={"threshold": 0.65, "enabled": False})
    assert changed.status_code == 200 and changed.get_json()["threshold"] == 0.65
    assert changed.get_json()["enabled"] is False
    assert api.delete(f"{url}/{rule['id']}").status_code == 204
    assert api.delete(f"{url}/{rule['id']}").status_code == 404
    default = api.get(url).get_json()["items"][0]
    assert api.delete(f"{url}/{default['id']}").status_code == 204
    assert len(api.get(url).get_json()["items"]) == 3  # a deleted default stays deleted


BAD_RULES = [
    ({"kind": "feature_drift", "threshold": 0}, "threshold"),
    ({"kind": "feature_drift", "threshold": 11}, "threshold"),
    ({"kind": "feature_drift"}, "threshold"),
    ({"kind": "error_rate", "threshold": 1.5}, "threshold"),
    ({"kind": "metric_threshold", "metric": "accuracy", "threshold": 2}, "threshold"),
    ({"kind": "metric_drop", "threshold": -0.1}, "threshold"),
    ({"kind": "metric_threshold", "metric": "rmse", "threshold": 1}, "metric"),
    ({"kind": "no_traffic"}, "hours"),
    ({"kind": "no_traffic", "hours": 0}, "hours"),
    ({"kind": "no_traffic", "hours": 1000}, "hours"),
    ({"kind": "feature_drift", "threshold": 0.3, "feature": "nope"}, "feature"),
    ({"kind": "sometimes", "threshold": 0.3}, "kind"),
    ({"threshold": 0.3}, "kind"),
    ({"kind": "feature_drift", "threshold": "high"}, "threshold"),
    ({"kind": "feature_drift", "threshold": 0.3, "retrain": "yes"}, "retrain"),
]


def test_bad_rules_are_refused_naming_the_field_and_nothing_is_stored(api, world):
    platform, project = world
    url = f"/projects/{project.id}/alert-rules"
    before = api.get(url).get_json()["items"]
    for body, field in BAD_RULES:
        answer = api.post(url, json=body)
        assert answer.status_code == 422, (body, answer.get_json())
        assert field in answer.get_json()["error"]["details"], body
    assert api.get(url).get_json()["items"] == before
    changed = api.patch(f"{url}/{before[0]['id']}", json={"threshold": -5})
    assert changed.status_code == 422 and "threshold" in changed.get_json()["error"]["details"]
    assert api.get(url).get_json()["items"] == before


def test_webhook_urls_that_are_not_http_are_refused(api, world):
    _, project = world
    for url in ("ftp://example.com/hook", "file:///etc/passwd", "javascript:alert(1)",
                "http://", "example.com/hook", "http://exa mple.com/",
                "http://example.com:port/"):
        answer = api.client.put(f"/api/v1/projects/{project.id}/webhook", json={"url": url},
                                headers={"X-CSRFToken": api.client.csrf_token})
        assert answer.status_code == 422, url
        assert "url" in answer.get_json()["error"]["details"]
    assert api.get(f"/projects/{project.id}/webhook").status_code == 404


def test_webhook_secret_is_shown_once_and_kept_encrypted(api, world):
    platform, project = world
    url = f"/api/v1/projects/{project.id}/webhook"
    headers = {"X-CSRFToken": api.client.csrf_token}
    made = api.client.put(url, json={"url": "https://hooks.example.com/t"}, headers=headers)
    assert made.status_code == 200
    secret = made.get_json()["secret"]
    assert secret.startswith("whsec_")
    stored = json.dumps(platform.db.store.collection("webhooks").find())
    assert secret not in stored
    kept = api.client.put(url, json={"url": "https://hooks.example.com/u"}, headers=headers)
    assert "secret" not in kept.get_json() and kept.get_json()["url"].endswith("/u")
    assert platform.box.decrypt(platform.db.webhooks.get(project.id).secret) == \
        {"secret": secret}
    assert "secret" not in api.get(f"/projects/{project.id}/webhook").get_json()
    rotated = api.client.put(url, json={"url": "https://hooks.example.com/u",
                                        "new_secret": True}, headers=headers).get_json()
    assert rotated["secret"] != secret
    assert api.get(f"/projects/{project.id}/webhook/deliveries").get_json()["total"] == 0
    assert api.delete(f"/projects/{project.id}/webhook").status_code == 204
    assert api.get(f"/projects/{project.id}/webhook").status_code == 404


def test_monitoring_page_and_project_page_show_charts_and_incidents(api, world):
    _, project = world
    html = api.client.get(f"/projects/{project.slug}/monitoring?granularity=window")
    assert html.status_code == 200
    text = html.get_data(as_text=True)
    for chart in ("volume", "latency", "errors", "metric", "drift"):
        assert f'data-chart="{chart}"' in text
    assert 'data-status="open"' in text and "Drift of x" in text
    assert 'data-feature="x"' in text and 'id="alert-rules"' in text
    detail = api.client.get(f"/projects/{project.slug}").get_data(as_text=True)
    assert 'id="open-incidents"' in detail and "Drift of x" in detail
