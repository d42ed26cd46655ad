"""What admins read: the audit log and the outbox."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.context import Context


def search_audit(ctx: Context, *, actor: str | None, action: str | None,
                 since: datetime | None, until: datetime | None, skip: int,
                 limit: int) -> tuple[list, int]:
    """Audit events newest first, filtered by actor e-mail, action and days (``until``
    inclusive); with the number of events that match."""
    return ctx.db.audit.search(actor=actor or None, action=action or None, since=since,
                               until=until + timedelta(days=1) if until else None,
                               skip=skip, limit=limit)


def outbox(ctx: Context, *, skip: int, limit: int) -> tuple[list, int]:
    """The mails sent or kept, newest first, with how many there are."""
    return ctx.db.mail.list(skip=skip, limit=limit), ctx.db.mail.count()


def check_database(ctx: Context) -> None:
    """Raise if the database does not answer."""
    ctx.db.users.count()
