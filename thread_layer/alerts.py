"""Alert rules judged on monitor points: incidents, their mails, webhooks and retraining.

After each monitoring computation of a project, :meth:`Alerts.evaluate` judges every enabled
rule on the active version's window point. A rule that fires with no open incident for it
opens one: audited (``incident.open``), mailed once to the project's people, posted to the
project's webhook, and, when the rule says ``retrain``, handed to
``thread_layer.triggers.start_retraining``. While it stays open a reminder is mailed every
``incident_reminder_hours`` (the project's setting, 24 by default, 0: none). When the rule's
condition clears (it is judged and does not fire) the incident closes, with a closing mail
and a webhook post; a rule without enough data to judge leaves its incident as it is.
Incidents of a version that is no longer active close as well.

Webhook deliveries are stored first and posted later by :meth:`Alerts.deliver_due`, from the
monitoring thread: each attempt is claimed in the database (one process posts it), the body is
signed with HMAC-SHA256 under the project's secret (header ``X-Trainyard-Signature:
sha256=<hex>``), and a failure (no answer, or a status other than 2xx) is tried again after
each step of the backoff, then marked failed. Every attempt is kept in the delivery log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from entity.base import from_iso, to_iso
from entity.database import Database
from entity.monitoring import AlertRule, Incident
from entity.project import Project, lower_is_better
from entity.security import AuditEvent
from entity.webhook import Delivery
from exception_layer import PlatformError
from integration.credentials import SecretBox
from integration.notifications import Notifier
from thread_layer.promotion import metric_value

log = logging.getLogger(__name__)

#: seconds before each retry of a webhook delivery; after the last, it is marked failed
BACKOFF_SECONDS = (10, 60, 300, 1800, 7200)
WEBHOOK_TIMEOUT_SECONDS = 10
REMINDER_HOURS = 24
#: the fewest records, labeled rows and requests a rule judges unless it says otherwise
MIN_ROWS = {"feature_drift": 50, "prediction_drift": 50, "metric_threshold": 30,
            "metric_drop": 30, "error_rate": 20, "no_traffic": 0}
#: a delivery claimed longer ago than this was abandoned by a dead process
STALE_SENDING = timedelta(minutes=5)
#: retrain(project, incident) -> what was started ({"execution_id"...}) or None
Retrain = Callable[[Project, Incident], dict | None]


def default_rules(project: Project) -> list[AlertRule]:
    """The rules a project starts with: a feature drifting (PSI 0.25, the drift checks' own
    line), the project's metric down by 0.1 from its training value, more than 5 % of
    real-time requests failing, and no traffic for 24 hours after some was seen."""
    return [AlertRule(project_id=project.id, kind="feature_drift", threshold=0.25),
            AlertRule(project_id=project.id, kind="metric_drop",
                      metric=project.selection_metric, threshold=0.1),
            AlertRule(project_id=project.id, kind="error_rate", threshold=0.05),
            AlertRule(project_id=project.id, kind="no_traffic", hours=24)]


def judge(rule: AlertRule, project: Project, point: dict,
          now: datetime) -> tuple[bool | None, float | None, str]:
    """Whether ``rule`` fires on ``point``: (True | False | None when there is too little to
    judge, the value judged, a one-line summary)."""
    least = rule.min_rows if rule.min_rows is not None else MIN_ROWS[rule.kind]
    volume = point.get("volume", {})
    if rule.kind in ("feature_drift", "prediction_drift"):
        drift = point.get("drift", {})
        if rule.kind == "feature_drift":
            found = {name: f for name, f in drift.get("features", {}).items()
                     if rule.feature in (None, name)}
        else:
            found = {"predictions": drift["prediction"]} if drift.get("prediction") else {}
        judged = {n: f["psi"] for n, f in found.items() if f.get("psi") is not None
                  and f["status"] != "insufficient_data" and f.get("rows", 0) >= least}
        if not judged:
            return None, None, ""
        name = max(judged, key=judged.get)
        value = judged[name]
        over = sorted(n for n, v in judged.items() if v >= rule.threshold)
        what = "the predictions" if rule.kind == "prediction_drift" else \
            (", ".join(over[:5]) + (f" and {len(over) - 5} more" if len(over) > 5 else "")
             if over else name)
        return value >= rule.threshold, value, f"Drift of {what}: PSI {value:.3g}"
    if rule.kind in ("metric_threshold", "metric_drop"):
        metric = rule.metric or project.selection_metric
        if volume.get("labeled", 0) < max(least, 1):
            return None, None, ""
        value = metric_value(point.get("metrics", {}), metric)
        if value is None:
            return None, None, ""
        lower = lower_is_better(metric)
        if rule.kind == "metric_threshold":
            fires = value > rule.threshold if lower else value < rule.threshold
            return fires, value, f"{metric} on labeled feedback is {value:.4g}"
        trained = metric_value(point.get("training_metrics", {}), metric)
        if trained is None:
            return None, None, ""
        drop = value - trained if lower else trained - value
        return (drop > rule.threshold, round(drop, 6),
                f"{metric} on labeled feedback is {value:.4g}, {drop:+.4g} worse than at "
                f"training ({trained:.4g})")
    if rule.kind == "error_rate":
        requests = point.get("requests", {})
        if requests.get("requests", 0) < max(least, 1) or requests.get("error_rate") is None:
            return None, None, ""
        rate = requests["error_rate"]
        return rate > rule.threshold, rate, f"{rate:.1%} of real-time requests failed"
    if rule.kind == "no_traffic":
        last = point.get("last_record_at")
        if not last:
            return None, None, ""
        quiet = (now - from_iso(last)).total_seconds() / 3600
        return (quiet >= rule.hours, round(quiet, 2),
                f"No predictions for {quiet:.1f} hours")
    return None, None, ""


def signature(secret: str, body: bytes) -> str:
    """The ``X-Trainyard-Signature`` header of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook answer that redirects counts as a failure: the receiver is the URL given."""

    def redirect_request(self, *args, **kwargs):
        return None


def post(url: str, body: bytes, headers: dict, timeout: float) -> int:
    """POST ``body`` to ``url``; the answer's status code (raises on no answer)."""
    opener = urllib.request.build_opener(_NoRedirects)
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 - http(s)
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with opener.open(request, timeout=timeout) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


class Alerts:
    """Judges a project's rules and carries out what follows.

    Args:
        db: the database.
        notifier: the mail.
        box: decrypts the webhook secrets.
        retrain: starts a retraining for an incident (``Retrain``); None: retraining is not
            available in this process.
        backoff: seconds before each retry of a webhook delivery.
        timeout: seconds a webhook receiver has to answer.
    """

    def __init__(self, db: Database, notifier: Notifier, box: SecretBox, *,
                 retrain: Retrain | None = None, backoff: Sequence[float] = BACKOFF_SECONDS,
                 timeout: float = WEBHOOK_TIMEOUT_SECONDS):
        self.db, self.notifier, self.box = db, notifier, box
        self.retrain, self.backoff, self.timeout = retrain, tuple(backoff), timeout

    # -- rules -> incidents -------------------------------------------------------------

    def recipients(self, project: Project) -> list[str]:
        """The project's recipients and its owner, without repeats."""
        owner = self.db.users.get(project.owner_id)
        return Notifier.recipients_for(project, owner.email if owner else None)

    def evaluate(self, project: Project, points: list[dict], now: datetime) -> list[Incident]:
        """Judge the project's rules on the active version's window point among ``points``;
        returns the incidents opened, reminded or closed."""
        touched: list[Incident] = []
        for stale in self.db.incidents.list(project.id, status="open")[0]:
            if stale.version != project.active_version:
                touched.append(self._close(project, stale, now, "the version is no longer "
                                                                  "active"))
        point = next((p for p in points if p["granularity"] == "window"
                      and p["version"] == project.active_version), None)
        if point is None:
            return touched
        rules = self.db.alert_rules.for_project(project.id, lambda: default_rules(project))
        for rule in rules:
            if not rule.enabled:
                continue
            fires, value, summary = judge(rule, project, point, now)
            incident = self.db.incidents.open_for(project.id, rule.id, point["version"])
            if fires and incident is None:
                touched.append(self._open(project, rule, point, value, summary, now))
            elif fires:
                incident.value, incident.summary = value, summary
                if self._reminder_due(project, incident, now):
                    incident.reminded_at, incident.reminders = now, incident.reminders + 1
                    self.notifier.incident_event("reminder", project, incident,
                                                 self.recipients(project))
                    self._post(project, "incident.reminder", incident)
                    touched.append(incident)
                self.db.incidents.save(incident)
            elif fires is False and incident is not None:
                touched.append(self._close(project, incident, now, "the condition cleared"))
        return touched

    def _reminder_due(self, project: Project, incident: Incident, now: datetime) -> bool:
        hours = project.settings.get("incident_reminder_hours")
        hours = REMINDER_HOURS if hours is None else int(hours)
        last = incident.reminded_at or incident.mailed_at or incident.opened_at
        return bool(hours) and now - last >= timedelta(hours=hours)

    def _audit(self, action: str, project: Project, incident: Incident) -> None:
        self.db.audit.add(AuditEvent(action=action, actor_id=None, actor_email=None,
                                     target=project.slug,
                                     details={"incident": incident.id, "kind": incident.kind,
                                              "version": incident.version,
                                              "summary": incident.summary}))

    def _open(self, project: Project, rule: AlertRule, point: dict, value, summary: str,
              now: datetime) -> Incident:
        incident = Incident(project_id=project.id, rule_id=rule.id, kind=rule.kind,
                            version=point["version"], summary=summary, value=value,
                            threshold=rule.hours if rule.kind == "no_traffic"
                            else rule.threshold,
                            details={"point": point["_id"], "retrain": rule.retrain},
                            opened_at=now, mailed_at=now)
        self.db.incidents.add(incident)
        self._audit("incident.open", project, incident)
        if rule.retrain and self.retrain is not None:
            try:
                incident.retraining = self.retrain(project, incident)
            except PlatformError as exc:  # refused, e.g. no training files: say why
                incident.retraining = {"started": False, "reason": exc.message}
            except Exception:  # noqa: BLE001 - the incident stands even if retraining fails
                log.exception("Retraining for incident %s could not start", incident.id)
                incident.retraining = {"error": "The retraining could not start."}
            if incident.retraining is None:
                incident.retraining = {"started": False}
            self.db.incidents.save(incident)
        self.notifier.incident_event("opened", project, incident, self.recipients(project))
        self._post(project, "incident.opened", incident)
        log.info("Incident %s opened on %s: %s", incident.id, project.slug, summary)
        return incident

    def _close(self, project: Project, incident: Incident, now: datetime,
               why: str) -> Incident:
        incident.status, incident.closed_at = "closed", now
        incident.details = {**incident.details, "closed_because": why}
        self.db.incidents.save(incident)
        self._audit("incident.close", project, incident)
        self.notifier.incident_event("closed", project, incident, self.recipients(project))
        self._post(project, "incident.closed", incident)
        return incident

    # -- webhooks -----------------------------------------------------------------------

    def _post(self, project: Project, event: str, incident: Incident) -> Delivery | None:
        webhook = self.db.webhooks.get(project.id)
        if webhook is None or not webhook.enabled:
            return None
        body = json.dumps({"event": event,
                           "project": {"id": project.id, "slug": project.slug,
                                       "name": project.name},
                           "incident": incident.to_public(),
                           "at": to_iso(incident.closed_at or incident.reminded_at
                                        or incident.opened_at)}, sort_keys=True)
        return self.db.webhook_deliveries.add(Delivery(
            project_id=project.id, event=event, body=body, url=webhook.url,
            incident_id=incident.id, next_attempt_at=incident.closed_at
            or incident.reminded_at or incident.opened_at))

    def deliver_due(self, now: datetime) -> list[Delivery]:
        """Post every delivery that is due (each claimed first); returns those attempted."""
        self.db.webhook_deliveries.release_stale(now - STALE_SENDING)
        done = []
        for delivery in self.db.webhook_deliveries.due(now):
            if self.db.webhook_deliveries.claim(delivery, now):
                done.append(self.attempt(delivery, now))
        return done

    def attempt(self, delivery: Delivery, now: datetime) -> Delivery:
        """Post ``delivery`` once, and record the attempt and what comes next."""
        webhook = self.db.webhooks.get(delivery.project_id)
        number = len(delivery.attempts) + 1
        record = {"attempt": number, "at": to_iso(now), "status_code": None, "error": None}
        if webhook is None or not webhook.enabled:
            record["error"] = "The project has no webhook any more."
            delivery.status, delivery.next_attempt_at = "failed", None
        else:
            body = delivery.body.encode()
            secret = self.box.decrypt(webhook.secret).get("secret", "")
            headers = {"X-Trainyard-Event": delivery.event,
                       "X-Trainyard-Delivery": delivery.id,
                       "X-Trainyard-Signature": signature(secret, body)}
            try:
                record["status_code"] = post(webhook.url, body, headers, self.timeout)
            except Exception as exc:  # noqa: BLE001 - any failure to reach it is retried
                record["error"] = f"{type(exc).__name__}: no answer from the receiver."
            ok = record["status_code"] is not None and 200 <= record["status_code"] < 300
            if ok:
                delivery.status, delivery.next_attempt_at = "delivered", None
            elif number <= len(self.backoff):
                delivery.status = "pending"
                delivery.next_attempt_at = now + timedelta(seconds=self.backoff[number - 1])
            else:
                delivery.status, delivery.next_attempt_at = "failed", None
        delivery.attempts = [*delivery.attempts, record]
        self.db.webhook_deliveries.finish(delivery)
        return delivery


def retrainer(db: Database, runner) -> Retrain:
    """The ``retrain`` hook of :class:`Alerts`: ``thread_layer.triggers.start_retraining``
    with trigger ``alert`` (its policy decides whether a retraining starts now)."""

    def retrain(project: Project, incident: Incident) -> dict | None:
        from thread_layer import triggers

        execution = triggers.start_retraining(
            db, runner, project, trigger="alert", reason=incident.summary,
            detail={"incident_id": incident.id, "rule_id": incident.rule_id,
                    "kind": incident.kind, "version": incident.version})
        return {"started": True, "execution_id": execution.id} if execution else None

    return retrain
