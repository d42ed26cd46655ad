"""Execution mails through a real SMTP server (aiosmtpd): start, success and failure arrive with
the right recipients and subjects, and the failure says what went wrong and links to the log."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN, wait_until
from tests.factories import batch_files, cancer_frame, cancer_project

pytestmark = pytest.mark.slow


@pytest.fixture
def app_config(app_config, smtp_server):
    return {**app_config, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_server.port,
            "MAIL_DEFAULT_SENDER": "trainyard@example.com"}


def _body(message) -> str:
    part = message.get_body(preferencelist=("plain",)) if hasattr(message, "get_body") else None
    if part is None:
        for candidate in message.walk():
            if candidate.get_content_type() == "text/plain":
                return candidate.get_payload(decode=True).decode()
        return message.get_payload(decode=True).decode()
    return part.get_payload(decode=True).decode()


def test_start_success_and_failure_mails_arrive(api, smtp_server):
    project = api.create_project(cancer_project(recipients=["team@example.com",
                                                            "lead@example.com"]))
    failed = api.wait_final(project["id"], api.start(project["id"], "train").get_json()["id"])
    assert failed["status"] == "failed"
    api.upload(project["id"], "training_batch_files/", batch_files(cancer_frame(), "cancer", 2))
    succeeded = api.wait_final(project["id"],
                               api.start(project["id"], "train").get_json()["id"])
    assert succeeded["status"] == "succeeded"
    wait_until(lambda: len(smtp_server.messages) >= 4, timeout=20, message="four mails")

    expected_to = [ADMIN["email"], "team@example.com", "lead@example.com"]
    by_subject = {m["subject"]: m for m in smtp_server.messages}
    assert len(smtp_server.messages) == 4
    for execution, outcome in ((failed, "failed"), (succeeded, "succeeded")):
        started = by_subject[f"[Trainyard] Cancer screening: training {execution['id']} started"]
        ended = by_subject[f"[Trainyard] Cancer screening: training {execution['id']} {outcome}"]
        for mail in (started, ended):
            assert sorted(mail["to"]) == sorted(expected_to)  # SMTP envelope: a set
            assert sorted(mail["message"]["To"].split(", ")) == sorted(expected_to)
            assert mail["from"] == "trainyard@example.com"

    failure = _body(by_subject[f"[Trainyard] Cancer screening: training {failed['id']} failed"]
                    ["message"])
    assert "no training batch files found in training_batch_files/" in failure
    assert f"http://trainyard.test/projects/cancer-screening/executions/{failed['id']}" \
        in failure
    success = _body(by_subject[
        f"[Trainyard] Cancer screening: training {succeeded['id']} succeeded"]["message"])
    assert "Model version: v1" in success and "accuracy" in success

    # with SMTP configured, the outbox records them as sent
    outbox = api.get("/outbox").get_json()["items"]
    assert {m["status"] for m in outbox} == {"sent"}


def test_a_mailed_one_time_link_is_not_kept_in_the_outbox(app, api, smtp_server):
    """The invitation and reset links reach their owners through SMTP, and the recorded copies
    (outbox, database) no longer hold them: reading those must not let an admin, or anyone who
    reads the database, sign in as someone else."""
    invited = api.post("/users", json={"email": "new@example.com", "name": "New One"})
    assert invited.status_code == 201
    assert api.post("/password-reset", json={"email": ADMIN["email"]}).status_code == 202
    wait_until(lambda: len(smtp_server.messages) >= 2, timeout=20, message="two mails")
    links = {}
    for mail in smtp_server.messages:
        body = _body(mail["message"])
        kind = "invite" if "/invite/" in body else "reset"
        links[kind] = body.strip().splitlines()[-1]
        assert links[kind].startswith(f"http://trainyard.test/{kind}/")

    stored = api.get("/outbox").get_json()["items"]
    assert {m["status"] for m in stored} == {"sent"} and len(stored) == 2
    for mail in stored:
        assert "trainyard.test/invite/" not in mail["body_text"]
        assert "trainyard.test/reset/" not in mail["body_text"]
        assert "[link removed: only the recipient has it]" in mail["body_text"]
    # the mailed links themselves still open their pages
    for link in links.values():
        assert app.test_client().get(link.removeprefix("http://trainyard.test")).status_code \
            == 200
