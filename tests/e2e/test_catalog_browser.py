"""The catalog's consumer journey in headless Chromium where it has pages: team B's member finds
the listing on the Catalog page by tag and metric range and opens its card (the readme's script
never runs); the key's calls (subscribe, predict, score, the quota's 429) go through the API as a
consumer's program makes them; team A's owner sees B's usage in the card page's consumers table;
after A revokes the key, B's next call is refused. Subscribing and revoking have no page yet:
they are API calls here."""

from __future__ import annotations

import pytest
import requests
from werkzeug.security import generate_password_hash

from entity.security import ApiToken
from entity.team import Team, TeamMembership
from entity.user import User
from tests.e2e.test_browser import browser_page, shot  # noqa: F401 (the fixture)
from tests.factories import churn_rows, servable_project

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "catalog browser 2026"
README = ("# Churn\n\n<script>window.__owned = 1</script>\n\n"
          "<img src=x onerror=\"window.__owned = 2\"> [x](javascript:window.__owned=3)")


def log_in(page, url: str, email: str) -> None:
    page.goto(url + "/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")


def test_consumer_journey_in_the_browser(app, live_server, browser_page):  # noqa: F811
    page, url, db = browser_page, live_server.url, app.extensions["trainyard"].db
    hashed = generate_password_hash(PASSWORD)
    team_a, team_b = Team(name="Team A", slug="team-a"), Team(name="Team B", slug="team-b")
    db.teams.add(team_a)
    db.teams.add(team_b)
    alice = db.users.add(User(email="alice@example.com", name="Alice", password_hash=hashed))
    bob = db.users.add(User(email="bob@example.com", name="Bob", password_hash=hashed))
    db.teams.put_member(TeamMembership(team_id=team_a.id, user_id=alice.id))
    db.teams.put_member(TeamMembership(team_id=team_b.id, user_id=bob.id))
    tokens = {}
    for user in (alice, bob):
        token, clear = ApiToken.issue(user.id, "journey", "write")
        db.api_tokens.add(token)
        tokens[user.email] = {"Authorization": f"Bearer {clear}"}
    project = servable_project(app.extensions["trainyard"], db.users.get(alice.id),
                               name="Retail churn", tags=["retail"])
    # 1. team A publishes, for team B
    listing = requests.post(f"{url}/api/v1/projects/{project.id}/listings",
                            headers=tokens[alice.email], timeout=30,
                            json={"title": "Retail churn", "summary": "Who leaves",
                                  "readme": README, "visibility": "teams",
                                  "teams": ["team-b"]}).json()
    # 2. B finds it on the Catalog page by tag and metric range, and reads the card
    log_in(page, url, bob.email)
    page.click("a.nav-link:has-text('Catalog')")
    page.fill("input[name=tag]", "retail")
    page.fill("input[name=metric]", "f1>=0.9")
    page.click("#catalog-search button[type=submit]")
    page.locator(".catalog-item").first.wait_for()
    assert page.locator(".catalog-item").count() == 1
    page.fill("input[name=metric]", "f1 >>= 0.9")  # malformed: the page says why
    page.click("#catalog-search button[type=submit]")
    assert "metric" in page.locator(".alert-danger").inner_text()
    page.fill("input[name=metric]", "f1>=0.9")
    page.click("#catalog-search button[type=submit]")
    page.click(".catalog-item")
    page.wait_for_url(f"{url}/catalog/{listing['id']}")
    assert page.locator(".model-readme h1").inner_text() == "Churn"
    assert page.evaluate("() => window.__owned") is None  # no injected script ran
    assert page.locator("#card-metrics").is_visible()
    assert page.locator("#consumers").count() == 0  # only the owner sees the consumers
    shot(page, "catalog-card")
    # subscribes, predicts and scores (a consumer's program), then hits the quota
    sub = requests.post(f"{url}/api/v1/catalog/{listing['id']}/subscriptions",
                        headers=tokens[bob.email], json={"per_minute": 3}, timeout=30).json()
    key = {"Authorization": f"Bearer {sub['key']}"}
    rows = churn_rows(8, seed=9)
    inputs = [{k: v for k, v in r.items() if k != "churned"} for r in rows]
    consume = f"{url}/api/v1/consume/{listing['id']}"
    assert requests.post(f"{consume}/predict", json={"records": inputs}, headers=key,
                         timeout=30).status_code == 200
    assert requests.post(f"{consume}/score", json={"records": rows}, headers=key,
                         timeout=30).status_code == 200
    assert requests.get(consume, headers=key, timeout=30).status_code == 200
    over = requests.post(f"{consume}/predict", json={"records": inputs}, headers=key,
                         timeout=30)
    assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
    # 3. A sees B's usage on the card page
    page.context.clear_cookies()
    log_in(page, url, alice.email)
    page.goto(f"{url}/catalog/{listing['id']}")
    row = page.locator("#consumers tbody tr").first
    assert "bob@example.com" in row.inner_text() and "active" in row.inner_text()
    cells = row.locator("td")
    assert (cells.nth(2).inner_text(), cells.nth(3).inner_text()) == ("2", "16")
    shot(page, "catalog-consumers")
    # A revokes; B's next call is refused
    assert requests.delete(f"{url}/api/v1/catalog/{listing['id']}/consumers/{sub['id']}",
                           headers=tokens[alice.email], timeout=30).status_code == 204
    assert requests.post(f"{consume}/predict", json={"records": inputs}, headers=key,
                         timeout=30).status_code == 401
    page.reload()
    assert "revoked" in page.locator("#consumers tbody tr").first.inner_text()
    assert not page.js_errors, page.js_errors
