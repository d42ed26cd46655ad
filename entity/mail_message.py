"""Mail messages kept in the outbox (when no SMTP server is configured) and their repository."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from entity.base import from_iso, new_sortable_id, to_iso, utcnow
from entity.store import Collection

#: what the recorded copy of a sent mail shows instead of its one-time link
SECRET_REMOVED = "[link removed: only the recipient has it]"


@dataclass
class MailMessage:
    subject: str
    recipients: list[str]
    body_text: str
    body_html: str = ""
    status: str = "kept"  # kept (no SMTP configured) | sent | failed
    error: str | None = None
    id: str = field(default_factory=new_sortable_id)
    created_at: datetime = field(default_factory=utcnow)
    #: text only its recipients may read (a one-time link): never stored once the mail is sent
    secrets: list[str] = field(default_factory=list, repr=False, compare=False)

    def without_secrets(self) -> MailMessage:
        """A copy with each secret replaced by a note saying it was mailed."""
        text, html = self.body_text, self.body_html
        for secret in self.secrets:
            text = text.replace(secret, SECRET_REMOVED)
            html = html.replace(secret, SECRET_REMOVED)
        return replace(self, body_text=text, body_html=html, secrets=[])

    def to_document(self) -> dict:
        return {"_id": self.id, "subject": self.subject, "recipients": self.recipients,
                "body_text": self.body_text, "body_html": self.body_html,
                "status": self.status, "error": self.error,
                "created_at": to_iso(self.created_at)}

    @classmethod
    def from_document(cls, doc: dict) -> MailMessage:
        return cls(id=doc["_id"], subject=doc["subject"], recipients=doc["recipients"],
                   body_text=doc["body_text"], body_html=doc.get("body_html", ""),
                   status=doc.get("status", "kept"), error=doc.get("error"),
                   created_at=from_iso(doc["created_at"]))

    def to_public(self) -> dict:
        doc = self.to_document()
        doc["id"] = doc.pop("_id")
        return doc


class MailRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["created_at"])

    def add(self, message: MailMessage) -> MailMessage:
        self.collection.insert(message.to_document())
        return message

    def list(self, *, skip: int = 0, limit: int = 50) -> list[MailMessage]:
        docs = self.collection.find(sort=[("created_at", -1)], skip=skip, limit=limit)
        return [MailMessage.from_document(d) for d in docs]

    def count(self) -> int:
        return self.collection.count()
