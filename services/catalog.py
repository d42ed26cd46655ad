"""The model catalog: tags, publishing, model cards, search, consumers with keys and quotas,
their predictions and scores, usage and templates.

Who sees a listing is its ``audience`` (``entity.catalog``): search filters on it in the
database. A consumer key (``tyc_...``) is not a login: it authenticates only the consumer
routes of its own listing (``consumer_for_key``), checked against the database at every call,
so revoking it, unpublishing or deleting the listing, or the subscriber losing sight of the
listing stops it at once.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from datetime import timedelta

from entity.base import to_iso, utcnow
from entity.catalog import (
    LISTING_STATUSES,
    MAX_PER_DAY,
    MAX_PER_MINUTE,
    VISIBILITIES,
    Listing,
    Subscription,
    audience_of,
    metric_field,
    normalise_tag,
    normalise_tags,
    refresh_listings,
)
from entity.project import PROBLEM_TYPES, Project, lower_is_better
from exception_layer import (
    AccessDenied,
    BadRequest,
    Conflict,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from services import predictions, projects
from services.access import require_user
from services.context import Context

MAX_TITLE = 100
MAX_SUMMARY = 500
MAX_README = 50_000
DEFAULT_PER_MINUTE = 60
DEFAULT_PER_DAY = 10_000
#: the most records one score call takes (as many as a prediction)
MAX_SCORE_RECORDS = 10_000
SORTS = ("relevance", "fresh", "title")
_METRIC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|=|>|<)\s*"
                     r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_OPS = {">=": "$gte", "<=": "$lte", ">": "$gt", "<": "$lt", "=": "$gte", "==": "$gte"}


# -- tags --------------------------------------------------------------------------------------

def set_project_tags(ctx: Context, project: Project, tags) -> list[str]:
    """Replace a project's tags (normalised); its listings follow.

    Raises:
        ValidationFailed: not a list, too many, or a bad tag (``details.tags``).
    """
    tags = normalise_tags(tags)
    project.settings = {**project.settings, "tags": tags}
    ctx.db.projects.save(project)
    refresh_listings(ctx.db, project.id)
    ctx.audit("project.tags", project.slug, details={"tags": tags})
    return tags


def project_tags(project: Project) -> list[str]:
    return list(project.settings.get("tags") or [])


def set_version_tags(ctx: Context, project: Project, number, tags) -> list[str]:
    """Replace the tags of model version ``number``; listings answering with it follow.

    Raises:
        NotFound: no such version. ValidationFailed: a bad tag.
    """
    from services.models import load

    version = load(ctx, project, number)
    tags = normalise_tags(tags)
    ctx.db.model_versions.set_tags(project.id, version.version, tags)
    refresh_listings(ctx.db, project.id)
    ctx.audit("model.tags", project.slug, details={"version": version.version, "tags": tags})
    return tags


# -- Markdown ----------------------------------------------------------------------------------

#: the HTML a rendered readme may hold: Markdown's own output, nothing a script can ride on
ALLOWED_TAGS = {"a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3",
                "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong",
                "table", "tbody", "td", "th", "thead", "tr", "ul"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"},
                      "th": {"style"}, "td": {"style"}}
URL_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str) -> str:
    """A readme as safe HTML: markdown-it-py (CommonMark plus tables, raw HTML off, so any
    HTML in the text is shown as text), then nh3 keeps only :data:`ALLOWED_TAGS` and links to
    ``http``, ``https`` and ``mailto`` (no ``javascript:``, no ``data:``, no ``on*``)."""
    import nh3
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(text or "")
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes=URL_SCHEMES, link_rel="noopener noreferrer nofollow",
                     filter_style_properties={"text-align"})


# -- publishing --------------------------------------------------------------------------------

def _team_ids(ctx: Context, raw) -> list[str]:
    """Team ids (or slugs) that exist, for a listing's ``teams``."""
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise ValidationFailed("Please correct the marked fields.", details={
            "teams": "A list of team ids."})
    repo = getattr(ctx.db, "teams", None)
    found, unknown = [], []
    for ref in dict.fromkeys(raw):
        team = (repo.get(ref) or repo.get_by_slug(ref)) if repo is not None else None
        (found if team is not None else unknown).append(team.id if team else ref)
    if unknown:
        raise ValidationFailed("Please correct the marked fields.", details={
            "teams": f"No such team: {', '.join(unknown[:5])}."})
    return found


def _listing_fields(ctx: Context, project: Project, data: dict, *, creating: bool) -> dict:
    """The owner's choices in ``data`` (a ``ListingInput``), checked; one message per field."""
    errors: dict[str, str] = {}
    fields: dict = {}

    def text(name: str, limit: int, *, one_line: bool, required: bool = False):
        if name not in data:
            if required:
                errors[name] = "Required."
            return
        value = data[name]
        if not isinstance(value, str):
            errors[name] = "Must be text."
        elif required and not value.strip():
            errors[name] = "Required."
        elif len(value) > limit:
            errors[name] = f"At most {limit} characters."
        elif one_line and any(ord(c) < 32 for c in value):
            errors[name] = "One line, without control characters."
        else:
            fields[name] = value.strip() if one_line else value

    text("title", MAX_TITLE, one_line=True, required=creating)
    text("summary", MAX_SUMMARY, one_line=False)
    text("readme", MAX_README, one_line=False)
    if "visibility" in data:
        if data["visibility"] not in VISIBILITIES:
            errors["visibility"] = f"Choose one of {', '.join(VISIBILITIES)}."
        else:
            fields["visibility"] = data["visibility"]
    if "teams" in data:
        try:
            fields["teams"] = _team_ids(ctx, data["teams"])
        except ValidationFailed as exc:
            errors.update(exc.details)
    if "template" in data:
        if not isinstance(data["template"], bool):
            errors["template"] = "true or false."
        else:
            fields["template"] = data["template"]
    if "pinned_version" in data:
        pinned = data["pinned_version"]
        if pinned is not None and (isinstance(pinned, bool) or not isinstance(pinned, int)):
            errors["pinned_version"] = "A version number, or null to follow the active one."
        elif pinned is not None and ctx.db.model_versions.get(project.id, pinned) is None:
            errors["pinned_version"] = f"Model version v{pinned} does not exist."
        else:
            fields["pinned_version"] = pinned
    if "tags" in data:
        try:
            fields["tags"] = normalise_tags(data["tags"])
        except ValidationFailed as exc:
            errors.update(exc.details)
    if "status" in data:
        if data["status"] not in LISTING_STATUSES:
            errors["status"] = "published or unpublished."
        else:
            fields["status"] = data["status"]
    if errors:
        raise ValidationFailed("Please correct the marked fields.", details=errors)
    return fields


def publish(ctx: Context, project: Project, data: dict) -> Listing:
    """Publish a project's model to the catalog (the project's owner): a ``ListingInput``.

    Raises:
        ValidationFailed: a field is wrong (teams visibility without teams, among others).
        Conflict: the project has no model version to answer with.
    """
    require_user(ctx)
    fields = _listing_fields(ctx, project, data, creating=True)
    if fields.get("visibility") == "teams" and not fields.get("teams"):
        raise ValidationFailed("Please correct the marked fields.", details={
            "teams": "Name at least one team for a listing visible to chosen teams."})
    if not fields.get("pinned_version") and project.active_version is None:
        raise Conflict("The project has no active model version to publish: train it first.")
    listing = Listing(project_id=project.id, owner_id=project.owner_id, **fields)
    ctx.db.listings.add(listing)
    refresh_listings(ctx.db, project.id)
    ctx.audit("catalog.publish", listing.id, details={"project": project.slug,
                                                      "visibility": listing.visibility})
    return ctx.db.listings.get(listing.id)


def update_listing(ctx: Context, listing: Listing, data: dict) -> Listing:
    """Change a listing (its owner): any field of ``ListingInput``, and ``status`` to
    unpublish (every key stops) or publish again."""
    project = ctx.db.projects.get(listing.project_id)
    fields = _listing_fields(ctx, project, data, creating=False)
    for key, value in fields.items():
        setattr(listing, key, value)
    if ("visibility" in fields or "teams" in fields) and listing.visibility == "teams" and \
            not listing.teams:
        raise ValidationFailed("Please correct the marked fields.", details={
            "teams": "Name at least one team for a listing visible to chosen teams."})
    ctx.db.listings.save(listing)
    refresh_listings(ctx.db, project.id)
    ctx.audit("catalog.update", listing.id, details={"fields": sorted(fields)})
    return ctx.db.listings.get(listing.id)


def delete_listing(ctx: Context, listing: Listing) -> None:
    """Delete a listing with its subscriptions (every key stops) and their usage."""
    ctx.db.listings.delete(listing.id)
    ctx.db.subscriptions.delete_for_listing(listing.id)
    ctx.db.consumer_calls.delete_for_listing(listing.id)
    ctx.audit("catalog.delete", listing.id)


def may_see(ctx: Context, listing: Listing) -> bool:
    user = ctx.user
    if getattr(user, "is_admin", False):
        return True
    if listing.status != "published":
        return _owns(ctx, listing)
    audience = set(listing.snapshot.get("audience") or [])
    return bool(audience & set(audience_of(user))) or _owns(ctx, listing)


def _owns(ctx: Context, listing: Listing) -> bool:
    user = ctx.user
    if user is None or getattr(user, "id", None) is None:
        return False
    project = ctx.db.projects.get(listing.project_id)
    return project is not None and project.has_role(user, "owner")


def load_listing(ctx: Context, listing_id: str, *, need: str = "see") -> Listing:
    """The listing ``listing_id`` if the caller may see it (``need="see"``; anonymous callers
    see public listings) or owns its project (``need="own"``).

    Raises:
        NotFound: no such listing, or hidden from the caller. AccessDenied: seen, not owned.
        Unauthenticated: ``need="own"`` and nobody is logged in.
    """
    if need == "own":
        require_user(ctx)
    listing = ctx.db.listings.get(str(listing_id))
    if listing is None or not may_see(ctx, listing):
        raise NotFound("No such listing.")
    if need == "own" and not _owns(ctx, listing):
        raise AccessDenied("Only the project's owner may change its listing.")
    return listing


def listings_of_project(ctx: Context, project: Project) -> list[Listing]:
    return ctx.db.listings.for_project(project.id)


# -- the model card ----------------------------------------------------------------------------

_EXAMPLE = {"integer": 1, "float": 1.5, "category": "a", "boolean": True, "date": "2026-01-31"}


def _example_record(project: Project) -> dict:
    return {c.name: _EXAMPLE.get(c.type, "a") for c in project.schema.feature_columns}


def _drift(ctx: Context, project: Project, number: int | None) -> dict:
    """The drift status of the last batch prediction made with version ``number``."""
    for execution in ctx.db.executions.list_for_project(project.id, limit=50):
        result = execution.result or {}
        if execution.kind == "predict" and execution.status == "succeeded" and \
                result.get("version") == number and result.get("drift"):
            drift = result["drift"]
            return {"status": drift.get("status"), "checked_at": to_iso(execution.finished_at),
                    "drifted": list(drift.get("drifted") or [])[:20]}
    return {"status": "unknown", "checked_at": None, "drifted": []}


def _numbers(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def card(ctx: Context, listing: Listing, base_url: str = "") -> dict:
    """The model card: the creator's readme rendered safely, and the generated sections
    (problem, input schema with an example request, output, training data, hyperparameters,
    held-out metrics, drift, owner and team, version history). Nothing of the training data
    itself, its files or logs."""
    db = ctx.db
    project = db.projects.get(listing.project_id)
    number = listing.version
    version = db.model_versions.get(project.id, number) if number else None
    example = {"records": [_example_record(project)]}
    url = f"{base_url.rstrip('/')}/api/v1/consume/{listing.id}"
    body = json.dumps(example)
    owner = db.users.get(listing.owner_id)
    repo = getattr(db, "teams", None)
    team_ids = sorted(listing.snapshot.get("owner_teams") or [])
    teams = [t.name for t in repo.get_many(team_ids)] if repo is not None and team_ids else []
    fingerprint = version.data_fingerprint if version else {}
    classification = project.problem_type == "classification"
    output = ({"model_version": number, "rows": 1, "predictions": ["<class>"],
               "probabilities": [{"<class>": 0.9}]} if classification else
              {"model_version": number, "rows": 1, "predictions": [0.0]})
    history = [{"version": v.version, "algorithm": v.algorithm,
                "created_at": to_iso(v.created_at),
                "metric": project.selection_metric,
                "value": _numbers(v.metrics).get(project.selection_metric,
                                                 _numbers(v.metrics).get(
                                                     f"{project.selection_metric}_macro")),
                "answering": v.version == number}
               for v in db.model_versions.list_for_project(project.id)]
    return {
        "listing": public(ctx, listing),
        "readme_html": render_markdown(listing.readme),
        "problem_type": project.problem_type,
        "target": project.schema.target,
        "input_schema": [{"name": c.name, "type": c.type}
                         for c in project.schema.feature_columns],
        "example_request": {
            "json": example,
            "curl": (f"curl -X POST {url}/predict -H 'Authorization: Bearer "
                     f"$TRAINYARD_CONSUMER_KEY' -H 'Content-Type: application/json' "
                     f"-d '{body}'"),
            "python": ("from trainyard_client import Client\n"
                       f"client = Client({base_url or 'URL'!r}, token=CONSUMER_KEY)\n"
                       f"client.consume_predict({listing.id!r}, {example['records']!r})")},
        "output_format": output,
        "training_data": {"rows": fingerprint.get("rows"), "columns": fingerprint.get("columns"),
                          "files": len(fingerprint.get("files") or []),
                          "period": fingerprint.get("period"),
                          "class_balance": fingerprint.get("class_balance")
                          if classification else None},
        "algorithm": version.algorithm if version else None,
        "hyperparameters": version.params if version else {},
        "metrics": {k: v for k, v in _numbers(version.metrics).items()
                    if not k.startswith("baseline")} if version else {},
        "drift": _drift(ctx, project, number),
        "owner": {"name": owner.name if owner else "", "teams": teams},
        "version_history": history,
    }


def public(ctx: Context, listing: Listing) -> dict:
    """A listing as the API shows it (its owner also sees the project's slug)."""
    snap = listing.snapshot
    shown = {"id": listing.id, "title": listing.title, "summary": listing.summary,
             "visibility": listing.visibility, "teams": list(listing.teams),
             "template": listing.template, "pinned_version": listing.pinned_version,
             "version": snap.get("version"), "status": listing.status,
             "problem_type": snap.get("problem_type"), "tags": list(snap.get("tags") or []),
             "own_tags": list(listing.tags), "columns": list(snap.get("columns") or []),
             "metrics": {name: snap.get(metric_field(name))
                         for name in snap.get("metric_names") or []},
             "owner_name": snap.get("owner_name", ""), "fresh_at": snap.get("fresh_at"),
             "created_at": to_iso(listing.created_at), "updated_at": to_iso(listing.updated_at),
             "readme": listing.readme}
    if _owns(ctx, listing):
        project = ctx.db.projects.get(listing.project_id)
        shown["project_slug"] = project.slug if project else None
    return shown


# -- search ------------------------------------------------------------------------------------

def parse_metric(expression: str) -> tuple[str, str, float]:
    """``f1 >= 0.9`` as ``("f1", "$gte", 0.9)`` (``=`` means at least, as ranges are read).

    Raises:
        ValidationFailed: not ``<metric> <op> <number>``, with the problem under ``metric``.
    """
    if not isinstance(expression, str) or len(expression) > 100:
        raise ValidationFailed("The metric filter is not valid.", details={
            "metric": "Write <metric> <op> <number>, e.g. f1>=0.9 (at most 100 characters)."})
    found = _METRIC.match(expression)
    if not found:
        hint = ("the operator is missing or unknown (use >=, <=, >, <)"
                if not re.search(r"[<>=]", expression) or re.search(r"[<>=]{3,}|=>|=<|!",
                                                                    expression)
                else "the metric must be a name and the bound a number")
        raise ValidationFailed("The metric filter is not valid.", details={
            "metric": f"{expression[:40]!r}: {hint}; e.g. f1>=0.9 or rmse<3."})
    value = float(found.group(3))
    if not math.isfinite(value):
        raise ValidationFailed("The metric filter is not valid.", details={
            "metric": "The bound must be a finite number."})
    return found.group(1).lower(), _OPS[found.group(2)], value


def _principal_id(ctx: Context, ref: str, kind: str) -> str:
    """A user (by e-mail or id) or a team (by slug or id) named in a filter; an unknown one
    gives an id nothing matches (an empty result, not an error)."""
    if kind == "owner":
        user = ctx.db.users.get_by_email(ref) if "@" in ref else ctx.db.users.get(ref)
        return user.id if user else f"unknown:{ref}"
    repo = getattr(ctx.db, "teams", None)
    team = (repo.get(ref) or repo.get_by_slug(ref)) if repo is not None else None
    return team.id if team else f"unknown:{ref}"


def search(ctx: Context, *, q: str = "", tags=(), problem: str | None = None, metrics=(),
           columns=(), owner: str | None = None, team: str | None = None,
           fresh_days: int | None = None, sort: str | None = None, page: int = 1,
           per_page: int = 20) -> tuple[list[dict], int]:
    """The published listings the caller may see that match every filter, sorted and paged:
    free text ``q`` (title, summary, card, project name, column names, tags, through the
    database's text index), ``tags`` (all of them), ``problem``, ``metrics`` (``f1>=0.9``...,
    all of them), input ``columns`` (all), ``owner`` (e-mail or id), ``team`` (slug or id),
    ``fresh_days`` (trained in the last days). ``sort``: ``relevance`` (with text), ``fresh``
    (default), ``title``, or a metric name (best first).

    Raises:
        ValidationFailed: a malformed metric filter, tag, problem, sort or number (the field
            names the problem). Unknown tags, owners or teams give an empty result.
    """
    if q is not None and (not isinstance(q, str) or len(q) > 500):
        raise ValidationFailed("The search is not valid.", details={
            "q": "At most 500 characters of text."})
    query: dict = {"status": "published"}
    if not getattr(ctx.user, "is_admin", False):
        query["audience"] = {"$overlaps": audience_of(ctx.user)}
    if tags:
        query["tags"] = {"$contains": [normalise_tag(t) for t in tags]}
    if problem:
        if problem not in PROBLEM_TYPES:
            raise ValidationFailed("The search is not valid.", details={
                "problem": f"Choose {' or '.join(PROBLEM_TYPES)}."})
        query["problem_type"] = problem
    for expression in metrics:
        name, op, value = parse_metric(expression)
        query.setdefault(metric_field(name), {})[op] = value
    if columns:
        query["columns"] = {"$contains": [str(c).strip().lower() for c in columns]}
    if owner:
        query["owner_id"] = _principal_id(ctx, owner.strip(), "owner")
    if team:
        query["owner_teams"] = {"$contains": [_principal_id(ctx, team.strip(), "team")]}
    if fresh_days is not None:
        query["fresh_at"] = {"$gte": to_iso(utcnow() - timedelta(days=fresh_days))}
    order = _sort(sort, bool(q and q.strip()))
    found, total = ctx.db.listings.search(q or "", query, sort=order,
                                          skip=(page - 1) * per_page, limit=per_page)
    return [public(ctx, listing) for listing in found], total


def _sort(sort: str | None, has_text: bool):
    if not sort:
        sort = "relevance" if has_text else "fresh"
    if sort == "relevance":
        return None if has_text else [("fresh_at", -1), ("_id", 1)]
    if sort == "fresh":
        return [("fresh_at", -1), ("_id", 1)]
    if sort == "title":
        return [("title", 1), ("_id", 1)]
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,60}$", sort):
        name = sort.lower()
        return [(metric_field(name), 1 if lower_is_better(name) else -1), ("_id", 1)]
    raise ValidationFailed("The search is not valid.", details={
        "sort": f"Sort by {', '.join(SORTS)} or a metric name."})


# -- consumers ---------------------------------------------------------------------------------

def _quota(data: dict, current: Subscription | None = None) -> tuple[int, int]:
    errors = {}
    values = []
    for name, high, default in (("per_minute", MAX_PER_MINUTE, DEFAULT_PER_MINUTE),
                                ("per_day", MAX_PER_DAY, DEFAULT_PER_DAY)):
        value = data.get(name, getattr(current, name, default) if current else default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            errors[name] = f"A whole number from 1 to {high:,}."
        values.append(value)
    if not errors and values[0] > values[1]:
        errors["per_minute"] = "Cannot be more than the daily quota."
    if errors:
        raise ValidationFailed("The quota is not valid.", details=errors)
    return values[0], values[1]


def subscribe(ctx: Context, listing: Listing, data: dict) -> tuple[Subscription, str]:
    """Subscribe the user acting to a listing they may see; answers the subscription and its
    consumer key (shown once). ``data``: optional ``per_minute`` and ``per_day`` quotas.

    Raises:
        ValidationFailed: a quota out of range. Conflict: the listing is unpublished.
    """
    user = require_user(ctx)
    if listing.status != "published":
        raise Conflict("This listing is not published.")
    per_minute, per_day = _quota(data)
    sub, key = Subscription.issue(listing.id, user.id, per_minute, per_day)
    ctx.db.subscriptions.add(sub)
    ctx.audit("catalog.subscribe", listing.id, details={"subscription": sub.id})
    return sub, key


def _subscription_of(ctx: Context, listing: Listing, sub_id: str) -> Subscription:
    sub = ctx.db.subscriptions.get(str(sub_id))
    if sub is None or sub.listing_id != listing.id:
        raise NotFound("No such subscription.")
    return sub


def set_quota(ctx: Context, listing: Listing, sub_id: str, data: dict) -> Subscription:
    """The owner changes a consumer's quotas (``per_minute``, ``per_day``)."""
    sub = _subscription_of(ctx, listing, sub_id)
    sub.per_minute, sub.per_day = _quota(data, sub)
    ctx.db.subscriptions.save_quota(sub)
    ctx.audit("catalog.quota", sub.id, details={"per_minute": sub.per_minute,
                                                "per_day": sub.per_day})
    return sub


def revoke(ctx: Context, listing: Listing, sub_id: str) -> None:
    """Revoke a subscription's key: the listing's owner, or the subscriber themselves.

    Raises:
        NotFound: no such subscription on the listing. AccessDenied: neither the listing's
            owner nor the subscriber. Conflict: already revoked.
    """
    user = require_user(ctx)
    sub = _subscription_of(ctx, listing, sub_id)
    if sub.user_id != user.id and not _owns(ctx, listing):
        raise AccessDenied("Only the listing's owner or the subscriber may revoke this key.")
    if not ctx.db.subscriptions.revoke(sub.id):
        raise Conflict("This key is already revoked.")
    ctx.audit("catalog.revoke", sub.id, details={"listing": listing.id})


def my_subscriptions(ctx: Context) -> list[dict]:
    user = require_user(ctx)
    shown = []
    for sub in ctx.db.subscriptions.for_user(user.id):
        listing = ctx.db.listings.get(sub.listing_id)
        shown.append({**subscription_public(sub),
                      "listing_title": listing.title if listing else None})
    return shown


def subscription_public(sub: Subscription) -> dict:
    return {"id": sub.id, "listing_id": sub.listing_id, "user_id": sub.user_id,
            "per_minute": sub.per_minute, "per_day": sub.per_day, "status": sub.status,
            "created_at": to_iso(sub.created_at), "revoked_at": to_iso(sub.revoked_at)}


def _percentile(sorted_values: list[float], share: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, math.ceil(share * len(sorted_values)) - 1))
    return round(sorted_values[index], 3)


def usage(ctx: Context, listing: Listing, days: int = 30) -> list[dict]:
    """Per consumer of a listing (its owner): quotas, state, and over the last ``days`` the
    requests, rows, errors, latency percentiles (ms) and last use."""
    since = utcnow() - timedelta(days=days)
    shown = []
    for sub in ctx.db.subscriptions.for_listing(listing.id):
        calls = ctx.db.consumer_calls.for_subscription(sub.id, since)
        latencies = sorted(c["ms"] for c in calls)
        user = ctx.db.users.get(sub.user_id)
        shown.append({**subscription_public(sub),
                      "consumer": {"name": user.name if user else "",
                                   "email": user.email if user else ""},
                      "requests": len(calls), "rows": sum(c["rows"] for c in calls),
                      "errors": sum(1 for c in calls if not c["ok"]),
                      "latency_ms": {"p50": _percentile(latencies, 0.5),
                                     "p95": _percentile(latencies, 0.95),
                                     "p99": _percentile(latencies, 0.99)},
                      "last_used_at": calls[-1]["at"] if calls else None})
    return shown


@dataclass(frozen=True)
class Consumer:
    """A checked consumer key: its subscription, listing and project."""

    subscription: Subscription
    listing: Listing
    project: Project

    @property
    def limits(self) -> str:
        """The quotas in flask-limiter's words."""
        return f"{self.subscription.per_minute}/minute;{self.subscription.per_day}/day"


def consumer_for_key(ctx: Context, value: str) -> Consumer:
    """The consumer a ``tyc_`` key stands for, checked now against the database: the key
    matches and is not revoked, its listing is published, its project exists, and its
    subscriber is active and may still see the listing.

    Raises:
        Unauthenticated: the key is malformed, unknown, revoked, or its listing is gone or
            unpublished, or its subscriber may no longer use it.
    """
    refused = Unauthenticated("The consumer key is malformed, revoked, or its listing is no "
                              "longer published.")
    parts = Subscription.split(value or "")
    if parts is None:
        raise refused
    db = ctx.db
    sub = db.subscriptions.get(parts[0])
    if sub is None or not sub.matches(parts[1]):
        raise refused
    listing = db.listings.get(sub.listing_id)
    project = db.projects.get(listing.project_id) if listing else None
    user = db.users.get(sub.user_id)
    if listing is None or project is None or listing.status != "published" or \
            user is None or not user.active:
        raise refused
    if not may_see(Context(ctx.platform, user, ctx.address), listing):
        raise refused
    return Consumer(sub, listing, project)


def _check_listing(consumer: Consumer, listing_id: str) -> None:
    if consumer.listing.id != listing_id:
        raise AccessDenied("This consumer key is for another listing.")


def _records(data) -> list:
    records = data.get("records") if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise BadRequest('The body must be {"records": [...]} or a list of records '
                         "(Content-Type: application/json).")
    return records


def consumer_predict(ctx: Context, consumer: Consumer, listing_id: str, data,
                     received_at: float, body_bytes: int | None = None) -> dict:
    """Predict through a listing with a consumer key: the listing's answering version, the
    same model server and latency path as a project's own real-time predictions. Every call
    is recorded for the owner's usage page.

    Raises:
        AccessDenied: the key is for another listing. BadRequest, ValidationFailed: records
            the schema refuses. Conflict: the listing has no version to answer with.
    """
    _check_listing(consumer, listing_id)
    records = _records(data)
    started = time.perf_counter()
    rows, ok = len(records), False
    try:
        with predictions.turn(ctx, body_bytes):
            answer = ctx.platform.model_server.predict(
                consumer.project, records, _answering(consumer), received_at)
        ok = True
        return answer
    finally:
        ctx.db.consumer_calls.record(consumer.subscription, "predict", rows if ok else 0, ok,
                                     (time.perf_counter() - started) * 1000)


def _answering(consumer: Consumer) -> int:
    number = consumer.listing.pinned_version or consumer.project.active_version
    if number is None:
        raise Conflict("This listing has no model version to answer with.")
    return number


def consumer_score(ctx: Context, consumer: Consumer, listing_id: str, data,
                   received_at: float, body_bytes: int | None = None) -> dict:
    """Score labeled records with a consumer key: each record holds the inputs and the target
    column; answers the standard metrics of the listing's version on them.

    Raises:
        AccessDenied: another listing's key. ValidationFailed: no records, a record without
            the target, or inputs the schema refuses. Conflict: no version to answer with.
    """
    from project_library.evaluation import scored_metrics

    _check_listing(consumer, listing_id)
    records = _records(data)
    target = consumer.project.schema.target
    started = time.perf_counter()
    ok = False
    try:
        if not records:
            raise ValidationFailed("Send labeled records to score.", details={
                "records": "At least one record with the target column."})
        if len(records) > MAX_SCORE_RECORDS:
            raise ValidationFailed("Too many records.", details={
                "records": f"At most {MAX_SCORE_RECORDS:,} records per call."})
        missing = [i for i, r in enumerate(records)
                   if not isinstance(r, dict) or r.get(target) is None]
        if missing:
            raise ValidationFailed("Every record needs its label.", details={
                "records": f"Records {', '.join(map(str, missing[:10]))} lack the target "
                           f"column {target!r}."})
        truth = [r[target] for r in records]
        inputs = [{k: v for k, v in r.items() if k != target} for r in records]
        with predictions.turn(ctx, body_bytes):
            answer = ctx.platform.model_server.predict(
                consumer.project, inputs, _answering(consumer), received_at)
        try:
            metrics = scored_metrics(consumer.project.problem_type, truth,
                                     answer["predictions"], answer.get("probabilities"))
        except ValueError as exc:
            kind = ("numbers" if consumer.project.problem_type == "regression"
                    else "class labels")
            raise ValidationFailed("These labels cannot be scored.", details={
                "records": f"The target {target!r} must hold {kind}."}) from exc
        ok = True
        return {"model_version": answer["model_version"], "rows": len(records),
                "metrics": metrics}
    finally:
        ctx.db.consumer_calls.record(consumer.subscription, "score",
                                     len(records) if ok else 0, ok,
                                     (time.perf_counter() - started) * 1000)


def consumer_card(ctx: Context, consumer: Consumer, listing_id: str, base_url: str) -> dict:
    """The card of the key's listing, for the consumer key itself."""
    _check_listing(consumer, listing_id)
    return card(ctx, consumer.listing, base_url)


# -- templates ---------------------------------------------------------------------------------

def create_from_template(ctx: Context, listing: Listing, data: dict) -> Project:
    """A new project of the caller's own, from a template listing: the same schema, problem,
    metric, algorithms and time budget, none of the creator's files, models or people.

    Raises:
        Conflict: the listing is not a template. ValidationFailed: the new project's name or
            storage is refused (as in ``services.projects.create``).
    """
    require_user(ctx)
    if not listing.template:
        raise Conflict("This listing is not published as a template.")
    source = ctx.db.projects.get(listing.project_id)
    fields = {"name": data.get("name"), "problem_type": source.problem_type,
              "schema": source.schema.to_dict(), "metric": source.metric,
              "algorithms": list(source.algorithms),
              "description": f"From the catalog template {listing.title!r}."}
    if source.time_budget_seconds:
        fields["time_budget_seconds"] = source.time_budget_seconds
    if data.get("storage_connection_id") is not None:
        fields["storage_connection_id"] = data["storage_connection_id"]
    if not isinstance(fields["name"], str):
        raise ValidationFailed("Please correct the marked fields.", details={
            "name": "Name the new project."})
    project = projects.create(ctx, fields)
    ctx.audit("catalog.template", listing.id, details={"project": project.slug})
    return project

