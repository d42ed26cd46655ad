"""Issue 23, deliverables 2-4 from the client's side: ``client.catalog`` and ``trainyard search``
against the real app on a real threaded server: publish, search by tag and problem, subscribe,
predict and score with the consumer key, the owner's usage."""

from __future__ import annotations

import pytest

from tests.client.test_client_end_to_end import make_token
from tests.client.test_client_teams import cli  # noqa: F401 (the fixture)
from tests.factories import churn_rows, servable_project
from trainyard_client import ApiError, Client

pytestmark = pytest.mark.slow  # a real server, like the client's end-to-end test


def test_catalog_through_the_client_and_the_cli(app, live_server, cli):  # noqa: F811
    token = make_token(live_server.url)
    platform = app.extensions["trainyard"]
    admin = platform.db.users.list()[0]
    project = servable_project(platform, admin, name="Retail churn", tags=["retail"])
    client = Client(live_server.url, token)
    listing = client.catalog.publish(project.id, "Retail churn", summary="who leaves",
                                     tags=["churn"])
    assert listing["tags"] == ["churn", "retail"]
    found = client.catalog.search("churn", tags=["retail"], problem="classification",
                                  metrics=["f1>=0.9"])
    assert [item["id"] for item in found["items"]] == [listing["id"]]
    with pytest.raises(ApiError) as refused:
        client.catalog.search(metrics=["f1 >>= 1"])
    assert refused.value.status == 422
    assert client.catalog.card(listing)["input_schema"][0]["name"] == "tenure"

    sub = client.catalog.subscribe(listing, per_minute=10)
    consumer = Client(live_server.url, sub["key"])
    rows = churn_rows(10, seed=5)
    inputs = [{k: v for k, v in r.items() if k != "churned"} for r in rows]
    assert consumer.consume_predict(listing, inputs)["rows"] == 10
    assert "accuracy" in consumer.consume_score(listing, rows)["metrics"]
    with pytest.raises(ApiError) as outside:
        consumer.projects.list()
    assert outside.value.status == 401
    usage = client.catalog.consumers(listing)
    assert usage[0]["requests"] == 2 and usage[0]["rows"] == 20

    assert cli("login", "--url", live_server.url, "--token", token)[0] == 0
    code, out, _ = cli("search", "churn", "--tag", "retail", "--problem", "classification")
    assert code == 0 and listing["id"] in out and "Retail churn" in out and "#retail" in out
    code, out, _ = cli("search", "--tag", "no-such-tag")
    assert code == 0 and "No listing matches." in out
    code, out, err = cli("search", "--metric", "f1 0.9")
    assert code != 0 and "metric" in (out + err)
    code, out, _ = cli("subscribe", listing["id"], "--per-minute", "5")
    assert code == 0 and "tyc_" in out
    client.catalog.revoke(listing, usage[0]["id"])
    with pytest.raises(ApiError) as revoked:
        consumer.consume_predict(listing, inputs[:1])
    assert revoked.value.status == 401
