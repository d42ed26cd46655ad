"""The declared shape of every API body and resource, one pydantic model each.

The models are what the services parse their input with (:func:`parse`: one error per field,
in the platform's ``ValidationFailed``), what the API's answers are dumped through
(:func:`dump`) and what the OpenAPI document's components are generated from
(:func:`components`). They live here, below the controllers, because the services take them;
the controllers only name them.

A field added to a model is accepted by the API (and the page forms, which parse with the
same models), shown in the answers and described in the OpenAPI document.
"""

from __future__ import annotations

import difflib
import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic.json_schema import models_json_schema
from pydantic_core import PydanticCustomError

from entity.execution import ACTIVE_STATUSES, FINAL_STATUSES
from entity.log_record import LEVELS
from entity.monitoring import GRANULARITIES, INCIDENT_STATUSES, RULE_KINDS
from entity.project import ALGORITHMS, COLUMN_TYPES, METRICS, PROBLEM_TYPES, PROJECT_ROLES
from entity.security import TOKEN_SCOPES
from entity.team import TEAM_ROLES
from entity.user import PLATFORM_ROLES
from entity.webhook import DELIVERY_STATUSES
from exception_layer import BadRequest, ValidationFailed

REF_TEMPLATE = "#/components/schemas/{model}"
#: an echoed value in an error message is cut to this many characters
ECHO_CHARACTERS = 80
#: nested lists and objects deeper than this are refused before anything else looks at them
MAX_DEPTH = 32


# -- field types -------------------------------------------------------------------------------

def _no_control_characters(value):
    if isinstance(value, str) and any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        raise ValueError("Control characters (such as line breaks) are not allowed.")
    return value


def _one_line(value):
    return _no_control_characters(value)


Text = StrictStr
#: text on one line: names end up in mail subjects and headers
Line = Annotated[StrictStr, BeforeValidator(_one_line)]
Time = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Id = Annotated[str, Field(min_length=1)]


class Resource(BaseModel):
    """An answer of the API: the fields it shows (anything else an entity holds stays in)."""

    model_config = ConfigDict(extra="ignore")


class Body(BaseModel):
    """A request body. JSON bodies are parsed strictly (``"name": 123`` is no name) and an
    unknown field is refused (422, naming it and the closest known one: a misspelt setting
    would otherwise be dropped in silence); page forms, whose values are all text, leniently
    (``"3600"`` is a number there), and their own fields (the CSRF token...) are left out."""

    model_config = ConfigDict(extra="forbid")
    #: field -> {pydantic error type, or "*" for any -> the message to show}
    messages: ClassVar[dict[str, dict[str, str]]] = {}


# -- resources -----------------------------------------------------------------------------

class ErrorDetail(Resource):
    code: str = Field(description="a stable, machine-readable code")
    message: str = Field(description="plain words, safe to show")
    details: Any = Field(None, description="field errors or other safe details")


class Error(Resource):
    error: ErrorDetail


class User(Resource):
    id: Id
    email: str
    name: str
    role: Literal[tuple(PLATFORM_ROLES)]
    active: bool
    created_at: Time | None


class Session(Resource):
    user: User
    csrf_token: str = Field(description="send it in X-CSRFToken")


class Column(Resource):
    name: str = Field(min_length=1)
    type: Literal[tuple(COLUMN_TYPES)]


class BatchSchema(Resource):
    """What every batch file of a project must look like."""

    filename_pattern: str = Field(
        description="a regular expression (RE2 syntax: no backreferences or lookaround, "
                    "counts up to 1000) that the whole file name must match, e.g. "
                    "^wafer_\\d{8}_\\d{6}\\.csv$")
    columns: list[Column]
    target: str | None = Field(description="the column to predict")
    ignored: list[str] = Field(default_factory=list,
                               description="columns the model does not learn from (ids...)")


def suggestion(name: str, known) -> str:
    """``"Unknown field 'x'"`` with ``"; did you mean 'y'?"`` for the closest of ``known``."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else \
        f"; known: {', '.join(sorted(map(str, known)))}."
    return f"Unknown field '{echo(str(name), 40)}'{hint}"


def known_keys(model: type[BaseModel]) -> list[str]:
    """The keys a body or resource of ``model`` has (aliases where declared)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def _schema_keys(value):
    """Refuse unknown keys of a batch-file schema and of its columns (``file_name_pattern``),
    naming the closest known key; the schema's other rules are ``BatchSchema.validate``'s."""
    if isinstance(value, dict):
        for key in value:
            if key not in BatchSchema.model_fields:
                raise PydanticCustomError("unknown_key", suggestion(key, BatchSchema.model_fields))
        columns = value.get("columns")
        for index, column in enumerate(columns if isinstance(columns, list) else []):
            for key in column if isinstance(column, dict) else ():
                if key not in Column.model_fields:
                    raise PydanticCustomError(
                        "unknown_key", f"columns.{index}: " + suggestion(key, Column.model_fields))
    return value


class ProjectSettings(BaseModel):
    """The plain settings of a project: a field declared here (a scalar: text, number, flag or
    choice, with ``None`` or its default when absent and a ``description`` that is its help
    text) is accepted by the API and the project form, stored, shown in the answers, described
    in the OpenAPI document and rendered on the project form, with no other edit. Fields with
    rules or widgets of their own (the schema, recipients, metric...) are declared on
    :class:`ProjectInput` and :class:`Project` and handled in ``services.projects``."""

    # -- triggered retraining (thread_layer/triggers.py) ------------------------------------
    retrain_on_alert: bool = Field(True, description=(
        "Let an alert whose rule asks for it start a retraining (off: alerts only open "
        "incidents)."))
    retrain_after_labels: int | None = Field(None, ge=1, le=10_000_000, description=(
        "Retrain once this many new labeled predictions have arrived since the last training "
        "(empty: never on labels)."))
    # -- prediction records and feedback (issue 22, records) --
    prediction_record_sample: float = Field(
        1.0, ge=0, le=1, title="Real-time predictions recorded (share)",
        description="The share of real-time predicted rows whose record is kept, from 0 (none) "
                    "to 1 (all). Batch predictions are always recorded.")
    prediction_record_days: int | None = Field(
        None, ge=1, le=36500, title="Keep prediction records (days)",
        description="Delete prediction records older than this; empty: the platform's "
                    "RETENTION_PREDICTION_RECORDS_DAYS.")
    train_on_feedback: bool = Field(
        False, title="Train on feedback",
        description="Add the labeled prediction records (inputs and actual value) to the "
                    "training data of the next trainings.")
    # (retrain_after_labels is declared with the triggered retraining above)
    # -- end of prediction records and feedback --

    # -- live monitoring and alerts (issue 22) --
    monitoring_window_hours: int | None = Field(
        None, ge=1, le=720, description="Hours of the rolling window of live monitoring "
        "(default: the server's MONITORING_WINDOW_HOURS, 24).")
    incident_reminder_hours: int | None = Field(
        None, ge=0, le=720, description="Hours between reminder mails while an incident stays "
        "open (default 24; 0: no reminders).")
    # -- champion and challenger (thread_layer/promotion.py) ---------------------------------
    promotion_policy: Literal["auto", "manual"] = Field("auto", description=(
        "What happens to a model trained while another one is active: auto promotes it if it "
        "scores better on the same rows (by the margin below), manual waits for a person's "
        "approval."))
    promotion_margin: float = Field(0.0, ge=0, le=1_000_000, description=(
        "How much better, in the selection metric's units, a challenger must score to be "
        "promoted automatically (0: at least as well)."))
    comparison_window_days: int = Field(30, ge=1, le=365, description=(
        "Days of labeled predictions the challenger and the active model are compared on "
        "(without labels: the held-out training rows)."))


class Project(ProjectSettings, Resource):
    id: Id
    name: str
    slug: str
    problem_type: Literal[tuple(PROBLEM_TYPES)]
    schema_: BatchSchema = Field(alias="schema")
    owner_id: Id
    description: str
    recipients: list[str]
    storage_connection_id: str | None = None
    members: dict[str, Literal[tuple(PROJECT_ROLES)]] = Field(
        description="user id -> project role")
    teams: dict[str, Literal[tuple(PROJECT_ROLES)]] = Field(
        default_factory=dict, description="team id -> the project role of its members")
    metric: str | None = None
    time_budget_seconds: int | None = None
    algorithms: list[str]
    active_execution_id: str | None = None
    active_version: int | None = None
    next_version: int
    created_at: Time
    updated_at: Time


class FileEntry(Resource):
    path: str
    name: str
    size: int
    modified: Time | None = None


class FolderListing(Resource):
    path: str
    folders: list[str]
    files: list[FileEntry]
    next_token: str | None = Field(description="pass it as page_token")


class StoredFile(Resource):
    path: str
    size: int


class Uploaded(Resource):
    uploaded: list[StoredFile]


class Moved(Resource):
    path: str
    size: int = Field(None, description="a file's size")
    files: int = Field(None, description="the files a folder move moved")


class Folder(Resource):
    path: str


class Link(Resource):
    url: str
    expires_at: Time


STATUSES = Literal[tuple([*ACTIVE_STATUSES, *FINAL_STATUSES])]


class Execution(Resource):
    id: Id
    project_id: Id
    # the kinds are the registry's (thread_layer.kinds): see the ExecutionKind component
    kind: Annotated[str, WithJsonSchema({"x-component": "ExecutionKind"})]
    started_by: str | None = None
    trigger: dict = Field(default_factory=dict, description=(
        'who or what started it and why: {"by": "user" | "schedule" | "alert" | "labels", '
        '"reason": text, "user_id"?, "via"?: "page" | "api" | "cli", ...}'))
    status: STATUSES
    stage: str
    progress: int = Field(ge=0, le=100)
    error: str | None = None
    result: dict
    options: dict
    created_at: Time
    started_at: Time | None = None
    finished_at: Time | None = None
    heartbeat_at: Time | None = None
    cancel_requested: bool
    duration_seconds: float | None = None
    usage: dict = Field(default_factory=dict, description=(
        "what it used: peak_memory_mb, cpu_seconds, wall_seconds, written_mb, processes"))
    limits: dict = Field(default_factory=dict, description="the limits it ran under")
    waiting_reason: str | None = Field(default=None, description=(
        "why a queued execution has not started yet"))


# -- execution limits (thread_layer/sandbox.py) ---------------------------------------------

class LimitValues(Resource):
    """One value per execution limit (see the README's "Limits and isolation")."""

    memory_mb: int = Field(description="resident memory of all its processes, MB")
    address_space_mb: int = Field(description="address space of each process, MB")
    cpu_seconds: int = Field(description="CPU time of all its processes, s")
    wall_seconds: int = Field(description="wall-clock time, s")
    processes: int = Field(description="processes and threads at once")
    open_files: int = Field(description="open files per process")
    written_mb: int = Field(description="bytes written to its scratch folder, MB")


class ExecutionLimits(Resource):
    project_id: Id
    overrides: dict[str, int] = Field(description="what administrators set for this project")
    effective: LimitValues = Field(description="what its executions run under")
    defaults: LimitValues
    ceiling: LimitValues = Field(description="the install's highest values")


class ExecutionLimitsInput(Body):
    """Administrators only; ``null`` returns a limit to the install's default."""

    memory_mb: int | None = None
    address_space_mb: int | None = None
    cpu_seconds: int | None = None
    wall_seconds: int | None = None
    processes: int | None = None
    open_files: int | None = None
    written_mb: int | None = None


class LogRecord(Resource):
    execution_id: Id
    project_id: Id
    seq: int
    time: Time
    level: Literal[tuple(LEVELS)]
    stage: str
    message: str


class LogPage(Resource):
    items: list[LogRecord]
    last_seq: int = Field(description="pass it as after_seq for the next lines")
    status: STATUSES


class OutputPage(Resource):
    columns: list[str]
    rows: list[list]
    total_rows: int
    page: int
    pages: int


class ModelVersion(Resource):
    id: Id
    project_id: Id
    version: int
    execution_id: str
    algorithm: str
    metrics: dict
    leaderboard: list = None
    params: dict = None
    schema_: dict = Field(None, alias="schema")
    data_fingerprint: dict = None
    library_versions: dict = None
    artifacts: dict[str, str] = Field(None, description="file name -> SHA-256")
    plots: list = None
    problem_type: str = None
    origin: dict = Field(None, description="{} for a training here; {kind: imported, format, "
                                           "file, sha256} for an imported model")
    created_at: Time
    active: bool = Field(None, description="the version predictions use")
    challenge: dict = Field(None, description=(
        'as a challenger of the active version: {"status": "pending" | "promoted" | "refused" '
        '| "approved" | "rejected", "metric", "champion_version", "champion_value", '
        '"challenger_value", "source": "feedback" | "holdout" | "training_metrics", "rows", '
        '"reason", "decided_at", ...}'))


class MetricComparison(Resource):
    name: str
    a: Any
    b: Any
    difference: float | None


class ModelComparison(Resource):
    a: ModelVersion
    b: ModelVersion
    metrics: list[MetricComparison]


class Prediction(Resource):
    model_config = ConfigDict(extra="allow")

    model_version: int
    rows: int
    prediction_ids: list[str] = Field(None, description="one id per row, for its feedback")
    predictions: list = None
    probabilities: list = None


class VersionUsage(Resource):
    model_config = ConfigDict(extra="allow")

    requests: int
    rows: int
    errors: int
    latency_ms: dict


class Usage(Resource):
    versions: dict[str, VersionUsage]


class Member(Resource):
    user: User
    role: Literal[tuple(PROJECT_ROLES)]
    creator: bool = None


class Token(Resource):
    id: Id
    name: str
    scope: Literal[tuple(TOKEN_SCOPES)]
    created_at: Time
    last_used_at: Time | None = None
    revoked: bool


class CreatedToken(Token):
    token: str = Field(description="the secret: shown only once")


#: a storage connection as answered: its schema is generated from the fields each storage
#: backend declares (``integration.credentials.connection_schema``)
StorageConnection = Annotated[dict, WithJsonSchema({"x-component": "StorageConnection"})]


class AuditEvent(Resource):
    id: Id
    action: str
    actor_id: str | None = None
    actor_email: str | None = None
    target: str | None = None
    details: dict = None
    success: bool
    address: str | None = None
    time: Time


class MailMessage(Resource):
    id: Id
    subject: str
    recipients: list[str]
    body_text: str = None
    body_html: str = None
    status: Literal["kept", "sent", "failed"]
    error: str | None = None
    created_at: Time


class Message(Resource):
    message: str


# -- live monitoring and alerts (issue 22) ----------------------------------------------------

class MonitorPoint(Resource):
    """What the monitoring job computed for one model version over one period."""

    model_config = ConfigDict(extra="allow")

    version: int
    granularity: Literal[tuple(GRANULARITIES)]
    start: Time
    end: Time
    computed_at: Time
    day: str | None = Field(None, description="the UTC day (granularity day)")
    window_hours: int | None = Field(None, description="the rolling window (granularity "
                                                        "window)")
    metric: str = Field(None, description="the project's metric")
    volume: dict = Field(description="predictions, labeled, source_realtime, source_batch")
    latency_ms: dict = Field(description="p50, p95, p99 of the records' request latency")
    requests: dict = Field(description="real-time requests, errors and error_rate (from the "
                                       "usage counters)")
    metrics: dict = Field(description="the standard metrics on labeled feedback")
    training_metrics: dict = Field(None, description="the version's metrics at training")
    drift: dict = Field(description="features: {name: {psi, status, rows, test (ks | chi2), "
                                    "statistic, p_value}}, prediction, drifted, max_psi")
    last_record_at: Time | None = None


class Monitoring(Resource):
    project_id: Id
    granularity: Literal[tuple(GRANULARITIES)]
    window_hours: int
    active_version: int | None
    points: list[MonitorPoint]


class AlertRule(Resource):
    id: Id
    project_id: Id
    kind: Literal[tuple(RULE_KINDS)]
    threshold: float | None = None
    metric: str | None = None
    feature: str | None = None
    hours: int | None = None
    min_rows: int | None = None
    retrain: bool
    enabled: bool
    created_at: Time
    updated_at: Time


class Incident(Resource):
    id: Id
    project_id: Id
    rule_id: Id
    kind: Literal[tuple(RULE_KINDS)]
    version: int
    summary: str
    value: float | None = None
    threshold: float | None = None
    details: dict = None
    status: Literal[tuple(INCIDENT_STATUSES)]
    opened_at: Time
    closed_at: Time | None = None
    mailed_at: Time | None = None
    reminded_at: Time | None = None
    reminders: int = 0
    retraining: dict | None = Field(None, description="the retraining the incident started")


class Webhook(Resource):
    project_id: Id
    url: str
    enabled: bool
    created_at: Time


class CreatedWebhook(Webhook):
    secret: str = Field(description="the HMAC-SHA256 signing secret: shown only once")


class WebhookDelivery(Resource):
    id: Id
    event: str
    url: str
    incident_id: str | None = None
    status: Literal[tuple(DELIVERY_STATUSES)]
    attempts: list[dict] = Field(description="[{attempt, at, status_code, error}]")
    next_attempt_at: Time | None = None
    created_at: Time


# -- prediction records and feedback (issue 22, records) --

class PredictionRecord(Resource):
    """One predicted row as kept: its inputs, the answer, and its label once feedback came."""

    prediction_id: Id
    project_id: Id
    version: int
    source: Literal["realtime", "batch"]
    execution_id: str | None = None
    created_at: Time
    inputs: dict
    output: Any = None
    probabilities: dict | None = None
    latency_ms: float | None = None
    actual: Any = None
    labeled_at: Time | None = None
    shadow: dict | None = None


class FeedbackRejection(Resource):
    row: int = Field(description="the label's position: from 0 in an API list, from 1 among a "
                                 "file's data rows")
    prediction_id: str | None = None
    reason: str


class FeedbackResult(Resource):
    accepted: int = Field(ge=0, description="labels kept")
    rejected: list[FeedbackRejection]


class FeedbackLabel(Body):
    prediction_id: Text = Field(description="the id a prediction answered")
    actual: Any = Field(description="the true value of the target, of the schema's type")


class FeedbackInput(Body):
    """Labels: ``{"labels": [{"prediction_id", "actual"}, ...]}``, or one label
    ``{"prediction_id", "actual"}``."""

    labels: list[dict[str, Any]] | None = Field(
        None, description="many labels, each {prediction_id, actual}")
    prediction_id: Text | None = Field(None, description="one label: the prediction's id")
    actual: Any = Field(None, description="one label: the true value")

# -- end of prediction records and feedback --


# -- the model catalog (issue 23) --------------------------------------------------------------

VISIBILITY = Literal["organisation", "teams", "public"]


class Listing(Resource):
    """A model version published to the catalog."""

    id: Id
    title: str
    summary: str
    readme: str = Field(description="the creator's Markdown (rendered on the card)")
    visibility: VISIBILITY
    teams: list[str] = Field(description="team ids, for visibility 'teams'")
    template: bool = Field(description="consumers may create a project from it")
    pinned_version: int | None = Field(description="the version that answers; null: the "
                                                   "project's active version")
    version: int | None = Field(description="the version answering now")
    status: Literal["published", "unpublished"]
    problem_type: str | None = None
    tags: list[str] = Field(description="the listing's, the project's and the version's")
    own_tags: list[str]
    columns: list[str] = Field(description="input columns, lower-cased")
    metrics: dict[str, float | None] = Field(description="held-out metrics of the version")
    owner_name: str
    fresh_at: Time | None = Field(description="when the answering version was trained")
    created_at: Time
    updated_at: Time
    project_slug: str | None = Field(None, description="shown to the listing's owner only")


class Card(Resource):
    """A listing's model card: the readme rendered safely, and the generated sections."""

    listing: Listing
    readme_html: str = Field(description="sanitized HTML (no script, no raw HTML)")
    problem_type: str
    target: str | None
    input_schema: list[Column]
    example_request: dict = Field(description="json, curl and python")
    output_format: dict
    training_data: dict = Field(description="rows, columns, files, period, class_balance")
    algorithm: str | None
    hyperparameters: dict
    metrics: dict
    drift: dict
    owner: dict
    version_history: list[dict]


class Subscription(Resource):
    id: Id
    listing_id: Id
    user_id: Id
    per_minute: int
    per_day: int
    status: Literal["active", "revoked"]
    created_at: Time
    revoked_at: Time | None = None
    listing_title: str | None = None


class CreatedSubscription(Subscription):
    key: str = Field(description="the consumer key (tyc_...): shown only once")


class ConsumerUsage(Subscription):
    consumer: dict = Field(description="name and email of the subscriber")
    requests: int
    rows: int
    errors: int
    latency_ms: dict = Field(description="p50, p95, p99 in milliseconds")
    last_used_at: Time | None = None


class ConsumerUsageList(Resource):
    consumers: list[ConsumerUsage]


class Score(Resource):
    model_config = ConfigDict(extra="allow")

    model_version: int
    rows: int
    metrics: dict = Field(description="the standard metrics of the problem type on the "
                                      "labeled rows")


class Tags(Resource):
    tags: list[str]


class TagsInput(Body):
    tags: list[Text] = Field(description="free text: trimmed, lower-cased, spaces as '-'; "
                                         "at most 20 of at most 40 characters")


class ListingInput(Body):
    """What an owner publishes; title is required to publish."""

    title: Line = Field(None, max_length=100)
    summary: Text = Field(None, max_length=500)
    readme: Text = Field(None, max_length=50_000, description="Markdown; raw HTML is shown "
                                                              "as text")
    visibility: VISIBILITY = None
    teams: list[Text] = None
    template: StrictBool = None
    pinned_version: StrictInt | None = Field(None, ge=1)
    tags: list[Text] = None
    status: Literal["published", "unpublished"] = None


class QuotaInput(Body):
    per_minute: StrictInt = Field(None, ge=1, le=10_000)
    per_day: StrictInt = Field(None, ge=1, le=10_000_000)


class TemplateInput(Body):
    name: Line = Field(max_length=100)
    storage_connection_id: Text | None = None


class ScoreRecords(Body):
    records: list[dict[str, Any]] = Field(description="inputs plus the target column")


CATALOG_MODELS: tuple[type[BaseModel], ...] = (
    Listing, Card, Subscription, CreatedSubscription, ConsumerUsage, ConsumerUsageList, Score,
    Tags, TagsInput, ListingInput, QuotaInput, TemplateInput, ScoreRecords)


#: the item models that lists answer inside a ``<Name>Page`` envelope
PAGED = {"Project": Project, "Execution": Execution, "ModelVersion": ModelVersion,
         "Member": Member, "Token": Token, "User": User, "StorageConnection": StorageConnection,
         "AuditEvent": AuditEvent, "MailMessage": MailMessage,
         "AlertRule": AlertRule, "Incident": Incident, "WebhookDelivery": WebhookDelivery,
         "Listing": Listing, "Subscription": Subscription}
PAGED["PredictionRecord"] = PredictionRecord  # prediction records (issue 22)
PAGES = {name: create_model(
    f"{name}Page", __base__=Resource, items=(list[model], ...),
    page=(int, Field(ge=1)), per_page=(int, Field(ge=1)), total=(int, Field(ge=0)))
    for name, model in PAGED.items()}


# -- request bodies ----------------------------------------------------------------------------

class Credentials(Body):
    email: Text
    password: Text


class SetupInput(Body):
    email: Annotated[Text, WithJsonSchema({"type": "string", "format": "email"})]
    name: Line = Field(max_length=100)
    password: Text = Field(min_length=10, max_length=1000)


EMAIL_TEXT = Annotated[Text, WithJsonSchema({"type": "string", "format": "email"})]


class ProjectInput(ProjectSettings, Body):
    """The fields of a project; creating needs name, problem_type and schema (the rules that
    depend on other fields or on the database are in ``services.projects``)."""

    messages: ClassVar = {
        "name": {"string_too_long": "At most 100 characters."},
        "description": {"string_too_long": "At most 2000 characters."},
        "problem_type": {"*": "Choose classification or regression."},
        "time_budget_seconds": {"*": "A whole number of seconds from 10 to 604800."},
        "algorithms": {"*": "A list of algorithm names."},
        "recipients": {"*": "A list of e-mail addresses, or one text of them separated by "
                            "commas."},
        "schema": {"*": "Describe the columns of the batch files."},
    }

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "description": "The fields of a project; creating needs name, problem_type and schema. "
                       "Metrics and algorithms by problem type: " + "; ".join(
                           f"{problem}: {', '.join(METRICS[problem])} / "
                           f"{', '.join(ALGORITHMS[problem])}" for problem in PROBLEM_TYPES)
                       + "."})

    name: Line = Field(None, max_length=100)
    description: Text = Field(None, max_length=2000)
    problem_type: Literal[tuple(PROBLEM_TYPES)] = None
    metric: Literal[tuple(sorted({m for ms in METRICS.values() for m in ms}))] | None = None
    time_budget_seconds: int | None = Field(None, ge=10, le=604800)
    algorithms: list[Literal[tuple(sorted({a for al in ALGORITHMS.values() for a in al}))]] \
        | Annotated[Text, WithJsonSchema({"type": "string", "description": "names separated "
                                          "by commas"})] = None
    recipients: list[EMAIL_TEXT] | Annotated[Text, WithJsonSchema({
        "type": "string", "description": "addresses separated by commas"})] = None
    storage_connection_id: Text | None = None
    # the rules of a schema (and their messages) are BatchSchema.validate's
    schema_: Annotated[dict, BeforeValidator(_schema_keys),
                       WithJsonSchema({"x-component": "BatchSchema"})] = Field(
        None, alias="schema")


class MoveInput(Body):
    path: Text = Field(description="the file to move; a folder when it ends with '/'")
    to: Text = Field(description="the folder it goes into ('' for the top folder)")
    name: Text | None = Field(None, description="its new name (default: the same); with the "
                                                "same folder, a rename")


class FolderInput(Body):
    path: Text


class PredictionRecords(Body):
    records: list[dict[str, Any]]
    version: StrictInt = Field(None, ge=1)


class MemberInput(Body):
    email: Text
    role: Literal[tuple(PROJECT_ROLES)]


class EmailInput(Body):
    email: Text


class TokenInput(Body):
    name: Line = Field(max_length=100)
    scope: Literal[tuple(TOKEN_SCOPES)]


class InviteInput(Body):
    email: Text
    name: Line
    role: Literal[tuple(PLATFORM_ROLES)] = "member"


class UserInput(Body):
    role: Literal[tuple(PLATFORM_ROLES)] = None
    active: StrictBool = None


class AlertRuleInput(Body):
    """An alert rule; creating needs ``kind``, and ``threshold`` (``hours`` for no_traffic).
    Thresholds: a PSI above 0 up to 10 for drift, an error rate between 0 and 1, a metric's
    value (or drop) in the metric's range."""

    messages: ClassVar = {
        "kind": {"*": "One of " + ", ".join(RULE_KINDS) + "."},
        "threshold": {"*": "A number."},
        "hours": {"*": "A whole number of hours from 1 to 720."},
        "min_rows": {"*": "A whole number from 1 to 10000000."},
        "metric": {"*": "One of the project's metrics."},
    }

    kind: Literal[tuple(RULE_KINDS)] = None
    threshold: float | None = None
    metric: Literal[tuple(sorted({m for ms in METRICS.values() for m in ms}))] | None = None
    feature: Line | None = Field(None, max_length=200)
    hours: StrictInt | None = Field(None, ge=1, le=720)
    min_rows: StrictInt | None = Field(None, ge=1, le=10_000_000)
    retrain: StrictBool = None
    enabled: StrictBool = None


class WebhookInput(Body):
    url: Text = Field(description="http(s) address that receives the incident events")
    enabled: StrictBool = None
    new_secret: StrictBool = Field(None, description="make a new signing secret (answered "
                                                     "once)")


# -- parsing and dumping -----------------------------------------------------------------------

def echo(value, limit: int = ECHO_CHARACTERS) -> str:
    """``value`` as text fit to repeat in a message: cut to ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def field_errors(model: type[BaseModel], exc: ValidationError) -> dict[str, str]:
    """The errors of a pydantic validation, one message per top-level field (the model's own
    message for it where it declares one)."""
    messages = getattr(model, "messages", {})
    details: dict[str, str] = {}
    for error in exc.errors(include_input=False, include_url=False):
        location = [str(part) for part in error["loc"] if not str(part).startswith(
            ("list[", "str", "function-", "literal["))]
        field = location[0] if location else "body"
        if error["type"] == "extra_forbidden" and len(location) == 1:
            details.setdefault(field, suggestion(field, known_keys(model)))
            continue
        field = field.rstrip("_")  # schema_ is the field of "schema"
        if error["type"] == "unknown_key":
            details.setdefault(field, error["msg"])
            continue
        own = messages.get(field, {})
        message = own.get(error["type"]) or own.get("*") or error["msg"]
        message = message.removeprefix("Value error, ")
        inner = ".".join(location[1:])
        details.setdefault(field, f"{inner}: {message}" if inner and field not in messages
                           else message)
    return details


def check(model: type[BaseModel], data: dict, *, strict: bool = True) -> dict[str, str]:
    """The fields of ``data`` that ``model`` refuses, with why (empty: all fine)."""
    try:
        model.model_validate(data if strict else _declared_only(model, data), strict=strict)
    except ValidationError as exc:
        return field_errors(model, exc)
    return {}


def _declared_only(model: type[BaseModel], data: dict) -> dict:
    """A page form's fields that ``model`` declares (a form also posts its CSRF token, its
    buttons and helper inputs, which are no unknown fields)."""
    known = set(known_keys(model)) | set(model.model_fields)
    return {key: value for key, value in data.items() if key in known}


#: pydantic error types about a value's rules rather than its type: the services check those
#: with their own messages (see :func:`check_shape`)
RULE_ERRORS = {"missing", "string_too_short", "string_too_long", "literal_error",
               "greater_than", "greater_than_equal", "less_than", "less_than_equal",
               "too_short", "too_long", "enum"}


def check_shape(model: type[BaseModel], data: dict) -> None:
    """Check the types of ``data``'s fields against ``model`` (text is text, a flag is a
    flag, no control characters in a line), leaving the rules of their values (required,
    lengths, choices) to the service, whose messages say more.

    Raises:
        ValidationFailed: a field has the wrong type; ``details`` maps it to why.
    """
    try:
        model.model_validate(data, strict=True)
    except ValidationError as exc:
        wrong = [e for e in exc.errors(include_input=False, include_url=False)
                 if e["type"] not in RULE_ERRORS]
        if wrong:
            details = field_errors(model, ValidationError.from_exception_data(
                exc.title, [{"type": e["type"], "loc": e["loc"], "input": None,
                             "ctx": e.get("ctx", {})} if e["type"] != "value_error" else
                            {"type": "value_error", "loc": e["loc"], "input": None,
                             "ctx": {"error": e["msg"].removeprefix("Value error, ")}}
                            for e in wrong]))
            raise ValidationFailed("Please correct the marked fields.", details=details) \
                from None


def load_json(data: bytes | str, *, max_depth: int | None = MAX_DEPTH):
    """``data`` parsed as JSON, refused when malformed or nested deeper than ``max_depth``
    (None: as deep as the parser goes), with a 400, never the parser's recursion error.

    Raises:
        BadRequest: not JSON, or nested too deeply.
    """
    try:
        value = json.loads(data)
    except RecursionError:
        raise BadRequest("The JSON body nests too deeply.") from None
    except ValueError:
        raise BadRequest("The body is not valid JSON.") from None
    if max_depth is not None and depth_of(value, max_depth) > max_depth:
        raise BadRequest(f"The JSON body nests more than {max_depth} levels deep.")
    return value


def parse(model: type[BaseModel], data, *, strict: bool = True):
    """``data`` (a JSON object, or a page form's fields with ``strict=False``) as ``model``.

    Raises:
        ValidationFailed: a field is wrong; ``details`` maps each field to its message.
    """
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object.",
                               details={"body": "Expected an object."})
    try:
        return model.model_validate(data if strict else _declared_only(model, data),
                                    strict=strict)
    except ValidationError as exc:
        raise ValidationFailed("Please correct the marked fields.",
                               details=field_errors(model, exc)) from None


def dump(model: type[BaseModel], data: dict) -> dict:
    """``data`` (an entity's public document) as the resource ``model`` shows it."""
    return model.model_validate(data).model_dump(mode="json", by_alias=True, exclude_unset=True)


def plain_fields(model: type[BaseModel] = ProjectSettings) -> list[dict]:
    """The fields of ``model`` as a page form shows them, in order: ``name``, ``label`` (its
    title, else its name in words), ``help`` (its description), ``input`` (``text``,
    ``number``, ``checkbox`` or ``select``), ``choices`` (for a select), ``step`` (for a
    number) and ``required``."""
    properties = model.model_json_schema()["properties"]
    shown = []
    for name, info in model.model_fields.items():
        schema = properties.get(info.alias or name, {})
        options = [o for o in schema.get("anyOf", [schema]) if o.get("type") != "null"]
        kind = options[0] if options else {}
        if "enum" in kind:
            control, choices = "select", list(kind["enum"])
        else:
            control, choices = {"integer": "number", "number": "number",
                                "boolean": "checkbox"}.get(kind.get("type"), "text"), []
        shown.append({"name": name, "label": info.title or name.replace("_", " ").capitalize(),
                      "help": info.description or "", "input": control, "choices": choices,
                      "step": "1" if kind.get("type") == "integer" else "any",
                      "required": info.is_required()})
    return shown


def depth_of(value, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value``'s lists and objects nest, counting no further than ``limit + 1``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children
                         if isinstance(child, dict | list))
    return deepest



# -- teams (resources and bodies) --------------------------------------------------------------

class TeamMember(Resource):
    user: User
    role: Literal[tuple(TEAM_ROLES)]
    source: Literal["local", "sso"] = Field(
        description="local: added by an admin or lead; sso: mapped from the sign-on claim")


class Team(Resource):
    id: Id
    name: str
    slug: str
    description: str
    member_count: int = Field(ge=0)
    created_at: Time
    members: list[TeamMember] = Field(None, description="in the answer for one team")


class TeamRef(Resource):
    id: Id
    name: str
    slug: str


class ProjectTeam(Resource):
    team: TeamRef
    role: Literal[tuple(PROJECT_ROLES)]


class TeamInput(Body):
    name: Line = Field(max_length=100)
    description: StrictStr = Field(None, max_length=2000)


class TeamUpdate(Body):
    name: Line = Field(None, max_length=100)
    description: StrictStr = Field(None, max_length=2000)


class TeamMemberInput(Body):
    email: Text
    role: Literal[tuple(TEAM_ROLES)] = "member"


class ProjectTeamInput(Body):
    team: Text = Field(description="the team's id or slug")
    role: Literal[tuple(PROJECT_ROLES)]


TEAM_MODELS: tuple[type[BaseModel], ...] = (
    TeamMember, Team, TeamRef, ProjectTeam, TeamInput, TeamUpdate, TeamMemberInput,
    ProjectTeamInput, create_model("TeamPage", __base__=Resource, items=(list[Team], ...),
                                   page=(int, Field(ge=1)), per_page=(int, Field(ge=1)),
                                   total=(int, Field(ge=0))),
    create_model("TeamMemberPage", __base__=Resource, items=(list[TeamMember], ...),
                 page=(int, Field(ge=1)), per_page=(int, Field(ge=1)),
                 total=(int, Field(ge=0))))


# -- retraining schedules and challengers (services/schedules.py, services/challengers.py) ---

class Schedule(Resource):
    """A project's retraining schedule: a training at every slot of ``cron`` in ``timezone``."""

    id: Id
    project_id: Id
    cron: str = Field(description="five cron fields (minute hour day-of-month month "
                                  "day-of-week) or a nickname such as @daily")
    timezone: str = Field(description="the IANA time zone the cron fields are read in")
    enabled: bool
    description: str
    created_by: str | None = None
    next_run_at: Time | None = Field(None, description="the next slot, UTC")
    last_slot: Time | None = Field(None, description="the slot that fired last (or the one "
                                                     "before the schedule was made or changed)")
    last_fired_at: Time | None = None
    last_execution_id: str | None = Field(None, description="the training the last slot "
                                                            "started")
    last_outcome: str | None = Field(None, description="why the last slot started nothing")
    created_at: Time
    updated_at: Time


class ScheduleList(Resource):
    items: list[Schedule]


class ChallengerList(Resource):
    items: list[ModelVersion]


class ScheduleInput(Body):
    """A schedule to create (``cron`` required) or the fields of one to change."""

    cron: Line = Field(None, max_length=120, description="e.g. 0 3 * * * (03:00 every day)")
    timezone: Line = Field(None, max_length=64, description="e.g. Europe/Paris (default UTC)")
    enabled: StrictBool = Field(None, description="off: the schedule fires nothing")
    description: Line = Field(None, max_length=200, description="shown with the trigger")


#: every model the OpenAPI document's components hold
MODELS: tuple[type[BaseModel], ...] = (
    Error, User, Session, Column, BatchSchema, Project, FolderListing, Uploaded, Moved, Folder,
    Link, Execution, LogRecord, LogPage, OutputPage, ModelVersion, ModelComparison, Prediction,
    Usage, Member, Token, CreatedToken, AuditEvent, MailMessage, Message,
    MonitorPoint, Monitoring, AlertRule, Incident, Webhook, CreatedWebhook, WebhookDelivery,
    AlertRuleInput, WebhookInput, *PAGES.values(),
    Credentials, SetupInput, ProjectInput, MoveInput, FolderInput,
    PredictionRecords, MemberInput, EmailInput, TokenInput, InviteInput, UserInput,
    *CATALOG_MODELS,
    # execution limits (thread_layer/sandbox.py)
    LimitValues, ExecutionLimits, ExecutionLimitsInput)
MODELS += TEAM_MODELS
# prediction records and feedback (issue 22)
MODELS += (PredictionRecord, FeedbackRejection, FeedbackResult, FeedbackLabel, FeedbackInput)


#: the retraining schedules' and challengers' models
MODELS = (*MODELS, Schedule, ScheduleList, ScheduleInput, ChallengerList)


def components() -> dict[str, dict]:
    """The JSON schemas of :data:`MODELS`, keyed by model name, referring to each other
    through ``#/components/schemas/<name>``."""
    modes = [(model, "validation" if issubclass(model, Body) else "serialization")
             for model in MODELS]
    _, top = models_json_schema(modes, ref_template=REF_TEMPLATE)
    schemas = _refer(dict(top.get("$defs", {})))
    schemas["PredictionRequest"] = {
        "description": "Records to predict, with an optional model version, or a bare list.",
        "oneOf": [{"$ref": REF_TEMPLATE.format(model="PredictionRecords")},
                  {"type": "array", "items": {"type": "object", "additionalProperties": True}}]}
    return schemas


def _refer(schema):
    """``schema`` with each ``{"x-component": name}`` (a field validated loosely here, by a
    component's rules elsewhere) turned into a reference to that component, and without the
    null defaults of fields that are only ever absent or set."""
    if isinstance(schema, dict):
        if "x-component" in schema:
            return {"$ref": REF_TEMPLATE.format(model=schema["x-component"])}
        tidy = {key: _refer(value) for key, value in schema.items()}
        nullable = tidy.get("type") == "null" or any(
            isinstance(option, dict) and option.get("type") == "null"
            for option in tidy.get("anyOf", ()))
        if "default" in tidy and tidy["default"] is None and not nullable:
            del tidy["default"]  # "absent" in the model, not a null the schema refuses
        return tidy
    if isinstance(schema, list):
        return [_refer(item) for item in schema]
    return schema
