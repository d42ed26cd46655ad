"""The OpenAPI 3.1 document of ``/api/v1``, generated from the code.

Each API view carries a small declaration, :func:`spec`, naming its tag, request body, query
parameters and answers; :func:`build_document` walks the app's URL map for the API blueprint's
rules and joins each rule (path, methods, path parameters from the converters) with the
declaration and the view's docstring (summary and description). The JSON schemas of the
resources and bodies are generated from their pydantic models (``services.resources``) and
referenced from every operation that takes or answers them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask
from pydantic import BaseModel

from entity.storage_connection import PRINCIPAL_TYPES
from integration.credentials import connection_input_schema, connection_schema
from services import resources
from thread_layer.kinds import all_kinds

API_BLUEPRINT = "api"
OPENAPI_VERSION = "3.1.0"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
#: the order of the tags in the document (and of the sections of the docs page)
TAGS = {
    "Session": "Logging in and out, first-run set-up, password resets.",
    "Projects": "Projects and their batch-file schema.",
    "Files": "A project's files and folders.",
    "Executions": "Trainings, batch predictions and storage moves, with their logs.",
    "Prediction": "Real-time predictions with a trained model.",
    "Models": "The versions of a project's model.",
    "Retraining": "Retraining schedules, and challengers waiting for approval.",
    "Members": "Who may see and change a project.",
    "Teams": "Groups of users that share projects and listings (admins create them, leads "
             "manage their members).",
    "Monitoring": "Live monitors per model version, alert rules, incidents and the webhook.",
    "Tokens": "Personal API tokens for the Authorization: Bearer header.",
    "Administration": "Users, the audit log and the outbox (admins).",
    "Storage connections": "Where projects' files live (admins); secrets are always masked.",
    "Catalog": "Tags, publishing to the model catalog, model cards, search, subscriptions and "
               "consumers' usage.",
    "Consumer": "What a consumer key (tyc_...) calls: its listing's card, predict and score; "
                "also as its own document, /api/v1/openapi-consumer.json.",
    "Documentation": "This document and its browsable page.",
}
#: what each error status means, for the descriptions of the error answers
ERROR_STATUSES = {
    400: "The request is malformed (or, with the session cookie, the CSRF header is missing).",
    401: "Not logged in, or the bearer token is missing, malformed or revoked.",
    403: "Logged in but not allowed (role too weak, or a read-only token on a write).",
    404: "No such resource, or one the caller may not see.",
    409: "The request conflicts with the current state.",
    413: "The upload is too large.",
    422: "Well-formed input with wrong values; `details` maps fields to messages.",
    429: "Too many attempts; wait and try again.",
    502: "The storage refused the operation.",
    503: "The storage cannot be reached right now.",
}


# -- schemas: defined once, referenced everywhere ------------------------------------------------

def ref(name: str) -> dict:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict) -> dict:
    """``schema`` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def page_of(name: str) -> str:
    """The name of the paginated envelope of ``name`` items (``Page[name]``)."""
    return f"{name}Page"


TEXT = {"type": "string"}
ID = {"type": "string", "minLength": 1}
#: the resources and bodies, generated from their models (services.resources)
SCHEMAS: dict[str, dict] = resources.components()

SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "A personal token (`ty_...`) from POST /tokens or the profile "
                                  "page; a read-only token may only GET."},
    "consumerKey": {"type": "http", "scheme": "bearer",
                    "description": "A consumer key (`tyc_...`) from subscribing to a catalog "
                                   "listing: it calls that listing's consumer endpoints only."},
    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "session",
                   "description": "The session cookie set by POST /session."},
    "csrfHeader": {"type": "apiKey", "in": "header", "name": "X-CSRFToken",
                   "description": "With the cookie, every state-changing call sends the "
                                  "csrf_token that POST /session answered."},
}


# -- media types of bodies and answers -----------------------------------------------------------

@dataclass(frozen=True)
class Body:
    """A body that is not JSON: ``media_type`` with ``schema``."""

    media_type: str
    schema: dict
    description: str = ""


def multipart(**fields: dict) -> Body:
    """A multipart/form-data body with these fields."""
    return Body("multipart/form-data", {"type": "object", "properties": fields,
                                        "required": list(fields)})


FILE = {"type": "string", "format": "binary"}
BINARY = Body("application/octet-stream", FILE, "The file's bytes (text/csv for CSV files).")
SERVER_SENT_EVENT = {
    "type": "object", "required": ["event", "data"],
    "properties": {"event": {"enum": ["log", "execution"]},
                   "id": {**TEXT, "description": "a log line's sequence number"},
                   "data": {**TEXT, "contentMediaType": "application/json",
                            "description": "the LogRecord or the Execution, as JSON"}}}
EVENT_STREAM = Body("text/event-stream", SERVER_SENT_EVENT,
                    "Server-sent events: `log` (a LogRecord, with the sequence number as "
                    "`id`), then `execution` (the Execution) whenever its state changes.")
NO_CONTENT = None


def query(name: str, schema: dict | None = None, description: str = "", *,
          required: bool = False) -> dict:
    """A query parameter."""
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or TEXT}


PAGING = (query("page", {"type": "integer", "minimum": 1, "maximum": 10**9, "default": 1},
                "from 1"),
          query("per_page", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                "from 1 to 200"))


# -- the declaration on the views ----------------------------------------------------------------

@dataclass
class Operation:
    """What :func:`spec` records on a view."""

    tag: str
    responses: dict
    request: str | dict | Body | None = None
    query: tuple = ()
    errors: tuple = ()
    public: bool = False
    extra: dict = field(default_factory=dict)


def spec(tag: str, *, responses: dict, request: str | dict | Body | None = None,
         query: tuple | list = (), errors: tuple | list = (), public: bool = False,
         **extra) -> Callable:
    """Declare a view's request and answers for the OpenAPI document.

    Args:
        tag: the section of the docs the operation belongs to (one of :data:`TAGS`).
        responses: status -> a model of ``services.resources`` (or its component name), a
            :class:`Body`, or None (no content).
        request: the body: a model of ``services.resources`` (or its component name), or a
            :class:`Body` (multipart...).
        query: query parameters (see :func:`query`).
        errors: the error statuses the operation itself may answer, besides those every
            operation may (401/403 unless public, 400 with a body or parameters, 404 with path
            parameters).
        public: reachable without logging in.
        extra: more fields of the OpenAPI operation object.
    """
    if tag not in TAGS:
        raise ValueError(f"unknown tag {tag!r}; add it to TAGS")

    def decorate(view: Callable) -> Callable:
        view.__openapi__ = Operation(tag=tag, responses=dict(responses), request=request,
                                     query=tuple(query), errors=tuple(errors), public=public,
                                     extra=extra)
        return view
    return decorate


# -- the generator ---------------------------------------------------------------------------------

_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_CONVERTER_SCHEMAS = {"int": {"type": "integer"}, "float": {"type": "number"},
                      "uuid": {"type": "string", "format": "uuid"}}


def _api_rules(app: Flask):
    prefix = app.blueprints[API_BLUEPRINT].url_prefix or ""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint.startswith(API_BLUEPRINT + "."):
            yield rule, rule.rule[len(prefix):] if rule.rule.startswith(prefix) else rule.rule


def undocumented(app: Flask) -> list[str]:
    """The API endpoints whose view has no :func:`spec` declaration or no docstring."""
    missing = []
    for rule, _ in _api_rules(app):
        view = app.view_functions[rule.endpoint]
        if not isinstance(getattr(view, "__openapi__", None), Operation) or \
                not inspect.getdoc(view):
            missing.append(rule.endpoint)
    return sorted(set(missing))


def _content(value) -> dict | None:
    if value is None:
        return None
    if isinstance(value, Body):
        return {value.media_type: {"schema": value.schema}}
    if isinstance(value, type) and issubclass(value, BaseModel):
        value = value.__name__
    schema = ref(value) if isinstance(value, str) else value
    return {"application/json": {"schema": schema}}


def _response(status: int, value) -> dict:
    if isinstance(value, Body):
        answer = {"description": value.description or value.media_type}
    elif isinstance(value, type) and issubclass(value, BaseModel):
        answer = {"description": value.__name__}
    elif isinstance(value, str):
        answer = {"description": value}
    elif value is None:
        answer = {"description": "No content."}
    else:
        answer = {"description": "OK"}
    content = _content(value)
    if content:
        answer["content"] = content
    return answer


def _error(status: int) -> dict:
    return {"description": ERROR_STATUSES[status],
            "content": {"application/json": {"schema": ref("Error")}}}


def _operation(rule, method: str, view, declared: Operation) -> dict:
    doc = inspect.getdoc(view) or ""
    summary, _, description = doc.partition("\n")
    parameters = []
    for match in _ARGUMENT.finditer(rule.rule):
        parameters.append({"name": match["name"], "in": "path", "required": True,
                           "schema": _CONVERTER_SCHEMAS.get(match["converter"], ID)})
    parameters.extend(declared.query)
    operation: dict = {
        "tags": [declared.tag],
        "operationId": rule.endpoint.split(".", 1)[1] + (
            "" if len(rule.methods - {"HEAD", "OPTIONS"}) == 1 else "_" + method.lower()),
        "summary": " ".join(summary.split()),
    }
    if description.strip():
        operation["description"] = description.strip()
    if parameters:
        operation["parameters"] = parameters
    if declared.request is not None:
        operation["requestBody"] = {"required": True, "content": _content(declared.request)}
    responses = {str(status): _response(status, value)
                 for status, value in sorted(declared.responses.items())}
    errors = set(declared.errors)
    if not declared.public:
        errors |= {401, 403}
        if method not in SAFE_METHODS:
            errors.add(400)  # the CSRF check of cookie sessions
        operation["security"] = ([{"bearerAuth": []}, {"cookieAuth": []}]
                                 if method in SAFE_METHODS else
                                 [{"bearerAuth": []}, {"cookieAuth": [], "csrfHeader": []}])
    else:
        operation["security"] = []
    if declared.request is not None or declared.query:
        errors.add(400)
    if "{" in _ARGUMENT.sub("{}", rule.rule):
        errors.add(404)
    for status in sorted(errors):
        responses.setdefault(str(status), _error(status))
    operation["responses"] = responses
    operation.update(declared.extra)
    return operation


def _undeclared(rule, view) -> dict:
    """A route without a declaration still appears, flagged, rather than breaking the document
    (the test suite fails on it: see :func:`undocumented`)."""
    summary = (inspect.getdoc(view) or rule.endpoint).partition("\n")[0]
    return {"tags": ["Undeclared"], "operationId": rule.endpoint.split(".", 1)[1],
            "summary": summary, "x-undeclared": True,
            "parameters": [{"name": m["name"], "in": "path", "required": True,
                            "schema": _CONVERTER_SCHEMAS.get(m["converter"], ID)}
                           for m in _ARGUMENT.finditer(rule.rule)],
            "responses": {"default": {"description": "Not declared yet."}}}


def storage_schemas() -> dict[str, dict]:
    """The storage-connection schemas, generated from the fields each storage backend declares
    (at each build: a backend registered later appears too)."""
    grants = {
        "grants": {"type": "array", "description": "who may create projects on the connection "
                   "or move projects to it, besides admins", "items": {
                       "type": "object", "required": ["type", "id"],
                       "additionalProperties": False,
                       "properties": {"type": {"enum": list(PRINCIPAL_TYPES)},
                                      "id": {"type": "string", "minLength": 1}}}},
        "available_to_all": {"type": "boolean",
                             "description": "every user may use it (grants aside)"}}
    answer, definition = connection_schema(), connection_input_schema()
    answer["properties"].update(grants)
    answer["required"] = [*answer["required"], *grants]
    definition["properties"].update(grants)
    return {"StorageConnection": answer, "StorageConnectionInput": definition}


def execution_kind_schemas() -> dict:
    """The schemas read from the registry of execution kinds: the kinds, and the body that
    starts one (``kind`` plus every option some kind takes)."""
    kinds = all_kinds()
    properties: dict = {"kind": ref("ExecutionKind")}
    for kind in kinds:
        for option in kind.options:
            properties.setdefault(option.name, {**option.schema,
                                                "description": option.description})
    return {
        "ExecutionKind": {"enum": [kind.name for kind in kinds],
                          "description": "; ".join(f"{kind.name}: {kind.label.lower()}"
                                                   for kind in kinds)},
        "ExecutionInput": {"type": "object", "required": ["kind"], "properties": properties},
    }


def build_document(app: Flask, *, title: str = "Trainyard API", version: str = "1",
                   only_tag: str | None = None) -> dict:
    """The OpenAPI document of the API blueprint of ``app``: one operation per route and
    method, in path order (``only_tag``: the operations of that tag alone, e.g. the consumer
    endpoints)."""
    paths: dict[str, dict] = {}
    for rule, path in _api_rules(app):
        view = app.view_functions[rule.endpoint]
        declared = getattr(view, "__openapi__", None)
        if only_tag and getattr(declared, "tag", None) != only_tag:
            continue
        template = _ARGUMENT.sub(lambda m: "{" + m["name"] + "}", path)
        item = paths.setdefault(template, {})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            item[method.lower()] = (_operation(rule, method, view, declared)
                                    if isinstance(declared, Operation) else
                                    _undeclared(rule, view))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version,
                 "description": "Everything the pages do, with HTTP status codes and one error "
                                "shape. Lists are paginated (`page`, `per_page`) and answered "
                                "as {items, page, per_page, total}. Authenticate with a "
                                "personal token (`Authorization: Bearer ty_...`) or with the "
                                "session cookie of POST /session plus its CSRF token in the "
                                "X-CSRFToken header on state-changing calls."},
        "servers": [{"url": app.blueprints[API_BLUEPRINT].url_prefix or "/"}],
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()
                 if not only_tag or name == only_tag],
        "paths": paths,
        "components": {"schemas": {**SCHEMAS, **storage_schemas(), **execution_kind_schemas()},
                       "securitySchemes": SECURITY_SCHEMES},
    }
