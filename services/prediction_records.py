"""Prediction records and their ground truth: list, filter and export a project's records, and
take feedback labels (the API, the project's page, the client and the CLI all come here).

Who may do what: anyone with a role on the project (viewers too) lists and exports its
records; editors and owners, who may predict, send feedback.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from entity.project import Project
from exception_layer import BadRequest, NotFound, PayloadTooLarge, ValidationFailed
from project_library.feedback import MAX_LABELS
from project_library.prediction import neutralise_formula
from services.context import Context
from thread_layer.feedback import record_labels

FILTERS = ("version", "source", "since", "until", "labeled")
EXPORT_FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
#: the CSV export's leading columns (inputs follow, one column each)
CSV_COLUMNS = ("prediction_id", "created_at", "version", "source", "execution_id", "output",
               "actual", "labeled_at", "latency_ms", "probabilities")


def _moment(name: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        moment.astimezone(UTC)  # a time zone may carry it past year 1 or 9999
    except (ValueError, OverflowError):
        raise ValidationFailed(f"{name} must be a date or time in ISO 8601, e.g. "
                               "2026-12-04T21:00:00Z.",
                               details={name: "not an ISO 8601 date or time"}) from None
    return moment


def parse_filters(args: Mapping[str, str]) -> dict:
    """The record filters of a query string: ``version`` (a whole number), ``source``
    (``realtime`` or ``batch``), ``since`` and ``until`` (ISO 8601; naive times are UTC),
    ``labeled`` (``true`` or ``false``). Empty values are ignored.

    Raises:
        ValidationFailed: a filter has a bad value (``details`` names it).
    """
    filters: dict = {}
    problems: dict[str, str] = {}
    raw = {name: (args.get(name) or "").strip() for name in FILTERS}
    if raw["version"]:
        if raw["version"].lstrip("v").isdigit() and len(raw["version"]) < 12:
            filters["version"] = int(raw["version"].lstrip("v"))
        else:
            problems["version"] = "must be a model version number"
    if raw["source"]:
        if raw["source"] in ("realtime", "batch"):
            filters["source"] = raw["source"]
        else:
            problems["source"] = "must be realtime or batch"
    for name in ("since", "until"):
        if raw[name]:
            try:
                filters[name] = _moment(name, raw[name])
            except ValidationFailed as exc:
                problems.update(exc.details)
    if raw["labeled"]:
        if raw["labeled"].lower() in _TRUE | _FALSE:
            filters["labeled"] = raw["labeled"].lower() in _TRUE
        else:
            problems["labeled"] = "must be true or false"
    if problems:
        raise ValidationFailed("Please correct the filters: " + "; ".join(
            f"{name} {reason}" for name, reason in problems.items()) + ".", details=problems)
    return filters


def public(doc: dict) -> dict:
    """A record as the API shows it (``prediction_id`` for the store's ``_id``)."""
    shown = {key: value for key, value in doc.items() if key != "_id"}
    shown["prediction_id"] = doc["_id"]
    return shown


def get(ctx: Context, project: Project, prediction_id: str) -> dict:
    """One of the project's records (NotFound for an unknown id or another project's)."""
    doc = ctx.db.prediction_records.get(prediction_id)
    if doc is None or doc.get("project_id") != project.id:
        raise NotFound("No prediction record has this id in this project.")
    return public(doc)


def list_page(ctx: Context, project: Project, filters: dict, page: int,
              per_page: int) -> tuple[list[dict], int]:
    """One page of the project's records matching ``filters`` (:func:`parse_filters`), newest
    first, and how many match in all."""
    records = ctx.db.prediction_records
    docs = records.find(project.id, skip=(page - 1) * per_page, limit=per_page,
                        newest_first=True, **filters)
    return [public(d) for d in docs], records.count(project.id, **filters)


def export(ctx: Context, project: Project, filters: dict, fmt: str) -> tuple[str, Iterator[bytes]]:
    """The project's records matching ``filters``, oldest first, as ``fmt`` (``csv`` or
    ``jsonl``): the media type and the body, produced while it is sent (never held whole).
    CSV has :data:`CSV_COLUMNS` then one column per input column; text cells a spreadsheet
    would run as formulas get a leading apostrophe.

    Raises:
        ValidationFailed: an unknown format.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValidationFailed("format must be csv or jsonl.",
                               details={"format": "must be csv or jsonl"})
    records = ctx.db.prediction_records.iterate(project.id, **filters)
    ctx.audit("prediction_records.export", project.slug, details={"format": fmt, **{
        k: str(v) for k, v in filters.items()}})
    if fmt == "jsonl":
        def lines() -> Iterator[bytes]:
            chunk: list[str] = []
            for doc in records:
                chunk.append(json.dumps(public(doc), separators=(",", ":")))
                if len(chunk) >= 500:
                    yield ("\n".join(chunk) + "\n").encode("utf-8")
                    chunk = []
            if chunk:
                yield ("\n".join(chunk) + "\n").encode("utf-8")
        return EXPORT_FORMATS[fmt], lines()
    inputs = [c.name for c in project.schema.columns if c.name != project.schema.target]

    def rows() -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*CSV_COLUMNS, *inputs])
        for count, doc in enumerate(records, start=1):
            cells = [doc["_id"], doc.get("created_at"), doc.get("version"), doc.get("source"),
                     doc.get("execution_id"), doc.get("output"), doc.get("actual"),
                     doc.get("labeled_at"), doc.get("latency_ms"),
                     json.dumps(doc["probabilities"]) if doc.get("probabilities") else None]
            given = doc.get("inputs") or {}
            cells += [given.get(name) for name in inputs]
            writer.writerow(["" if v is None else neutralise_formula(v) for v in cells])
            if count % 500 == 0:
                yield buffer.getvalue().encode("utf-8")
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode("utf-8")
    return EXPORT_FORMATS[fmt], rows()


def _labels_of(body) -> list[tuple[int, object, object]]:
    """``(row, prediction_id, actual)`` of a feedback body; rows number the labels from 0."""
    if isinstance(body, dict) and "labels" not in body and "prediction_id" in body:
        items = [body]
    elif isinstance(body, dict) and "labels" in body:
        items = body["labels"]
        if not isinstance(items, list):
            raise ValidationFailed("labels must be a list of {prediction_id, actual}.",
                                   details={"labels": "must be a list of objects"})
    elif isinstance(body, list):
        items = body
    else:
        raise BadRequest('Send {"labels": [{"prediction_id": ..., "actual": ...}, ...]} or one '
                         '{"prediction_id": ..., "actual": ...} (Content-Type: '
                         "application/json).")
    if not items:
        raise ValidationFailed("Send at least one label.",
                               details={"labels": "expected at least one label"})
    if len(items) > MAX_LABELS:
        raise PayloadTooLarge(f"At most {MAX_LABELS} labels per request.")
    labels: list[tuple[int, object, object]] = []
    for row, item in enumerate(items):
        if isinstance(item, dict):
            labels.append((row, item.get("prediction_id"), item.get("actual")))
        else:
            labels.append((row, None, None))
    return labels


def _field_of(reason: str) -> str:
    return "actual" if reason.startswith("actual") else "prediction_id"


def submit_feedback(ctx: Context, project: Project, body) -> dict:
    """Join the labels of ``body`` to the project's predictions: ``{"labels": [{prediction_id,
    actual}, ...]}``, one ``{prediction_id, actual}``, or a bare list of them. Every good
    label is kept; the others are refused with a reason each.

    Returns:
        ``{"accepted": n, "rejected": [{"row", "prediction_id", "reason"}]}`` (row: the
        label's position in the list, from 0).

    Raises:
        BadRequest: not a feedback body. PayloadTooLarge: too many labels.
        ValidationFailed: no label could be kept, so nothing changed; ``details`` names the
            field of the first refusal (``prediction_id`` or ``actual``) and lists
            ``rejected``.
    """
    labels = _labels_of(body)
    result = record_labels(ctx.db, ctx.platform.runner, project, labels)
    if not result.accepted:
        first = result.rejected[0]
        raise ValidationFailed(
            (f"No label was kept: {first['reason']}." if len(labels) == 1 else
             f"No label was kept; the first refusal (row {first['row']}): {first['reason']}."),
            details={_field_of(first["reason"]): first["reason"],
                     "rejected": result.rejected})
    ctx.audit("feedback.submit", project.slug, details={"accepted": result.accepted,
                                                        "rejected": len(result.rejected)})
    return result.to_dict()
