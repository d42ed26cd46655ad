"""One place renders errors (exception_layer/handlers.py): JSON for API clients and for requests
that prefer JSON, a page for browsers; the status is the error's, internals reach the server
log and never the answer."""

from __future__ import annotations

import logging

import pytest

from exception_layer import NotFound, StorageUnavailable, ValidationFailed

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
INTERNALS = "connection refused by 10.0.0.7 for key AKIAEXAMPLE"


def _raise(name: str):
    if name == "not-found":
        raise NotFound("No project p1.")
    if name == "invalid":
        raise ValidationFailed(details={"name": "A name is required."})
    if name == "echo":  # a message and details that repeat a 3 MB value the client sent
        huge = "x" * 3_000_000
        raise ValidationFailed(f"'{huge}' is not a metric.",
                               details={"metric": f"Unknown: {huge}", "files": [{"file": huge}]})
    if name == "storage":
        try:
            raise OSError(INTERNALS)
        except OSError as exc:
            raise StorageUnavailable() from exc
    raise RuntimeError(INTERNALS)  # a bug


@pytest.fixture
def app_config(app_config):
    return {**app_config, "MAX_UPLOAD_MB": 1}


@pytest.fixture
def signed_in(app, client, auth):
    """A logged-in client of an app with routes that raise: ``/raise/<name>`` and
    ``/api/v1/raise/<name>`` (added before the app's first request)."""
    app.add_url_rule("/raise/<name>", "raise_page", _raise)
    app.add_url_rule("/api/v1/raise/<name>", "raise_api", _raise)
    assert auth.setup_admin().status_code == 302
    return client


def test_api_errors_are_json_with_their_status(signed_in):
    response = signed_in.get("/api/v1/raise/not-found", headers=BROWSER)
    assert response.status_code == 404 and response.is_json
    assert response.get_json() == {"error": {"code": "not_found", "message": "No project p1."}}
    invalid = signed_in.get("/api/v1/raise/invalid")
    assert invalid.status_code == 422
    assert invalid.get_json()["error"]["details"] == {"name": "A name is required."}


def test_browsers_get_a_page_with_the_message_and_the_field_details(signed_in):
    response = signed_in.get("/raise/invalid", headers=BROWSER)
    assert response.status_code == 422 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert 'data-error-code="validation_failed"' in html and "Some fields are not valid." in html
    assert "<strong>name</strong>: A name is required." in html
    missing = signed_in.get("/raise/not-found", headers=BROWSER).get_data(as_text=True)
    assert "Not found" in missing and "No project p1." in missing


@pytest.mark.parametrize("accept, json", [
    ("application/json", True), ("application/json, text/html;q=0.9", True),
    ("text/html, application/json;q=0.9", False), ("*/*", False), (None, False)])
def test_pages_answer_json_to_clients_that_prefer_it(signed_in, accept, json):
    headers = {"Accept": accept} if accept else {}
    response = signed_in.get("/raise/not-found", headers=headers)
    assert response.status_code == 404 and response.is_json is json


def test_a_server_side_error_is_logged_with_its_cause_and_answered_safely(signed_in, caplog):
    with caplog.at_level(logging.ERROR, logger="trainyard.errors"):
        response = signed_in.get("/api/v1/raise/storage")
    assert response.status_code == 503
    assert response.get_json()["error"] == {"code": "storage_unavailable",
                                            "message": "The storage cannot be reached right now."}
    assert INTERNALS not in response.get_data(as_text=True)
    [record] = [r for r in caplog.records if r.name == "trainyard.errors"]
    assert record.exc_info and INTERNALS in str(record.exc_info[1])


def test_a_client_error_is_not_logged_as_a_server_error(signed_in, caplog):
    with caplog.at_level(logging.ERROR, logger="trainyard.errors"):
        assert signed_in.get("/api/v1/raise/not-found").status_code == 404
    assert not [r for r in caplog.records if r.name == "trainyard.errors"]


@pytest.mark.parametrize("path, headers", [("/api/v1/raise/bug", {}), ("/raise/bug", BROWSER)])
def test_an_unexpected_exception_is_a_500_without_internals(signed_in, caplog, path, headers):
    with caplog.at_level(logging.ERROR, logger="trainyard.errors"):
        response = signed_in.get(path, headers=headers)
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Something went wrong on our side." in body and INTERNALS not in body
    assert "Traceback" not in body
    assert any(r.exc_info and INTERNALS in str(r.exc_info[1]) for r in caplog.records)


def test_unknown_paths_are_404_in_the_api_and_on_pages(client):
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.get_json()["error"] == {
        "code": "not_found", "message": "No such page or API endpoint."}
    page = client.get("/no-such-page", headers=BROWSER)
    assert page.status_code == 404 and "No such page or API endpoint." in page.get_data(
        as_text=True)


def test_a_wrong_method_is_405_with_the_allowed_ones(signed_in, auth):
    response = signed_in.delete("/api/v1/openapi.json", headers={"X-CSRFToken": auth.csrf("/")})
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_an_oversized_body_is_413_naming_the_limit(client):
    response = client.post("/api/v1/login", data=b"x" * (1024 * 1024 + 1),
                           content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == {
        "code": "payload_too_large", "message": "The upload is larger than the 1 MB allowed."}


def test_a_failed_csrf_check_says_to_reload(signed_in):
    response = signed_in.post("/logout", data={}, headers=BROWSER)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'data-error-code="csrf_failed"' in html and "reload the page" in html


def test_an_error_never_echoes_a_huge_value_back_whole(signed_in):
    for path in ("/api/v1/raise/echo", "/raise/echo"):
        response = signed_in.get(path)
        assert response.status_code == 422
        assert len(response.data) < 20_000, path
    error = signed_in.get("/api/v1/raise/echo").get_json()["error"]
    assert error["message"].startswith("'xxx") and "(cut: 3000019 characters in all)" in \
        error["message"]
    assert error["details"]["metric"].endswith("(cut: 3000009 characters in all)")
    assert error["details"]["files"][0]["file"].endswith("(cut: 3000000 characters in all)")
