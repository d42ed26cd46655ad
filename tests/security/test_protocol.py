"""Issue 21 item 12, the protocol: an anonymous call is told to log in before any CSRF check, and
the CSRF token changes at every login and logout (a token seen before them is refused after)."""

from __future__ import annotations

from tests.conftest import ADMIN


def test_an_anonymous_api_post_gets_401_not_a_csrf_failure(client, auth):
    auth.setup_admin()
    auth.logout()
    for path in ("/api/v1/projects", "/api/v1/tokens", "/api/v1/storage-connections"):
        response = client.post(path, json={"name": "x"})  # no session, no token, no CSRF header
        assert response.status_code == 401, (path, response.get_data(as_text=True)[:300])
        assert response.get_json()["error"]["code"] == "unauthenticated"
    assert client.delete("/api/v1/session").status_code == 401


def test_an_anonymous_page_post_is_sent_to_the_login_page(client, auth):
    auth.setup_admin()
    auth.logout()
    response = client.post("/projects/new", data={"name": "x"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    # The login form itself is still CSRF-checked.
    response = client.post("/login", data={"email": ADMIN["email"],
                                           "password": ADMIN["password"]})
    assert response.status_code == 400 and 'data-error-code="csrf_failed"' in \
        response.get_data(as_text=True)


def test_the_csrf_token_from_before_a_page_login_is_refused_after_it(client, auth):
    auth.setup_admin()
    auth.logout()
    before = auth.csrf("/login")
    assert client.post("/login", data={"email": ADMIN["email"], "password": ADMIN["password"],
                                       "csrf_token": before}).status_code == 302
    stale = client.post("/api/v1/tokens", json={"name": "t", "scope": "read"},
                        headers={"X-CSRFToken": before})
    assert stale.status_code == 400 and stale.get_json()["error"]["code"] == "csrf_failed"
    fresh = client.post("/api/v1/tokens", json={"name": "t", "scope": "read"},
                        headers={"X-CSRFToken": auth.csrf("/")})
    assert fresh.status_code == 201, fresh.get_data(as_text=True)


def test_the_csrf_token_changes_at_api_login_and_logout(client, auth):
    auth.setup_admin()
    auth.logout()
    before = auth.csrf("/login")  # the anonymous session's token
    login = client.post("/api/v1/session", json={"email": ADMIN["email"],
                                                 "password": ADMIN["password"]})
    assert login.status_code == 200
    after = login.get_json()["csrf_token"]
    assert client.post("/api/v1/tokens", json={"name": "t", "scope": "read"},
                       headers={"X-CSRFToken": before}).status_code == 400
    assert client.delete("/api/v1/session", headers={"X-CSRFToken": after}).status_code == 204
    # Logged out, the old session's token does not pass the login form's check either.
    response = client.post("/login", data={"email": ADMIN["email"],
                                           "password": ADMIN["password"], "csrf_token": after})
    assert response.status_code == 400


def test_a_long_address_gets_414_as_json_under_api_and_as_a_page_elsewhere(client):
    api = client.get("/api/v1/projects?x=" + "a" * 5000)
    assert api.status_code == 414 and api.get_json()["error"]["code"] == "uri_too_long"
    page = client.get("/login?x=" + "a" * 5000)
    assert page.status_code == 414 and 'data-error-code="uri_too_long"' in \
        page.get_data(as_text=True)
    assert client.get("/healthz?x=" + "a" * 3000).status_code == 200
