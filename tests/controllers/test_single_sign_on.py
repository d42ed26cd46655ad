"""Issue 23, deliverable 0: single sign-on through OpenID Connect, end to end against a real
provider (oidc-provider-mock in its own process, see ``tests/conftest.oidc_provider``): the
redirect to the provider, its authorization form, the callback (Authlib exchanges the code and
checks state, nonce and the ID token's signature), the account made at first sign-on, the teams
mapped from the groups claim at every sign-on, and the logout that ends the session here and at
the provider; then the refusals: denied at the provider, a forged state, a reused code, a
provider that is down, an existing account whose address the provider has not verified."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app import create_app
from entity.team import Team, TeamMembership
from entity.user import User
from tests.conftest import free_port

MAPPING = {"ds": "Data Science", "risk": "Risk Models"}
_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


@pytest.fixture
def app_config(app_config, oidc_provider):
    return {**app_config, "OIDC_ISSUER": oidc_provider.issuer, "OIDC_CLIENT_ID": "trainyard",
            "OIDC_CLIENT_SECRET": "a client secret never logged",
            "OIDC_PROVIDER_NAME": "Test IdP", "OIDC_GROUPS_CLAIM": "groups",
            "OIDC_TEAM_MAPPING": MAPPING}


@pytest.fixture
def sso(client, auth, oidc_provider):
    """Start a sign-on and answer the provider's form: ``sso(sub)`` -> the callback's answer."""
    assert auth.setup_admin().status_code == 302
    auth.logout()

    def sign_on(sub: str | None, *, deny: bool = False, next_page: str = "/teams"):
        started = client.get(f"/login/sso?next={next_page}")
        assert started.status_code == 302, started.get_data(as_text=True)[:500]
        location = started.headers["Location"]
        assert location.startswith(oidc_provider.issuer + "/oauth2/authorize?")
        asked = parse_qs(urlsplit(location).query)
        assert asked["redirect_uri"] == ["http://trainyard.test/login/sso/callback"]
        assert asked["state"] and asked["nonce"] and asked["code_challenge_method"] == ["S256"]
        return client.get(oidc_provider.authorize(location, sub, deny=deny))
    return sign_on


def _teams_of(app, email: str) -> dict[str, str]:
    db = app.extensions["trainyard"].db
    user = db.users.get_by_email(email)
    return {db.teams.get(m.team_id).slug: m.source for m in db.teams.memberships_of(user.id)}


def _csrf(client) -> str:
    return _CSRF.search(client.get("/").get_data(as_text=True)).group(1)


def test_sign_on_creates_the_user_maps_teams_at_every_login_and_logs_out(
        app, client, sso, oidc_provider, caplog):
    db = app.extensions["trainyard"].db
    page = client.get("/login").get_data(as_text=True)
    assert "Sign in with Test IdP" in page
    oidc_provider.set_user("alice-1", email="Alice@Example.com", email_verified=True,
                           name="Alice Liddell", groups=["ds", "unmapped"])
    signed = sso("alice-1")
    assert signed.status_code == 302 and signed.headers["Location"] == "/teams"
    me = client.get("/api/v1/session").get_json()["user"]
    assert me["email"] == "alice@example.com" and me["name"] == "Alice Liddell"
    assert me["role"] == "member"
    alice = db.users.get(me["id"])
    assert alice.sso_subject == f"{oidc_provider.issuer} alice-1"
    assert _teams_of(app, "alice@example.com") == {"data-science": "sso"}
    # an admin also puts her in a team by hand: the claim never touches that one
    local = db.teams.add(Team(name="Platform", slug="platform"))
    db.teams.put_member(TeamMembership(local.id, alice.id, "member"))

    # logout: the session ends here, then the browser goes to the provider's end-session page
    out = client.post("/logout", data={"csrf_token": _csrf(client)})
    assert out.status_code == 302
    end = urlsplit(out.headers["Location"])
    assert f"{end.scheme}://{end.netloc}{end.path}" == oidc_provider.issuer + \
        "/oauth2/end_session"
    asked = parse_qs(end.query)
    assert asked["post_logout_redirect_uri"] == ["http://trainyard.test/login"]
    assert asked["id_token_hint"] and asked["client_id"] == ["trainyard"]
    assert requests.get(out.headers["Location"], timeout=10).status_code == 200
    assert client.get("/api/v1/session").status_code == 401

    # the second sign-on, with changed groups: one team joined, one left, the same account
    oidc_provider.set_user("alice-1", email="alice@example.com", email_verified=True,
                           name="Alice Liddell", groups=["risk"])
    assert sso("alice-1").status_code == 302
    assert client.get("/api/v1/session").get_json()["user"]["id"] == alice.id
    assert _teams_of(app, "alice@example.com") == {"risk-models": "sso", "platform": "local"}
    assert db.users.count() == 2  # the admin and Alice
    assert "a client secret never logged" not in caplog.text


def test_an_existing_account_is_linked_only_when_the_provider_verified_the_address(
        app, client, sso, oidc_provider):
    db = app.extensions["trainyard"].db
    bob = db.users.add(User(email="bob@example.com", name="Bob", password_hash="!"))
    oidc_provider.set_user("bob-1", email="bob@example.com", email_verified=False)
    refused = sso("bob-1")
    assert refused.status_code == 403
    assert "cannot be linked" in refused.get_data(as_text=True)
    assert db.users.get(bob.id).sso_subject is None
    assert client.get("/api/v1/session").status_code == 401
    oidc_provider.set_user("bob-1", email="bob@example.com", email_verified=True)
    assert sso("bob-1").status_code == 302
    assert client.get("/api/v1/session").get_json()["user"]["id"] == bob.id
    assert db.users.get(bob.id).sso_subject == f"{oidc_provider.issuer} bob-1"


def test_failed_callbacks_say_why_in_plain_words(app, client, sso, oidc_provider):
    denied = sso(None, deny=True)
    assert denied.status_code == 400
    assert "cancelled or refused at the provider" in denied.get_data(as_text=True)
    # a callback whose state this browser never started (a forged or replayed link)
    forged = client.get("/login/sso/callback?code=abc&state=not-ours")
    assert forged.status_code == 400
    assert "start again from the login page" in forged.get_data(as_text=True)
    assert client.get("/login/sso/callback").status_code == 400  # nothing at all
    # a code used twice: the provider refuses the second exchange
    oidc_provider.set_user("carol-1", email="carol@example.com", email_verified=True)
    started = client.get("/login/sso")
    callback = oidc_provider.authorize(started.headers["Location"], "carol-1")
    assert client.get(callback).status_code == 302
    client.post("/logout", data={"csrf_token": _csrf(client)})
    again = client.get(callback)
    assert again.status_code == 400 and client.get("/api/v1/session").status_code == 401
    assert app.extensions["trainyard"].db.users.count() == 2


def test_a_provider_that_is_down_is_a_plain_message_and_no_sign_on_is_offered_unconfigured(
        app_config, tmp_path):
    down = create_app({**app_config, "DATA_DIR": str(tmp_path / "down"),
                       "OIDC_ISSUER": f"http://127.0.0.1:{free_port()}"}, start_runner=False)
    try:
        answer = down.test_client().get("/login/sso")
        assert answer.status_code == 400
        assert "could not be reached" in answer.get_data(as_text=True)
    finally:
        down.extensions["trainyard"].db.close()
    plain = {k: v for k, v in app_config.items() if not k.startswith("OIDC_")}
    off = create_app({**plain, "DATA_DIR": str(tmp_path / "off")}, start_runner=False)
    try:
        client = off.test_client()
        assert "Sign in with" not in client.get("/login").get_data(as_text=True)
        assert client.get("/login/sso").status_code == 404
        assert client.get("/login/sso/callback?code=x&state=y").status_code == 404
    finally:
        off.extensions["trainyard"].db.close()
