"""The Retraining page in headless Chromium: a schedule added through its form (a wrong time
zone refused under its field), then a challenger waiting for approval approved with its button.
The two model versions are stand-ins with real files and checksums (what approval verifies);
their training and comparison are tested in tests/thread_layer/test_challenger.py."""

from __future__ import annotations

import pytest

from entity.model_version import ModelVersion
from project_library.model_artifacts import save_model_version
from tests.conftest import ADMIN
from tests.e2e.test_browser import browser_page, shot  # noqa: F401, F811 - the fixture
from tests.factories import cancer_project

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _seed_challenger(app, project_id: str) -> None:
    """v1 active, v2 a challenger waiting for approval, both with their files."""
    services = app.extensions["trainyard"]
    db = services.db
    project = db.projects.get(project_id)
    files = services.resolver.files(project)
    for number in (1, 2):
        artifacts = save_model_version(files, number, model={"stand-in": number},
                                       documents={"metrics.json": {"accuracy": 0.9}})
        db.model_versions.add(ModelVersion(
            project_id=project_id, version=number, execution_id="seeded", algorithm="lr",
            metrics={"accuracy": 0.9 + number / 100}, artifacts=artifacts,
            problem_type="classification"))
    db.projects.set_versions(project_id, next_version=3, active_version=1)
    db.model_versions.set_challenge(project_id, 2, {
        "status": "pending", "policy": "manual", "metric": "accuracy", "champion_version": 1,
        "champion_value": 0.91, "challenger_value": 0.92, "source": "feedback", "rows": 40,
        "reason": "v2 scores accuracy 0.92 against the active v1's 0.91 on the same 40 "
                  "labeled predictions: better; waiting for a person's approval."})


def test_schedule_and_approve_a_challenger_in_the_browser(app, live_server,
                                                          browser_page):  # noqa: F811
    page = browser_page
    page.goto(live_server.url + "/setup")
    page.fill("#name", ADMIN["name"])
    page.fill("#email", ADMIN["email"])
    page.fill("#password", ADMIN["password"])
    page.fill("#confirm", ADMIN["password"])
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")
    created = page.request.post(live_server.url + "/api/v1/projects", data=cancer_project(),
                                headers={"X-CSRFToken": page.locator(
                                    "meta[name=csrf-token]").get_attribute("content")})
    assert created.status == 201, created.text()
    project = created.json()
    _seed_challenger(app, project["id"])

    page.goto(f"{live_server.url}/projects/{project['slug']}")
    page.click("a[data-nav=retraining]")
    page.wait_for_url(f"**/projects/{project['slug']}/retraining")
    assert page.locator("#no-schedules").count() == 1

    # a wrong zone is refused under its field, and nothing is stored
    page.fill("#cron", "0 3 * * *")
    page.fill("#timezone", "Mars/Olympus")
    with page.expect_navigation():
        page.click("#new-schedule button[type=submit]")
    assert "not a known time zone" in page.locator("[data-error-for=timezone]").inner_text()
    assert page.locator("#schedules").count() == 0
    page.fill("#timezone", "Europe/Paris")
    with page.expect_navigation():
        page.click("#new-schedule button[type=submit]")
    row = page.locator("#schedules tbody tr")
    assert row.count() == 1 and row.locator("input[name=timezone]").input_value() == \
        "Europe/Paris"
    assert row.locator("[data-next-run]").inner_text().strip() != "—"

    pending = page.locator("tr[data-challenger='2']")
    assert pending.get_attribute("data-status") == "pending"
    assert "labeled predictions (40)" in pending.inner_text()
    shot(page, "retraining-page")
    with page.expect_navigation():
        pending.locator("button[data-action=approve]").click()
    assert "now the active model" in page.content()
    assert page.locator("tr[data-challenger='2']").get_attribute("data-status") == "approved"
    assert app.extensions["trainyard"].db.projects.get(project["id"]).active_version == 2
    # the browser logs the refused form's 422 answer; nothing else went wrong
    assert [e for e in page.js_errors if "422" not in e] == []
    assert len(page.js_errors) == 1
