"""Mail about executions and incidents: sent through SMTP when configured, otherwise kept in
the outbox."""

from __future__ import annotations

import logging
from collections.abc import Callable
from html import escape
from typing import Protocol

from entity.execution import Execution
from entity.mail_message import MailMessage, MailRepository
from entity.monitoring import Incident
from entity.project import Project

log = logging.getLogger("trainyard.mail")

#: send(message) delivers through SMTP and raises on failure
Sender = Callable[[MailMessage], None]


class ExecutionMailText(Protocol):
    """What the mails of an execution say about its kind (an execution kind of
    ``thread_layer.kinds`` is one; this layer sits below it and only reads these two)."""

    label: str

    def success_lines(self, result: dict) -> list[str]:
        """The lines that sum up a successful execution's ``result``."""


class Notifier:
    """Builds and delivers the mails of the platform.

    Args:
        mail: where every message is recorded (the outbox page reads it).
        send: the SMTP sender, or None when no ``MAIL_SERVER`` is configured (messages are then
            kept in the outbox for admins to read).
        public_url: Trainyard's address, for links in mails.
    """

    def __init__(self, mail: MailRepository, send: Sender | None, public_url: str):
        self.mail = mail
        self.send = send
        self.public_url = public_url.rstrip("/")

    def deliver(self, message: MailMessage) -> MailMessage:
        """Send ``message`` (or keep it) and record the outcome; never raises on SMTP errors.

        The record of a sent mail leaves out its ``secrets`` (one-time links): only the
        recipient has them. A mail kept or failed keeps them, for an admin to pass on.
        """
        if not message.recipients:
            return message
        if self.send is not None:
            try:
                self.send(message)
                message.status = "sent"
            except Exception as exc:  # noqa: BLE001 - a mail problem must not fail the caller
                message.status = "failed"
                message.error = f"{type(exc).__name__}: the SMTP server refused the message."
                log.warning("Could not send mail %r: %s", message.subject, exc)
        self.mail.add(message.without_secrets() if message.status == "sent" else message)
        return message

    # -- executions ---------------------------------------------------------------------

    @staticmethod
    def recipients_for(project: Project, starter_email: str | None) -> list[str]:
        """The starter, then the project's recipients, without repeats."""
        seen: list[str] = []
        for address in [starter_email, *project.recipients]:
            if address and address.lower() not in (s.lower() for s in seen):
                seen.append(address)
        return seen

    def execution_url(self, project: Project, execution: Execution) -> str:
        return f"{self.public_url}/projects/{project.slug}/executions/{execution.id}"

    def execution_event(self, event: str, project: Project, execution: Execution,
                        starter_email: str | None,
                        kind: ExecutionMailText | None = None) -> MailMessage:
        """Mail the start, success or failure of ``execution``.

        Args:
            event: ``started``, ``succeeded``, ``failed``, ``cancelled`` or ``interrupted``.
            kind: the execution's kind, for its label and the lines of its success (None: a
                kind this process does not know, named as stored, with no success lines).
        """
        what = kind.label if kind is not None else execution.kind
        url = self.execution_url(project, execution)
        subject = f"[Trainyard] {project.name}: {what.lower()} {execution.id} {event}"
        lines = [f"{what} {execution.id} of project {project.name} {event}."]
        if event == "succeeded" and kind is not None:
            lines += kind.success_lines(execution.result or {})
        elif event in ("failed", "interrupted", "cancelled") and execution.error:
            lines += ["", "What went wrong:", execution.error]
        if execution.duration_seconds is not None and event != "started":
            lines.append(f"Duration: {execution.duration_seconds} s")
        lines += ["", f"Log: {url}"]
        text = "\n".join(lines)
        html = "<p>" + "<br>".join(escape(line) for line in lines[:-1]) + \
            f'</p><p><a href="{escape(url)}">Open the log</a></p>'
        message = MailMessage(subject=subject,
                              recipients=self.recipients_for(project, starter_email),
                              body_text=text, body_html=html)
        return self.deliver(message)

    # -- incidents ----------------------------------------------------------------------

    def monitoring_url(self, project: Project) -> str:
        return f"{self.public_url}/projects/{project.slug}/monitoring"

    def incident_event(self, event: str, project: Project, incident: Incident,
                       recipients: list[str]) -> MailMessage:
        """Mail the opening, a reminder or the closing of ``incident``.

        Args:
            event: ``opened``, ``reminder`` or ``closed``.
            recipients: the project's people.
        """
        url = self.monitoring_url(project)
        what = {"opened": "opened", "reminder": "still open", "closed": "closed"}[event]
        subject = f"[Trainyard] {project.name}: incident {what}: {incident.summary}"
        lines = [f"An incident of project {project.name} is {what}.", "",
                 incident.summary, f"Model version: {incident.version}",
                 f"Opened: {incident.opened_at:%Y-%m-%d %H:%M} UTC"]
        if incident.value is not None:
            lines.append(f"Value: {incident.value:g} (threshold {incident.threshold:g})"
                         if incident.threshold is not None else f"Value: {incident.value:g}")
        if event == "closed" and incident.closed_at is not None:
            lines.append(f"Closed: {incident.closed_at:%Y-%m-%d %H:%M} UTC "
                         "(the condition cleared)")
        if incident.retraining and incident.retraining.get("execution_id"):
            lines.append(f"Retraining started: {incident.retraining['execution_id']}")
        lines += ["", f"Monitoring: {url}"]
        text = "\n".join(lines)
        html = "<p>" + "<br>".join(escape(line) for line in lines[:-1]) + \
            f'</p><p><a href="{escape(url)}">Open the monitoring page</a></p>'
        return self.deliver(MailMessage(subject=subject, recipients=recipients,
                                        body_text=text, body_html=html))
