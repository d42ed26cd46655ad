"""A hypothesis-driven body fuzzer over every state-changing route of the API (issue 21,
acceptance "Fuzzing"): arbitrary JSON values as the body (nested, of the wrong types, huge
strings, unicode with lone surrogates, numbers at and past the limits, deep nesting, bytes that
are not JSON or not UTF-8), sent by an admin, an editor and an anonymous caller. The app must
never answer 5xx, and every 4xx must carry the error shape ``{"error": {"code", "message"}}``.

The routes are those of the app's URL map under the API blueprint that take a body (POST, PUT,
PATCH, DELETE); the OpenAPI document adds each route's body fields, so that objects with the
right keys and wrong values are generated too, and every route the document says takes JSON
must be among them. Each (route, caller) pair gets a fresh project, user, token and storage
connection, so that a destructive call (DELETE the project, deactivate the user) only spoils
its own examples.

Bounded for CI: ``FUZZ_EXAMPLES`` examples per route and caller (default 12; anonymous calls of
routes that need a login get a fifth of them), derandomized so that every run tries the same
bodies. ``FUZZ_EXAMPLES=500 pytest tests/security/test_body_fuzz.py`` searches longer.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import CONSUMER_ENDPOINTS, PUBLIC_ENDPOINTS
from controllers import api
from controllers.openapi import build_document
from entity.catalog import Listing, Subscription, refresh_listings
from entity.monitoring import AlertRule
from entity.storage_connection import StorageConnection
from tests.security.conftest import unique

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CALLERS = ("admin", "editor", "anonymous")


def _api_routes(app) -> list[tuple[str, str, str]]:
    """(method, rule, endpoint) of every API route that takes a body."""
    return sorted((method, rule.rule, rule.endpoint) for rule in app.url_map.iter_rules()
                  if rule.endpoint.startswith("api.")
                  for method in rule.methods & BODY_METHODS)


def _document_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.removeprefix("/api/v1"))


def _resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _body_fields(document: dict, method: str, rule: str) -> list[str]:
    """The names of the fields the document gives the route's JSON body (none without one)."""
    operation = document["paths"].get(_document_path(rule), {}).get(method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return []
    schema = _resolve(document, content["application/json"].get("schema", {}))
    fields = set(schema.get("properties", {}))
    for part in schema.get("oneOf", []) + schema.get("anyOf", []) + schema.get("allOf", []):
        fields |= set(_resolve(document, part).get("properties", {}))
    return sorted(fields)


# -- the bodies --------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31, -(2**31) - 1, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),  # json.dumps writes NaN and Infinity
    st.sampled_from([1e308, -1e308, 5e-324, -0.0]))
TEXTS = st.one_of(
    st.text(max_size=40),  # any code point, lone surrogates included (escaped by json.dumps)
    st.sampled_from(["", " ", "\x00", "\r\nBcc: x@example.com", "\u202egpj.exe", "../../etc",
                     "..\\x.csv", "a{99999999999}", "^(a+)+$", "classification", "admin",
                     "editor", "write", "local", "training_batch_files/", "docs/"]),
    st.integers(min_value=1, max_value=4).map(lambda n: "é" * 10 ** (n + 1)))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXTS)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXTS, inner, max_size=4)), max_leaves=12)

#: bodies no encoder of a JSON value writes: too deep, too long, not JSON, not UTF-8
RAW = st.one_of(
    st.sampled_from([100, 1000, 5000, 100_000]).flatmap(lambda n: st.sampled_from([
        b"[" * n + b"]" * n, b'{"a":' * n + b"1" + b"}" * n, b"[" * n])),
    st.sampled_from([b"", b" ", b"null", b"{", b"{not json", b'{"a": 1,}', b"NaN", b"-Infinity",
                     b"9" * 5000, b'{"name": ' + b"9" * 5000 + b"}", b"1e999999", b"\xff\xfe",
                     b'{"name": "\xff\xfe"}', b'{"name": "\\ud800"}', b"\xef\xbb\xbf{}",
                     b'{"name": "a", "name": 1}', b'"' + b"a" * (3 * 1024 * 1024) + b'"']))


def _bodies(fields: list[str]):
    """Any JSON value; objects with the route's own fields and any values; raw bytes."""
    keyed = st.dictionaries(st.sampled_from(fields), VALUES, min_size=1) if fields else VALUES
    encoded = st.one_of(VALUES, keyed).flatmap(lambda value: st.sampled_from([
        json.dumps(value).encode(),  # lone surrogates as \\udxxx escapes
        json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")]))
    return st.one_of(encoded, RAW)


# -- the calls ---------------------------------------------------------------------------

def _path_values(world, caller: str) -> dict[str, str]:
    """Fresh objects for the path parameters of one (route, caller) pair."""
    target = world.target()
    folder = Path(world.app.config["DATA_DIR"]) / unique("fuzz-disk")
    folder.mkdir(parents=True)
    connection = world.db.storage_connections.add(StorageConnection(
        name=unique("Fuzz disk "), kind="local", settings={"directory": str(folder)},
        secrets=world.services.box.encrypt({})))
    owner = world.user("admin" if caller == "anonymous" else caller)
    token, _ = world.issue_token(owner)
    listing = world.db.listings.add(Listing(project_id=target.id,
                                            owner_id=target.project.owner_id,
                                            title=unique("Fuzzed "), template=True))
    refresh_listings(world.db, target.id)
    subscription, key = Subscription.issue(listing.id, owner.id, 10_000, 1_000_000)
    world.db.subscriptions.add(subscription)
    values = {"project_id": target.id, "execution_id": target.predict_id, "version": "1",
              "user_id": world.add_user("fuzzed", password=None).id, "token_id": token.id,
              "connection_id": connection.id,
              "team_id": world.new_team(lead=world.user("teammate")).id,
              "listing_id": listing.id, "subscription_id": subscription.id,
              "consumer_key": key}
    values.update(_retraining_values(world, target))
    values["rule_id"] = world.db.alert_rules.add(AlertRule(
        project_id=target.id, kind="feature_drift", threshold=0.3)).id
    return values


def _retraining_values(world, target) -> dict[str, str]:
    """A fresh retraining schedule of the target project."""
    from entity.base import utcnow
    from entity.retraining_schedule import RetrainingSchedule

    schedule = RetrainingSchedule(project_id=target.id, cron="0 3 * * *")
    schedule.reset_slots(utcnow())
    return {"schedule_id": world.db.retraining_schedules.add(schedule).id}


def _url(rule: str, values: dict[str, str]) -> str:
    url = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: values[m.group(1)], rule)
    return url + "?path=docs/fuzz.json"  # the routes that take a path get a real one


def _check(response, what: str) -> None:
    assert response.status_code < 500, f"{what} -> {response.status_code}: " \
        f"{response.get_data(as_text=True)[:500]}"
    if response.status_code >= 400:
        assert response.is_json, f"{what} -> {response.status_code} is not JSON"
        error = response.get_json().get("error")
        assert isinstance(error, dict) and isinstance(error.get("code"), str) and \
            isinstance(error.get("message"), str), f"{what} -> {response.get_json()}"


def _route_only_app() -> Flask:
    """The API blueprint on a bare Flask app: its routes, known at collection time."""
    bare = Flask(__name__)
    bare.register_blueprint(api.bp)
    return bare


ROUTES = _api_routes(_route_only_app())
DOCUMENT = build_document(_route_only_app())


def test_the_fuzzer_covers_every_route_the_document_says_takes_json(world):
    assert _api_routes(world.app) == ROUTES
    fuzzed = {(method, _document_path(rule)) for method, rule, _ in ROUTES}
    takes_json = {(method.upper(), path) for path, item in DOCUMENT["paths"].items()
                  for method, operation in item.items()
                  if "application/json" in operation.get("requestBody", {}).get("content", {})}
    assert takes_json and takes_json <= fuzzed
    assert len(fuzzed) >= 25  # the API's state-changing routes, not a handful


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "rule", "endpoint"), ROUTES,
                         ids=[f"{m} {r}" for m, r, _ in ROUTES])
def test_no_body_makes_a_route_fail(world, method, rule, endpoint, caller):
    """0 5xx, and every 4xx in the error shape."""
    public = endpoint in PUBLIC_ENDPOINTS
    examples = EXAMPLES if caller != "anonymous" or public else max(2, EXAMPLES // 5)
    values = _path_values(world, caller)
    url = _url(rule, values)
    persona = world.personas[caller]
    headers = {"Authorization": f"Bearer {persona.write_token}"} if persona.write_token else {}
    if endpoint in CONSUMER_ENDPOINTS:  # what reaches them is a consumer key, whoever holds it
        headers = {"Authorization": f"Bearer {values['consumer_key']}"}
    client = world.app.test_client()  # no cookie: the bearer token alone (or nothing)
    statuses = []

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=_bodies(_body_fields(DOCUMENT, method, rule)))
    def fuzz(body):
        response = client.open(url, method=method, data=body, headers=headers,
                               content_type="application/json")
        _check(response, f"{caller} {method} {url} with {body[:200]!r}")
        statuses.append(response.status_code)

    fuzz()
    if caller != "anonymous" or public:  # the bodies got past the login to the route itself
        assert set(statuses) - {401}, statuses
