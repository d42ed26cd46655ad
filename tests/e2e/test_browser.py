"""The UI in headless Chromium (Debian's, driven by Playwright with executable_path): first-run
set-up, a project created from an inferred schema, an upload with the file manager, Train, the
log streaming in, the final status. Screenshots go to test-artifacts/."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ADMIN
from tests.factories import batch_files, cancer_frame

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-quic", "--disable-dev-shm-usage"]


@pytest.fixture
def browser_page(tmp_path, monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: run `make test`, which installs it.")
    from playwright.sync_api import sync_playwright

    # Chromium's singleton socket path must stay short: pytest's tmp_path is too deep.
    home = Path(tempfile.mkdtemp(prefix="ty-chromium-"))
    for var in ("HOME", "TMPDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        folder = home / var.lower()
        folder.mkdir()
        monkeypatch.setenv(var, str(folder))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.js_errors = errors
        yield page
        browser.close()
    shutil.rmtree(home, ignore_errors=True)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_train_from_the_browser(live_server, browser_page, tmp_path):
    page = browser_page
    page.goto(live_server.url + "/")
    # first visit: create the admin account
    assert page.url.endswith("/setup")
    page.fill("#name", ADMIN["name"])
    page.fill("#email", ADMIN["email"])
    page.fill("#password", ADMIN["password"])
    page.fill("#confirm", ADMIN["password"])
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")

    # a project whose schema is inferred from a sample file, then adjusted
    files = batch_files(cancer_frame(), "cancer", 3)
    sample = tmp_path / files[0][0]
    sample.write_bytes(files[0][1])
    page.click("a:has-text('New project')")
    page.fill("#name", "Cancer screening")
    page.select_option("#problem_type", "classification")
    page.set_input_files("#schema-sample", str(sample))
    # (locator waits: the page's CSP rightly forbids evaluating strings as script)
    page.locator("#schema-columns tbody tr").nth(31).wait_for()
    assert page.locator("#schema-columns tbody tr").count() == 32
    assert page.input_value("#filename_pattern") == r"^cancer_\d{8}_\d{6}\.csv$"
    target_row = page.locator("#schema-columns tbody tr").nth(31)
    assert target_row.locator("input[type=text]").input_value() == "diagnosis"
    target_row.locator("input[type=radio]").check()
    id_row = page.locator("#schema-columns tbody tr").nth(0)
    assert id_row.locator("input[type=text]").input_value() == "sample_id"
    id_row.locator("input[type=checkbox]").check()
    shot(page, "project-form")
    page.click("button:has-text('Create project')")
    page.wait_for_url("**/projects/cancer-screening")

    # upload the training files with the file manager
    page.click("a[data-nav=files]")
    page.click("a:has-text('training_batch_files/')")
    paths = []
    for name, data in files:
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(str(path))
    page.set_input_files("form[data-upload] input[type=file]", paths)
    with page.expect_navigation():
        page.click("form[data-upload] button[type=submit]")
    for name, _ in files:
        assert page.locator(f"tr[data-file='training_batch_files/{name}']").count() == 1
    shot(page, "file-manager")

    # uploading one of them again asks before replacing it (issue 21 item 11)
    asked = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", answer)
    page.set_input_files("form[data-upload] input[type=file]", paths[:1])
    with page.expect_navigation():
        page.click("form[data-upload] button[type=submit]")
    assert asked and f"training_batch_files/{files[0][0]}" in asked[0]
    # the browser logs the first answer, the 409 that named the file; nothing else went wrong
    conflicts = [e for e in page.js_errors if "409" in e]
    assert len(conflicts) == 1
    page.js_errors.remove(conflicts[0])

    # move a file out to a new folder and back (checked against the schema on its way in)
    last = files[-1][0]
    for source, target in ((f"training_batch_files/{last}", "held/"),
                           (f"held/{last}", "training_batch_files/")):
        page.goto(live_server.url + "/projects/cancer-screening/files?path="
                  + source.rpartition("/")[0] + "/")
        page.fill(f"tr[data-file='{source}'] input[name=to]", target)
        with page.expect_navigation():
            page.click(f"tr[data-file='{source}'] form[data-move] button[type=submit]")
        assert f"Moved {source} to {target}{last}" in page.inner_text("main")
    # the folder it went through is renamed in place
    page.goto(live_server.url + "/projects/cancer-screening/files")
    page.fill("tr[data-folder='held/'] input[name=name]", "kept")
    with page.expect_navigation():
        page.click("tr[data-folder='held/'] form[data-move] button[type=submit]")
    assert "Moved held/ to kept/" in page.inner_text("main")
    assert page.locator("tr[data-folder='kept/']").count() == 1
    assert page.locator("tr[data-folder='held/']").count() == 0
    page.goto(live_server.url + "/projects/cancer-screening/files?path=training_batch_files/")
    for name, _ in files:
        assert page.locator(f"tr[data-file='training_batch_files/{name}']").count() == 1

    # Train: the log streams in, then the final status shows
    page.goto(live_server.url + "/projects/cancer-screening")
    page.click("button[data-action=train]")
    page.wait_for_selector("#live-log .log-line", timeout=30000)
    page.locator("#live-log .log-line").nth(4).wait_for(timeout=60000)
    shot(page, "training-live")
    page.wait_for_selector("#execution-status:text('succeeded')", timeout=180000)
    shot(page, "training-succeeded-live")
    # the page reloads by itself once the execution is over, and shows the model's metrics
    page.wait_for_selector("#metrics", timeout=15000)
    assert "accuracy" in page.inner_text("#metrics")
    lines = page.locator("#live-log .log-line").all_inner_texts()
    assert any("is now the active model" in line for line in lines)
    shot(page, "training-finished")
    assert page.js_errors == [], page.js_errors


def test_monitoring_page_shows_charts_and_incidents(app, live_server, browser_page):
    """A project whose traffic drifted: the monitoring page, reached from the project page,
    draws its charts and lists the open incident; the incident links back to the project."""
    from datetime import UTC, datetime, timedelta

    from tests.monitoring_world import insert_records, make_project, records

    page = browser_page
    page.goto(live_server.url + "/setup")
    page.fill("#name", ADMIN["name"])
    page.fill("#email", ADMIN["email"])
    page.fill("#password", ADMIN["password"])
    page.fill("#confirm", ADMIN["password"])
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")
    platform = app.extensions["trainyard"]
    project = make_project(platform.db, platform.resolver,
                           platform.db.users.get_by_email(ADMIN["email"]), name="Watched")
    now = datetime.now(UTC)
    for hours in (50, 26, 2):  # three days of traffic, the last one drifted
        insert_records(platform.db, records(project, 120, start=now - timedelta(hours=hours),
                                            shift=3 if hours == 2 else 0, seed=hours,
                                            labeled=40, accuracy=0.9))
    app.extensions["monitoring"].compute(now)

    page.goto(f"{live_server.url}/projects/{project.slug}")
    assert page.locator("#open-incidents").is_visible()
    page.click("[data-nav=monitoring]")
    page.wait_for_url(f"**/projects/{project.slug}/monitoring")
    for chart in ("volume", "latency", "metric", "drift"):
        assert page.locator(f"svg[data-chart={chart}] circle").count() >= 2, chart
    assert page.locator("svg[data-chart=volume] polyline").count() >= 1
    assert page.locator("svg[data-chart=drift] line.chart-line").count() == 1
    incident = page.locator("#incidents tr[data-status=open]")
    assert incident.count() == 1 and "Drift of x" in incident.inner_text()
    assert page.locator("#feature-drift tr[data-feature=x]").inner_text().count("drift")
    page.click("[data-granularity=window]")
    page.wait_for_url("**granularity=window**")
    assert page.locator("svg[data-chart=volume] circle").count() == 2  # one point per series
    shot(page, "monitoring")
    assert page.js_errors == []
