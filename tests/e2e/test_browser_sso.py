"""Single sign-on in headless Chromium against the real test provider: "Sign in with" on the
login page, the provider's form, back to Trainyard logged in, then the logout, whose form the
browser follows to the provider's end-session page (the Content-Security-Policy's form-action
must let it), and back to the login page."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN
from tests.e2e.test_browser import browser_page, shot  # noqa: F401, F811 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def app_config(app_config, oidc_provider):
    return {**app_config, "OIDC_ISSUER": oidc_provider.issuer, "OIDC_CLIENT_ID": "trainyard",
            "OIDC_CLIENT_SECRET": "browser secret", "OIDC_PROVIDER_NAME": "Test IdP",
            "OIDC_GROUPS_CLAIM": "groups", "OIDC_TEAM_MAPPING": {"ds": "Data Science"}}


def test_sign_on_and_logout_in_the_browser(app, live_server, oidc_provider,
                                           browser_page):  # noqa: F811
    page = browser_page
    app.config["PUBLIC_URL"] = live_server.url  # the redirect URI the provider sends back to
    page.goto(live_server.url + "/setup")
    page.fill("#name", ADMIN["name"])
    page.fill("#email", ADMIN["email"])
    page.fill("#password", ADMIN["password"])
    page.fill("#confirm", ADMIN["password"])
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")
    page.click("nav button:has-text('Log out')")
    page.wait_for_load_state()
    assert page.url.startswith(live_server.url + "/login"), (page.url, page.js_errors)

    oidc_provider.set_user("dana", email="dana@example.com", email_verified=True,
                           name="Dana Scully", groups=["ds"])
    page.click("#sso-login")
    page.wait_for_url(oidc_provider.issuer + "/oauth2/authorize*")
    page.fill("input[name=sub]", "dana")
    page.click("button:has-text('Authorize')")
    page.wait_for_url(live_server.url + "/")
    assert "Dana Scully" in page.inner_text("nav")
    page.goto(live_server.url + "/teams")
    assert "yours" in page.inner_text("tr[data-team=data-science]")
    shot(page, "sso-signed-in")

    page.click("nav button:has-text('Log out')")
    page.wait_for_url(oidc_provider.issuer + "/oauth2/end_session*")
    page.click("button:has-text('End session')")
    page.wait_for_url(live_server.url + "/login*")
    assert "Sign in with Test IdP" in page.content()
    assert page.request.get(live_server.url + "/api/v1/session").status == 401
    assert not [e for e in page.js_errors if "Content Security Policy" in e], page.js_errors
