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
