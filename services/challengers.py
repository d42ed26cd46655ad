"""Challengers: model versions trained while another one was active, waiting for a person's
approval (the ``manual`` promotion policy) or already decided. The comparison and the automatic
decision are ``thread_layer.promotion``'s; this is the person's side."""

from __future__ import annotations

from entity.base import to_iso, utcnow
from entity.mail_message import MailMessage
from entity.model_version import ModelVersion
from entity.project import Project
from exception_layer import Conflict
from project_library.model_artifacts import verify_version_files
from services.context import Context
from services.models import load
from thread_layer.promotion import record_decision


def list_for_project(ctx: Context, project: Project, status: str | None = None
                     ) -> list[ModelVersion]:
    """The project's challengers (those with ``status``, e.g. ``pending``), newest first."""
    return ctx.db.model_versions.list_challengers(project.id, status)


def _decide(ctx: Context, project: Project, number, status: str) -> ModelVersion:
    version = load(ctx, project, number)
    if version.challenge_status != "pending":
        raise Conflict(f"v{version.version} is not a challenger waiting for approval"
                       + (f" (it was {version.challenge_status})."
                          if version.challenge_status else "."))
    current = ctx.db.projects.get(project.id)
    if status == "approved":
        verify_version_files(ctx.platform.resolver.files(project), version)
    who = getattr(ctx.user, "name", None) or "someone"
    challenge = {**version.challenge, "status": status, "decided_at": to_iso(utcnow()),
                 "decided_by": getattr(ctx.user, "id", None),
                 "reason": f"{version.challenge.get('reason', '')} "
                           f"{'Approved' if status == 'approved' else 'Rejected'} by {who}."
                           .strip()}
    if not ctx.db.model_versions.set_challenge(project.id, version.version, challenge,
                                               expected_status="pending"):
        raise Conflict(f"v{version.version} was decided meanwhile.")
    if status == "approved":
        ctx.db.projects.set_versions(project.id, active_version=version.version)
    record_decision(ctx.db, current, version.version, challenge, actor=ctx.user,
                    address=ctx.address)
    _mail(ctx, current, version, challenge)
    version.challenge = challenge
    return version


def approve(ctx: Context, project: Project, number) -> ModelVersion:
    """Promote the waiting challenger ``number`` (its files verified first), recording and
    mailing the decision.

    Raises:
        NotFound: no such version. Conflict: it is not waiting for approval (or another
            person decided first). ArtifactIntegrityError (409): a file changed.
    """
    return _decide(ctx, project, number, "approved")


def reject(ctx: Context, project: Project, number) -> ModelVersion:
    """Keep the active model: the waiting challenger ``number`` is rejected (recorded and
    mailed). Raises as :func:`approve`."""
    return _decide(ctx, project, number, "rejected")


def _mail(ctx: Context, project: Project, version: ModelVersion, challenge: dict) -> None:
    notifier = ctx.platform.notifier
    verb = "approved and promoted" if challenge["status"] == "approved" else "rejected"
    url = f"{notifier.public_url}/projects/{project.slug}/models/{version.version}"
    lines = [f"Challenger v{version.version} of project {project.name} was {verb}.",
             challenge.get("reason", ""), "", f"Model: {url}"]
    notifier.deliver(MailMessage(
        subject=f"[Trainyard] {project.name}: challenger v{version.version} {verb}",
        recipients=notifier.recipients_for(project, getattr(ctx.user, "email", None)),
        body_text="\n".join(lines)))
