"""The model catalog through the API: tags, publishing with each visibility, cards, search with
every filter, and the consumer journey (team A publishes; team B finds the listing by tag and
metric range, subscribes, predicts and scores, hits its quota, A sees B's usage and revokes,
B is refused), on an app with real models served by the model server (no training run)."""

from __future__ import annotations

import itertools

import pytest

from app import create_app
from entity.security import ApiToken
from entity.team import Team, TeamMembership
from entity.user import User
from tests.factories import churn_rows, servable_project
from tests.thread_layer.test_celery import redis_url  # noqa: F401 (the fixture)

XSS = ("# Churn model\n\n<script>alert(1)</script>\n\n"
       "[click](javascript:alert(2)) [data](data:text/html;base64,PHNjcmlwdD4=)\n\n"
       '<img src=x onerror="alert(3)"> <a href="http://ok.example" onclick="alert(4)">x</a>\n\n'
       "![pixel](data:image/png;base64,iVBORw0KGgo=) **bold** [safe](https://example.com)")


def tags_in(html: str) -> list[tuple[str, list]]:
    """Every element of ``html`` with its attributes, as a browser's parser reads them."""
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collect().feed(html)
    return found


class Caller:
    """An API caller with a bearer token (or none: anonymous)."""

    def __init__(self, client, token: str | None):
        self.client, self.token = client, token

    def _headers(self, extra=None):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    def get(self, url, **kwargs):
        return self.client.get(f"/api/v1{url}", headers=self._headers(), **kwargs)

    def post(self, url, json=None, **kwargs):
        return self.client.post(f"/api/v1{url}", json=json, headers=self._headers(), **kwargs)

    def patch(self, url, json=None):
        return self.client.patch(f"/api/v1{url}", json=json, headers=self._headers())

    def put(self, url, json=None):
        return self.client.put(f"/api/v1{url}", json=json, headers=self._headers())

    def delete(self, url):
        return self.client.delete(f"/api/v1{url}", headers=self._headers())


@pytest.fixture(scope="module")
def catalog_app(tmp_path_factory):
    """One app for the module (each test makes its own people and projects, and its
    listings are deleted after it)."""
    tmp = tmp_path_factory.mktemp("catalog")
    application = create_app({"TESTING": True, "DATA_DIR": str(tmp / "data"),
                              "INSTANCE_DIR": str(tmp / "instance"), "LOG_LEVEL": "WARNING",
                              "PUBLIC_URL": "http://trainyard.test"}, start_runner=False)
    yield application
    application.extensions["trainyard"].runner.shutdown()
    application.extensions["trainyard"].model_server.close()
    application.extensions["trainyard"].db.close()


_run = itertools.count(1)


@pytest.fixture
def people(catalog_app):
    """Alice (team A, owner of two projects), Bob (team B), Carol (no team), and tokens."""
    app = catalog_app
    run = next(_run)
    platform = app.extensions["trainyard"]
    db = platform.db
    team_a = Team(name=f"Team A{run}", slug=f"team-a{run}")
    team_b = Team(name=f"Team B{run}", slug=f"team-b{run}")
    db.teams.add(team_a)
    db.teams.add(team_b)
    users = {}
    for name, team in (("alice", team_a), ("bob", team_b), ("carol", None)):
        user = db.users.add(User(email=f"{name}{run}@example.com", name=name.title(),
                                 password_hash="!"))
        if team:
            db.teams.put_member(TeamMembership(team_id=team.id, user_id=user.id))
        token, clear = ApiToken.issue(user.id, "t", "write")
        db.api_tokens.add(token)
        users[name] = (db.users.get(user.id), Caller(app.test_client(), clear))
    alice = users["alice"][0]
    churn = servable_project(platform, alice, name=f"Retail churn {run}", tags=["retail"])
    other = servable_project(platform, alice, name=f"Telecom churn {run}",
                             metrics={"accuracy": 0.7, "f1_macro": 0.6})
    yield {"db": db, "teams": (team_a, team_b), "churn": churn, "other": other,
           "alice": users["alice"][1], "bob": users["bob"][1], "carol": users["carol"][1],
           "anonymous": Caller(app.test_client(), None), "users": users, "run": run}
    for collection in ("catalog_listings", "catalog_subscriptions", "consumer_calls"):
        db.store.collection(collection).delete_many({})


def publish(caller, project, **fields):
    body = {"title": project.name.rsplit(" ", 1)[0], "summary": "Who leaves next month",
            "readme": XSS,
            "visibility": "organisation", "tags": ["Customer  Churn"], **fields}
    return caller.post(f"/projects/{project.id}/listings", json=body)


# -- tags --------------------------------------------------------------------------------------

def test_tags_are_normalised_and_bad_ones_refused(people):
    alice, churn = people["alice"], people["churn"]
    answer = alice.put(f"/projects/{churn.id}/tags", json={"tags": ["  Retail ", "Big  Data",
                                                                     "retail"]})
    assert answer.status_code == 200 and answer.get_json()["tags"] == ["retail", "big-data"]
    for bad in (["<b>"], [""], ["x" * 41], [f"t{i}" for i in range(21)], "retail", [3]):
        refused = alice.put(f"/projects/{churn.id}/tags", json={"tags": bad})
        assert refused.status_code in (400, 422), bad
        assert "tags" in str(refused.get_json()["error"]), bad
    assert people["db"].projects.get(churn.id).settings["tags"] == ["retail", "big-data"]
    version = alice.put(f"/projects/{churn.id}/models/1/tags", json={"tags": ["Gold"]})
    assert version.get_json()["tags"] == ["gold"]
    assert people["bob"].put(f"/projects/{churn.id}/tags",
                             json={"tags": ["x"]}).status_code == 404


# -- publishing and the card -------------------------------------------------------------------

def test_the_card_is_rendered_safely_with_its_generated_sections(people):
    alice, bob = people["alice"], people["bob"]
    created = publish(alice, people["churn"])
    assert created.status_code == 201, created.get_json()
    listing = created.get_json()
    assert listing["tags"] == ["customer-churn", "retail"] and listing["version"] == 1
    assert listing["metrics"]["f1"] == pytest.approx(0.94)
    card = bob.get(f"/catalog/{listing['id']}/card").get_json()
    html = card["readme_html"]
    tags = tags_in(html)
    assert {name for name, _ in tags} <= {"h1", "p", "a", "img", "strong"}, tags
    for name, attributes in tags:
        for attribute, value in attributes:
            assert not attribute.startswith("on"), (name, attribute)
            assert not (value or "").lower().startswith(("javascript", "data")), (name, value)
    assert "&lt;script&gt;" in html  # HTML in the Markdown is shown as text
    assert "<strong>bold</strong>" in html and 'href="https://example.com"' in html
    assert card["problem_type"] == "classification"
    assert card["input_schema"] == [{"name": "tenure", "type": "float"},
                                    {"name": "spend", "type": "float"}]
    assert "Authorization: Bearer" in card["example_request"]["curl"]
    assert "consume_predict" in card["example_request"]["python"]
    assert card["training_data"]["rows"] == 200
    assert card["training_data"]["class_balance"] == {"yes": 100, "no": 100}
    assert card["training_data"]["period"]["from"] == "2026-01-01"
    assert card["metrics"]["accuracy"] == 0.95 and card["hyperparameters"] == {"C": 1.0}
    assert card["drift"]["status"] == "unknown"
    assert card["owner"] == {"name": "Alice", "teams": [people["teams"][0].name]}
    assert [v["version"] for v in card["version_history"]] == [1]
    assert "project_slug" not in card["listing"]  # only the owner sees the project


def test_publishing_refuses_bad_fields_and_stores_nothing(people):
    alice, churn, db = people["alice"], people["churn"], people["db"]
    cases = [({"title": ""}, "title"), ({"visibility": "everyone"}, "visibility"),
             ({"visibility": "teams", "teams": []}, "teams"),
             ({"visibility": "teams", "teams": ["no-such-team"]}, "teams"),
             ({"pinned_version": 9}, "pinned_version"), ({"tags": ["a/b"]}, "tags"),
             ({"readme": "x" * 50_001}, "readme")]
    for fields, field in cases:
        answer = publish(alice, churn, **fields)
        assert answer.status_code == 422, fields
        assert field in answer.get_json()["error"]["details"], answer.get_json()
    assert db.listings.for_project(churn.id) == []
    assert publish(people["bob"], churn).status_code == 404  # not his project


# -- search ------------------------------------------------------------------------------------

@pytest.fixture
def published(people):
    alice = people["alice"]
    team_b = people["teams"][1]
    churn = publish(alice, people["churn"], visibility="teams", teams=[team_b.slug]).get_json()
    other = publish(alice, people["other"], title="Telecom churn", readme="phone plans",
                    tags=["telecom"], visibility="public").get_json()
    return {**people, "listing": churn, "public": other}


def titles(answer) -> list[str]:
    assert answer.status_code == 200, answer.get_json()
    return [item["title"] for item in answer.get_json()["items"]]


def test_search_filters_by_everything_and_sees_only_what_the_caller_may(published):
    bob, carol, anonymous = published["bob"], published["carol"], published["anonymous"]
    assert sorted(titles(bob.get("/catalog"))) == ["Retail churn", "Telecom churn"]
    assert titles(carol.get("/catalog")) == ["Telecom churn"]  # not in team B
    assert titles(anonymous.get("/catalog")) == ["Telecom churn"]  # public
    assert titles(bob.get("/catalog?q=churn&tag=retail")) == ["Retail churn"]
    assert titles(bob.get("/catalog?q=phone")) == ["Telecom churn"]  # the readme
    assert sorted(titles(bob.get("/catalog?q=spend"))) == ["Retail churn", "Telecom churn"]
    assert titles(bob.get("/catalog", query_string={"metric": "f1>=0.9"})) == ["Retail churn"]
    assert titles(bob.get("/catalog", query_string={"metric": ["f1 > 0.5", "accuracy<0.8"]})) \
        == ["Telecom churn"]
    assert titles(bob.get("/catalog?problem=classification&sort=f1")) == \
        ["Retail churn", "Telecom churn"]
    owner = f"alice{published['run']}@example.com"
    assert sorted(titles(bob.get(f"/catalog?column=Tenure&owner={owner}"))) == \
        ["Retail churn", "Telecom churn"]
    team = published["teams"][0].slug
    assert titles(bob.get(f"/catalog?team={team}&fresh_days=1&per_page=1&sort=title")) == \
        ["Retail churn"]
    page = bob.get("/catalog?sort=title&per_page=1&page=2").get_json()
    assert page["total"] == 2 and [i["title"] for i in page["items"]] == ["Telecom churn"]
    for empty in ("tag=unknown-tag", "owner=nobody@example.com", "team=nope", "column=zzz",
                  "q=nothing+like+it", "problem=regression"):
        assert titles(bob.get(f"/catalog?{empty}")) == [], empty


@pytest.mark.parametrize("query, field", [
    ({"metric": "f1 >>= 0.9"}, "metric"), ({"metric": "f1 0.9"}, "metric"),
    ({"metric": ">= 0.9"}, "metric"), ({"metric": "f1 >= high"}, "metric"),
    ({"problem": "clustering"}, "problem"), ({"sort": "a b"}, "sort"),
    ({"fresh_days": "0"}, "fresh_days"), ({"fresh_days": "soon"}, "fresh_days"),
    ({"tag": "<script>"}, "tags"), ({"q": "x" * 501}, "q")])
def test_malformed_searches_are_422_naming_the_problem(published, query, field):
    answer = published["bob"].get("/catalog", query_string=query)
    assert answer.status_code == 422, answer.get_json()
    assert field in answer.get_json()["error"]["details"]


# -- the consumer journey ----------------------------------------------------------------------

def test_consumer_journey(published):
    alice, bob, db = published["alice"], published["bob"], published["db"]
    # B finds the listing by tag and metric range, and subscribes
    found = bob.get("/catalog", query_string={"tag": "retail", "metric": "f1>=0.9"}).get_json()
    assert [item["id"] for item in found["items"]] == [published["listing"]["id"]]
    listing_id = found["items"][0]["id"]
    refused = bob.post(f"/catalog/{listing_id}/subscriptions", json={"per_minute": 0})
    assert refused.status_code == 422 and "per_minute" in refused.get_json()["error"]["details"]
    assert db.subscriptions.for_listing(listing_id) == []
    sub = bob.post(f"/catalog/{listing_id}/subscriptions",
                   json={"per_minute": 4, "per_day": 100})
    assert sub.status_code == 201, sub.get_json()
    key = sub.get_json()["key"]
    assert key.startswith("tyc_")
    consumer = Caller(bob.client, key)
    # B predicts and scores
    rows = churn_rows(20, seed=3)
    inputs = [{k: v for k, v in r.items() if k != "churned"} for r in rows]
    predicted = consumer.post(f"/consume/{listing_id}/predict", json={"records": inputs[:3]})
    assert predicted.status_code == 200, predicted.get_json()
    assert predicted.get_json()["rows"] == 3 and predicted.get_json()["model_version"] == 1
    scored = consumer.post(f"/consume/{listing_id}/score", json={"records": rows})
    assert scored.status_code == 200, scored.get_json()
    metrics = scored.get_json()["metrics"]
    assert metrics["accuracy"] >= 0.8 and "f1" in metrics and "roc_auc" in metrics
    unlabeled = consumer.post(f"/consume/{listing_id}/score", json={"records": inputs[:2]})
    assert unlabeled.status_code == 422
    # B hits the quota of 4 a minute (the card counts too): 429 with Retry-After
    assert consumer.get(f"/consume/{listing_id}").status_code == 200
    answer = consumer.post(f"/consume/{listing_id}/predict", json={"records": inputs[:1]})
    assert answer.status_code == 429, answer.get_json()
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.get_json()["error"]["code"] == "too_many_requests"
    # A sees B's usage: requests, rows, errors, latency, last use
    usage = alice.get(f"/catalog/{listing_id}/consumers").get_json()["consumers"]
    assert len(usage) == 1
    assert usage[0]["consumer"]["email"] == f"bob{published['run']}@example.com"
    assert (usage[0]["requests"], usage[0]["rows"], usage[0]["errors"]) == (3, 23, 1)
    assert usage[0]["latency_ms"]["p95"] is not None and usage[0]["last_used_at"]
    assert bob.get(f"/catalog/{listing_id}/consumers").status_code == 403
    # A raises the quota, then revokes: B is refused
    raised = alice.patch(f"/catalog/{listing_id}/consumers/{usage[0]['id']}",
                         json={"per_minute": 10_001})
    assert raised.status_code == 422
    assert alice.delete(f"/catalog/{listing_id}/consumers/{usage[0]['id']}").status_code == 204
    after = consumer.post(f"/consume/{listing_id}/predict", json={"records": inputs[:1]})
    assert after.status_code == 401


def test_a_consumer_key_reaches_nothing_but_its_own_listing(published):
    bob, alice = published["bob"], published["alice"]
    listing_id, public_id = published["listing"]["id"], published["public"]["id"]
    key = bob.post(f"/catalog/{listing_id}/subscriptions", json={}).get_json()["key"]
    consumer = Caller(bob.client, key)
    project = published["churn"]
    for url in ("/session", "/projects", f"/projects/{project.id}",
                f"/projects/{project.id}/files", f"/projects/{project.id}/executions",
                f"/projects/{project.id}/models", "/catalog", f"/catalog/{listing_id}",
                f"/catalog/{listing_id}/card", "/subscriptions", "/tokens"):
        assert consumer.get(url).status_code == 401, url
    assert consumer.post(f"/projects/{project.id}/predict",
                         json={"records": []}).status_code == 401
    assert consumer.post(f"/consume/{public_id}/predict", json={"records": []}).status_code \
        == 403  # another listing's consumer route
    assert Caller(bob.client, key[:-2] + "xx").get(f"/consume/{listing_id}").status_code == 401
    assert bob.get(f"/consume/{listing_id}").status_code == 401  # a login is no consumer key
    # unpublishing stops every key at once; publishing again lets it in again
    assert alice.patch(f"/catalog/{listing_id}", json={"status": "unpublished"}).status_code \
        == 200
    assert consumer.get(f"/consume/{listing_id}").status_code == 401
    assert bob.get(f"/catalog/{listing_id}").status_code == 404
    alice.patch(f"/catalog/{listing_id}", json={"status": "published"})
    assert consumer.get(f"/consume/{listing_id}").status_code == 200
    # deleting the listing too, and its subscriptions go with it
    assert alice.delete(f"/catalog/{listing_id}").status_code == 204
    assert consumer.get(f"/consume/{listing_id}").status_code == 401
    assert published["db"].subscriptions.for_listing(listing_id) == []


def test_leaving_the_team_stops_the_key(published):
    bob, db = published["bob"], published["db"]
    listing_id = published["listing"]["id"]
    key = bob.post(f"/catalog/{listing_id}/subscriptions", json={}).get_json()["key"]
    consumer = Caller(bob.client, key)
    assert consumer.get(f"/consume/{listing_id}").status_code == 200
    bob_user = published["users"]["bob"][0]
    db.teams.remove_member(published["teams"][1].id, bob_user.id)
    assert consumer.get(f"/consume/{listing_id}").status_code == 401


def test_a_pinned_listing_answers_with_its_version_and_follows_otherwise(published):
    alice, db = published["alice"], published["db"]
    churn = published["churn"]
    listing_id = published["listing"]["id"]
    assert alice.patch(f"/catalog/{listing_id}", json={"pinned_version": 1}).get_json()[
        "pinned_version"] == 1
    assert alice.delete(f"/projects/{churn.id}/models/1").status_code == 409  # active + pinned
    unpinned = alice.patch(f"/catalog/{listing_id}", json={"pinned_version": None}).get_json()
    assert unpinned["pinned_version"] is None and unpinned["version"] == 1
    assert db.listings.get(listing_id).version == 1


def test_template_listing_creates_a_project_without_the_creators_data(published):
    alice, bob, db = published["alice"], published["bob"], published["db"]
    listing_id = published["listing"]["id"]
    refused = bob.post(f"/catalog/{listing_id}/template", json={"name": "Bob churn"})
    assert refused.status_code == 409  # not a template
    alice.patch(f"/catalog/{listing_id}", json={"template": True})
    created = bob.post(f"/catalog/{listing_id}/template",
                       json={"name": f"Bob churn {published['run']}"})
    assert created.status_code == 201, created.get_json()
    project = db.projects.get(created.get_json()["id"])
    assert project.owner_id == published["users"]["bob"][0].id
    assert project.schema.to_dict() == published["churn"].schema.to_dict()
    assert project.active_version is None and db.model_versions.list_for_project(project.id) \
        == []
    files = bob.get(f"/projects/{project.id}/files?path=training_batch_files/").get_json()
    assert files["files"] == [] if "files" in files else True
    assert bob.get(f"/projects/{published['churn'].id}").status_code == 404


def test_the_consumer_openapi_document_holds_the_consumer_routes_only(catalog_app):
    document = catalog_app.test_client().get("/api/v1/openapi-consumer.json").get_json()
    paths = sorted(document["paths"])
    assert paths == ["/consume/{listing_id}", "/consume/{listing_id}/predict",
                     "/consume/{listing_id}/score"]
    operation = document["paths"]["/consume/{listing_id}/predict"]["post"]
    assert operation["security"] == [{"consumerKey": []}]
    assert "429" in operation["responses"]


def test_a_consumer_key_is_refused_by_every_route_of_the_app_but_its_own(published, catalog_app):
    """Each (method, rule) of the URL map, its arguments filled with real ids, called with a
    consumer key: 401 everywhere except the key's own consumer routes (and the routes anyone
    may call without logging in, which the key does not make any wider)."""
    import re

    from app import CONSUMER_ENDPOINTS, PUBLIC_ENDPOINTS

    bob, project = published["bob"], published["churn"]
    listing_id = published["listing"]["id"]
    key = bob.post(f"/catalog/{listing_id}/subscriptions", json={}).get_json()["key"]
    values = {"project_id": project.id, "slug": project.slug, "listing_id": listing_id,
              "version": "1", "execution_id": "x", "subscription_id": "x", "token_id": "x",
              "user_id": "x", "connection_id": "x", "team_id": "x", "slug_or_id": "x",
              "secret": "x", "token": "x", "filename": "js/csrf.js", "kind": "train"}
    client = catalog_app.test_client()
    checked = 0
    for rule in catalog_app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            url = re.sub(r"<(?:[a-z_]+(?:\([^)]*\))?:)?([a-z_]+)>",
                         lambda m: values.get(m.group(1), "x"), rule.rule)
            answer = client.open(url, method=method, json={},
                                 headers={"Authorization": f"Bearer {key}"})
            checked += 1
            if rule.endpoint in CONSUMER_ENDPOINTS:
                assert answer.status_code != 401, (method, url)
            elif rule.endpoint in PUBLIC_ENDPOINTS or rule.endpoint == "static":
                assert answer.status_code == 401 or answer.status_code < 500, (method, url)
            else:
                assert answer.status_code == 401, (method, url, answer.status_code)
    assert checked > 100


@pytest.mark.slow  # a real server
def test_socketio_refuses_a_consumer_key(published, catalog_app):
    """A real Socket.IO client on a real server: the key in the auth payload is refused at
    connect, so no project room, log line or execution reaches it."""
    import socketio

    from tests.conftest import LiveServer

    bob = published["bob"]
    listing_id = published["listing"]["id"]
    key = bob.post(f"/catalog/{listing_id}/subscriptions", json={}).get_json()["key"]
    server = LiveServer(catalog_app).start()
    try:
        sio = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            sio.connect(server.url, auth={"token": key}, transports=["websocket"],
                        wait_timeout=5)
        sio.disconnect()
    finally:
        server.stop()


def test_quotas_are_counted_in_redis_when_it_is_configured(tmp_path, redis_url):  # noqa: F811
    """A real redis-server (started by the fixture on a free port): with RATELIMIT_STORAGE_URI
    the consumer's counts live in Redis (what several web processes share), and the quota
    holds there."""
    import redis

    from tests.factories import servable_project as make

    application = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"),
                              "INSTANCE_DIR": str(tmp_path / "instance"),
                              "LOG_LEVEL": "WARNING", "RATELIMIT_STORAGE_URI": f"{redis_url}/3"},
                             start_runner=False)
    try:
        platform = application.extensions["trainyard"]
        owner = platform.db.users.add(User(email="o@example.com", name="O", password_hash="!"))
        token, clear = ApiToken.issue(owner.id, "t", "write")
        platform.db.api_tokens.add(token)
        caller = Caller(application.test_client(), clear)
        project = make(platform, owner, name="Redis churn")
        listing = caller.post(f"/projects/{project.id}/listings",
                              json={"title": "Redis churn"}).get_json()
        key = caller.post(f"/catalog/{listing['id']}/subscriptions",
                          json={"per_minute": 2}).get_json()["key"]
        consumer = Caller(application.test_client(), key)
        assert [consumer.get(f"/consume/{listing['id']}").status_code for _ in range(3)] == \
            [200, 200, 429]
        stored = redis.Redis.from_url(f"{redis_url}/3").keys("*")
        assert any(b"consumer" in name for name in stored), stored
    finally:
        # the limiter is one per process (see controllers.quotas): back to memory storage
        # before the redis-server stops, for the apps of later tests in this process
        from controllers.quotas import limiter

        application.config["RATELIMIT_STORAGE_URI"] = "memory://"
        limiter.init_app(application)
        application.extensions["trainyard"].runner.shutdown()
        application.extensions["trainyard"].db.close()
