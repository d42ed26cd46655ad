"""Live monitoring, alert rules, incidents and the webhook of a project: the use cases the API,
the pages, the client and the CLI share. The numbers themselves are computed in the background
(``thread_layer.monitoring``); these only read them."""

from __future__ import annotations

import math
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from entity.base import from_iso, utcnow
from entity.monitoring import GRANULARITIES, AlertRule, Incident
from entity.project import METRICS, Project, lower_is_better
from entity.webhook import Webhook
from exception_layer import BadRequest, NotFound, ValidationFailed
from services import resources
from services.context import Context
from thread_layer.alerts import default_rules
from thread_layer.monitoring import window_hours

#: the most points one answer holds
MAX_POINTS = 2000
#: the metrics that lie between 0 and 1
BOUNDED_METRICS = {"accuracy", "f1", "roc_auc"}
MAX_URL = 2000


def _moment(value: str | None, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = from_iso(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO-8601 date or time, e.g. 2026-12-04 or "
                         "2026-12-04T10:00:00Z.") from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment


def monitoring(ctx: Context, project: Project, *, version: str | None = None,
               since: str | None = None, until: str | None = None,
               granularity: str | None = None) -> dict:
    """The monitor points of ``project`` (``resources.Monitoring``): per UTC day or per run
    of the rolling window, of one version or all, ending after ``since`` and starting before
    ``until`` (default: the last 30 days).

    Raises:
        BadRequest: a parameter that is not a version number, a time or a granularity.
    """
    granularity = granularity or "day"
    if granularity not in GRANULARITIES:
        raise BadRequest("granularity is day or window.")
    number = None
    if version not in (None, ""):
        try:
            number = int(str(version).removeprefix("v"))
        except ValueError:
            raise BadRequest("version must be a whole number.") from None
    low, high = _moment(since, "from"), _moment(until, "to")
    if low is None:
        low = (high or utcnow()) - timedelta(days=30)
    points = [{"id": p.pop("_id"), **p} for p in ctx.db.monitor_points.list(
        project.id, granularity=granularity, version=number, since=low,
        until=high)[-MAX_POINTS:]]
    return {"project_id": project.id, "granularity": granularity,
            "window_hours": window_hours(project, ctx.platform.settings.get(
                "MONITORING_WINDOW_HOURS", 24)),
            "active_version": project.active_version, "points": points}


# -- alert rules ---------------------------------------------------------------------------

def list_rules(ctx: Context, project: Project) -> list[AlertRule]:
    """The project's alert rules (its defaults the first time)."""
    return ctx.db.alert_rules.for_project(project.id, lambda: default_rules(project))


def _most_drop(metric: str) -> float:
    return 1.0 if metric in BOUNDED_METRICS or metric == "r2" else 1e12


def _check_rule(project: Project, rule: AlertRule) -> None:
    """Refuse a rule whose fields do not fit its kind or the project, naming each field."""
    problems: dict[str, str] = {}
    t = rule.threshold
    metric = rule.metric or project.selection_metric
    if rule.kind == "no_traffic":
        if rule.hours is None:
            problems["hours"] = "How many hours without traffic open an incident (1 to 720)."
    elif t is None:
        problems["threshold"] = "A rule of this kind needs a threshold."
    elif not math.isfinite(t):
        problems["threshold"] = "A finite number."
    elif rule.kind in ("feature_drift", "prediction_drift") and not 0 < t <= 10:
        problems["threshold"] = "A PSI above 0 and at most 10 (0.25 is the usual drift line)."
    elif rule.kind == "error_rate" and not 0 <= t < 1:
        problems["threshold"] = "A share of failed requests from 0 up to (not including) 1."
    elif rule.kind == "metric_threshold" and metric in BOUNDED_METRICS and not 0 <= t <= 1:
        problems["threshold"] = f"{metric} lies between 0 and 1."
    elif rule.kind == "metric_threshold" and lower_is_better(metric) and t < 0:
        problems["threshold"] = f"{metric} is never negative."
    elif rule.kind == "metric_threshold" and metric == "r2" and not -1e6 <= t <= 1:
        problems["threshold"] = "r2 is at most 1."
    elif rule.kind == "metric_drop" and not 0 < t <= _most_drop(metric):
        problems["threshold"] = (f"A drop above 0 and at most {_most_drop(metric):g}."
                                 if _most_drop(metric) < 1e12 else "A drop above 0.")
    if rule.metric is not None and rule.metric not in METRICS[project.problem_type]:
        problems["metric"] = (f"A {project.problem_type} project's metrics are "
                              f"{', '.join(METRICS[project.problem_type])}.")
    if rule.feature is not None and rule.feature not in [
            c.name for c in project.schema.feature_columns]:
        problems["feature"] = "Not a feature column of the project's schema."
    if rule.feature is not None and rule.kind != "feature_drift":
        problems.setdefault("feature", "Only feature_drift rules name a feature.")
    if problems:
        raise ValidationFailed("Please correct the marked fields.", details=problems)


_RULE_FIELDS = ("kind", "threshold", "metric", "feature", "hours", "min_rows", "retrain",
                "enabled")


def create_rule(ctx: Context, project: Project, data: dict) -> AlertRule:
    """Add an alert rule (editors).

    Raises:
        ValidationFailed: a field is missing, of the wrong type or out of its range.
    """
    parsed = resources.parse(resources.AlertRuleInput, data)
    if parsed.kind is None:
        raise ValidationFailed("Please correct the marked fields.",
                               details={"kind": "Choose the kind of rule."})
    list_rules(ctx, project)  # the defaults first, so that they do not come after this one
    given = parsed.model_dump(exclude_unset=True)
    rule = AlertRule(project_id=project.id, **{k: v for k, v in given.items()
                                               if k in _RULE_FIELDS and v is not None})
    _check_rule(project, rule)
    ctx.db.alert_rules.add(rule)
    ctx.audit("alert_rule.create", project.slug, details={"rule": rule.id, "kind": rule.kind})
    return rule


def load_rule(ctx: Context, project: Project, rule_id: str) -> AlertRule:
    rule = ctx.db.alert_rules.get(project.id, rule_id)
    if rule is None:
        raise NotFound("No such alert rule.")
    return rule


def update_rule(ctx: Context, project: Project, rule_id: str, data: dict) -> AlertRule:
    """Change the fields of an alert rule that ``data`` gives (a null clears an optional one).

    Raises:
        NotFound: no such rule. ValidationFailed: a field is wrong; nothing is changed.
    """
    rule = load_rule(ctx, project, rule_id)
    parsed = resources.parse(resources.AlertRuleInput, data)
    for name, value in parsed.model_dump(exclude_unset=True).items():
        if name in ("kind", "retrain", "enabled") and value is None:
            continue
        setattr(rule, name, value)
    _check_rule(project, rule)
    ctx.db.alert_rules.save(rule)
    ctx.audit("alert_rule.update", project.slug, details={"rule": rule.id, "kind": rule.kind})
    return rule


def delete_rule(ctx: Context, project: Project, rule_id: str) -> None:
    """Delete an alert rule (its incidents stay, as history)."""
    load_rule(ctx, project, rule_id)
    ctx.db.alert_rules.delete(project.id, rule_id)
    ctx.audit("alert_rule.delete", project.slug, details={"rule": rule_id})


# -- incidents -----------------------------------------------------------------------------

def list_incidents(ctx: Context, project: Project, *, status: str | None = None,
                   page: int = 1, per_page: int = 50) -> tuple[list[Incident], int]:
    """The project's incidents, newest first."""
    if status not in (None, "", "open", "closed"):
        raise BadRequest("status is open or closed.")
    return ctx.db.incidents.list(project.id, status=status or None,
                                 skip=(page - 1) * per_page, limit=per_page)


def get_incident(ctx: Context, project: Project, incident_id: str) -> Incident:
    incident = ctx.db.incidents.get(project.id, incident_id)
    if incident is None:
        raise NotFound("No such incident.")
    return incident


# -- webhook -------------------------------------------------------------------------------

def check_webhook_url(url: str) -> str:
    """``url`` if it is an http(s) address with a host; else ValidationFailed on ``url``."""
    url = url.strip()
    problem = None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts, problem = None, "Not a valid address."
    if problem is None and parts.scheme not in ("http", "https"):
        problem = "Only http:// and https:// addresses can receive webhooks."
    elif problem is None and not parts.hostname:
        problem = "The address needs a host name."
    elif problem is None and (len(url) > MAX_URL or any(c.isspace() or ord(c) < 32
                                                        for c in url)):
        problem = f"An address of at most {MAX_URL} characters, without spaces."
    if problem:
        raise ValidationFailed("Please correct the marked fields.", details={"url": problem})
    return url


def find_webhook(ctx: Context, project: Project) -> Webhook | None:
    """The project's webhook, or None."""
    return ctx.db.webhooks.get(project.id)


def get_webhook(ctx: Context, project: Project) -> Webhook:
    webhook = find_webhook(ctx, project)
    if webhook is None:
        raise NotFound("This project has no webhook.")
    return webhook


def set_webhook(ctx: Context, project: Project, data: dict) -> tuple[Webhook, str | None]:
    """Create or change the project's webhook (owners). A new webhook, or ``new_secret``,
    makes a signing secret, answered this once (stored encrypted).

    Returns:
        the webhook and the new secret in clear (None when it was kept).
    Raises:
        ValidationFailed: the URL is not http(s), or a field has the wrong type.
    """
    parsed = resources.parse(resources.WebhookInput, data)
    url = check_webhook_url(parsed.url)
    existing = ctx.db.webhooks.get(project.id)
    secret = None
    if existing is None or parsed.new_secret:
        secret = "whsec_" + secrets.token_urlsafe(32)
        stored = ctx.platform.box.encrypt({"secret": secret})
    else:
        stored = existing.secret
    webhook = Webhook(project_id=project.id, url=url, secret=stored,
                      enabled=existing.enabled if parsed.enabled is None and existing
                      else parsed.enabled is not False,
                      created_at=existing.created_at if existing else utcnow())
    ctx.db.webhooks.put(webhook)
    ctx.audit("webhook.set", project.slug, details={"url": url,
                                                    "new_secret": secret is not None})
    return webhook, secret


def delete_webhook(ctx: Context, project: Project) -> None:
    get_webhook(ctx, project)
    ctx.db.webhooks.delete(project.id)
    ctx.audit("webhook.delete", project.slug)


def list_deliveries(ctx: Context, project: Project, *, page: int = 1,
                    per_page: int = 50) -> tuple[list, int]:
    """The project's webhook deliveries with their attempts, newest first."""
    return ctx.db.webhook_deliveries.list(project.id, skip=(page - 1) * per_page,
                                          limit=per_page)


# -- charts (the monitoring page draws them as inline SVG: no script, no chart library) ----

CHART_WIDTH, CHART_HEIGHT = 600, 160


def _value(point: dict, path: tuple):
    value = point
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def charts(points: list[dict], metric: str) -> list[dict]:
    """The time series of the monitoring page, scaled into a ``CHART_WIDTH`` x
    ``CHART_HEIGHT`` box: ``[{"name", "title", "series": [{"label", "css", "points": "x,y
    ...", "dots": [{"x", "y", "value", "at"}]}], "low", "high", "line": y | None,
    "first", "last"}]`` (points of one version, oldest first)."""
    specs = [
        ("volume", "Predictions", [("predictions", ("volume", "predictions")),
                                   ("labeled", ("volume", "labeled"))], None),
        ("latency", "Latency (ms)", [("p50", ("latency_ms", "p50")),
                                     ("p95", ("latency_ms", "p95"))], None),
        ("errors", "Real-time error rate", [("error rate", ("requests", "error_rate"))], None),
        ("metric", f"{metric} on labeled feedback", [(metric, ("metrics", metric))],
         ("training_metrics", metric if metric != "f1" else "f1_macro")),
        ("drift", "Drift (PSI)", [("largest feature PSI", ("drift", "max_psi")),
                                  ("predictions", ("drift", "prediction", "psi"))], 0.25),
    ]
    if not points:
        return []
    times = [p["end"] for p in points]
    step = CHART_WIDTH / max(len(points) - 1, 1)
    found = []
    for name, title, series, line in specs:
        values = [[_value(p, path) for p in points] for _, path in series]
        reference = (line if isinstance(line, float)
                     else _value(points[-1], line) if line else None)
        known = [v for vs in values for v in vs if v is not None] + \
            ([reference] if reference is not None else [])
        low, high = (min(known + [0.0]), max(known)) if known else (0.0, 1.0)
        high = high if high > low else low + 1.0

        def y(v, low=low, high=high):
            return round(CHART_HEIGHT - (v - low) / (high - low) * (CHART_HEIGHT - 10) - 5, 1)

        drawn = []
        for index, ((label, _), vs) in enumerate(zip(series, values, strict=True)):
            dots = [{"x": round(i * step, 1), "y": y(v), "value": v, "at": times[i]}
                    for i, v in enumerate(vs) if v is not None]
            drawn.append({"label": label, "css": f"series-{index}",
                          "points": " ".join(f"{d['x']},{d['y']}" for d in dots),
                          "dots": dots})
        found.append({"name": name, "title": title, "series": drawn,
                      "low": round(low, 4), "high": round(high, 4),
                      "line": y(reference) if reference is not None else None,
                      "line_value": reference, "first": times[0], "last": times[-1],
                      "empty": not any(s["dots"] for s in drawn)})
    return found
