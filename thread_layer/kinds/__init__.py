"""The registry of execution kinds: what a project can run in the background.

Each kind (training, prediction, storage move...) is one module of this package that builds one
:class:`ExecutionKind`: what it needs, the options it takes, its stages, its mail lines, what it
produces, how its result is promoted, and the function its worker process runs. The runner, the
worker, the mails, the services, the API (and its OpenAPI document) and the pages all read the
kind from here; none of them tests a kind's name (the Python client's ``start`` passes any kind
and its options through).
A new kind is one new module, registered with :func:`register` (the built-in ones are
registered at the bottom of this file).

The mail layer (``integration``) sits below this one: the runner hands it the kind, which it
reads only through the two attributes of :class:`integration.notifications.ExecutionMailText`
(``label`` and ``success_lines``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exception_layer import ValidationFailed
from thread_layer.celery_queue import QUEUES

if TYPE_CHECKING:
    from entity.database import Database
    from entity.execution import Execution
    from entity.project import Project
    from logging_layer.execution_logger import ExecutionLogger
    from thread_layer.runner import ExecutionRunner

#: what a kind produces, which decides how the pages show its result
MODEL_VERSION = "model_version"          # a new model version (its card on the execution page)
PREDICTION_OUTPUT = "prediction_output"  # an output table (paged on the execution page)
STORAGE_SWITCH = "storage_switch"        # the project's files on another storage
RESULT = "result"                        # only the result dict of the execution


@dataclass(frozen=True)
class KindOption:
    """One option a kind takes from the start request (API body or page form).

    Args:
        name: the field of the body.
        schema: its JSON schema in the OpenAPI document.
        description: for the OpenAPI document.
        parse: turns the raw value into the stored one (``(raw, db) -> value``); raises
            ValidationFailed with the field named.
        keep_empty: parse (and store) the option even when it is missing or empty; otherwise a
            missing or empty value leaves the option out.
        storage_connection: the value names a storage connection, which the user starting
            the execution must be allowed to use (to anyone else it does not exist).
    """

    name: str
    schema: dict
    description: str
    parse: Callable[[Any, Database], Any] = lambda raw, db: raw
    keep_empty: bool = False
    storage_connection: bool = False


def _no_check(runner, project, options) -> None:
    return None


def _no_payload(runner, execution, project) -> dict:
    return {}


def _keep_result(runner, execution, project, result, logger) -> dict:
    return result


def _nothing_to_discard(runner, execution, project, logger) -> None:
    return None


def _no_lines(result: dict) -> list[str]:
    return []


def _no_files(payload: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (), ()


@dataclass(frozen=True)
class ExecutionKind:
    """The declaration of one kind of execution.

    Args:
        name: its name in the API, URLs and stored executions (``train``).
        label: its name in mails, logs and pages (``Training``).
        run: ``run(payload, reporter) -> result`` in the worker process. It must be a
            module-level function: it is sent to the spawned process by reference. The payload
            holds ``kind``, ``execution_id``, ``project`` (a document), ``options``,
            ``storage_uri``, ``credentials``, ``threads`` and what :attr:`payload` adds.
        role: the project role needed to start it.
        denied_message: what someone with a lesser role is told (None: the standard refusal).
        needs_folder: the folder of batch files it reads (None: none).
        needs_model: it uses a model version (option ``version``, default the active one);
            starting it without any trained model is refused.
        options: what it takes from the start request.
        stages: the stages its log lines and progress go through, in order.
        produces: what it leaves behind (:data:`MODEL_VERSION`, :data:`PREDICTION_OUTPUT`,
            :data:`STORAGE_SWITCH` or :data:`RESULT`).
        promote: ``promote(db, project, result, logger) -> result`` decides whether what it
            produced becomes what the project uses (None: nothing is promoted).
        button: the label of its button on the project page (None: not started from there).
        button_class: the Bootstrap class of that button.
        start_form: a template drawn instead of the plain button (for kinds with options).
        check: ``check(runner, project, options)`` at submission; raises to refuse, may
            complete ``options``.
        payload: ``payload(runner, execution, project) -> dict``, added to the worker's
            payload just before it starts.
        finalize: ``finalize(runner, execution, project, result, logger) -> result`` registers
            what the worker produced, in the supervising process.
        discard: ``discard(runner, execution, project, logger)`` cleans up after a failure
            or a cancellation.
        success_lines: ``success_lines(result) -> lines`` for the mail of its success.
        queue: the broker queue its executions wait in when a broker runs them (one of
            :data:`thread_layer.celery_queue.QUEUES`), so that workers can be dedicated to
            trainings or to predictions, and a long training never delays a prediction.
        staged: ``staged(payload) -> (reads, writes)``: the project folders its sandboxed
            worker needs (default: its ``needs_folder`` and its archive folder, written). The
            supervisor copies both into the worker's scratch storage before it starts, and
            afterwards makes the project's ``writes`` folders match the scratch copy (new and
            changed files uploaded, removed ones deleted); nothing else of the scratch storage
            goes back (:mod:`thread_layer.staging`).
        direct_storage: its worker reaches the project's storage itself (it needs the network
            and the credentials, e.g. a move between two storages): it runs under the limits
            but without isolation. Only for platform code that runs nothing of the user's.
    """

    name: str
    label: str
    run: Callable[[dict, Any], dict]
    role: str = "editor"
    denied_message: str | None = None
    needs_folder: str | None = None
    needs_model: bool = False
    options: tuple[KindOption, ...] = ()
    stages: tuple[str, ...] = ()
    produces: str = RESULT
    promote: Callable[[Database, Project, dict, ExecutionLogger], dict] | None = None
    button: str | None = None
    button_class: str = "btn-primary"
    start_form: str | None = None
    check: Callable[[ExecutionRunner, Project, dict], None] = _no_check
    payload: Callable[[ExecutionRunner, Execution, Project], dict] = _no_payload
    finalize: Callable[[ExecutionRunner, Execution, Project, dict, ExecutionLogger], dict] = \
        _keep_result
    discard: Callable[[ExecutionRunner, Execution, Project, ExecutionLogger], None] = \
        _nothing_to_discard
    success_lines: Callable[[dict], list[str]] = _no_lines
    queue: str = "train"
    staged: Callable[[dict], tuple[tuple[str, ...], tuple[str, ...]]] = _no_files
    direct_storage: bool = False

    def sandbox_folders(self, payload: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(reads, writes) of its sandboxed worker: :attr:`staged`'s, or by default its batch
        folder (whose bad files it moves out) and its archive folder."""
        if self.staged is not _no_files:
            return self.staged(payload)
        if self.needs_folder:
            return (), (self.needs_folder, f"archive/{payload['execution_id']}/")
        return (), ()

    def parse_options(self, raw: dict, db: Database, user=None) -> dict:
        """The options of a start request (``raw``: the body or form) by ``user``, parsed and
        checked.

        Raises:
            ValidationFailed: an option has a bad value (the field is named), or names a
                storage connection ``user`` may not use.
        """
        options: dict = {}
        for option in self.options:
            value = raw.get(option.name)
            if value in (None, "") and not option.keep_empty:
                continue
            options[option.name] = option.parse(value, db)
            if option.storage_connection and options[option.name]:
                connection = db.storage_connections.get(options[option.name])
                if connection is None or not connection.usable_by(user):
                    raise ValidationFailed("Please correct the marked fields.", details={
                        option.name: "No such storage connection."})
        return options


_KINDS: dict[str, ExecutionKind] = {}


def register(kind: ExecutionKind) -> ExecutionKind:
    """Add ``kind`` to the registry (its name must be new); returns it."""
    if kind.name in _KINDS:
        raise ValueError(f"The execution kind {kind.name!r} is already registered.")
    if kind.queue not in QUEUES:
        raise ValueError(f"The execution kind {kind.name!r} names the queue {kind.queue!r}; "
                         f"the queues are {', '.join(QUEUES)}.")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove the kind ``name`` (tests that register a throw-away kind)."""
    _KINDS.pop(name, None)


def all_kinds() -> tuple[ExecutionKind, ...]:
    """Every registered kind, in registration order."""
    return tuple(_KINDS.values())


def find_kind(name: str | None) -> ExecutionKind | None:
    """The kind ``name``, or None if none is registered under it."""
    return _KINDS.get(name) if name else None


def get_kind(name: str | None) -> ExecutionKind:
    """The kind ``name``.

    Raises:
        ValidationFailed: no kind has this name (the known ones are listed).
    """
    kind = find_kind(name)
    if kind is None:
        raise ValidationFailed(f"Unknown execution kind {name!r}; use "
                               f"{', '.join(_KINDS)}.")
    return kind


def label_of(name: str) -> str:
    """The label of the kind ``name`` (the name itself for a kind no longer registered)."""
    kind = find_kind(name)
    return kind.label if kind else name


def names_in_words() -> str:
    """``"train", "predict" or "move"``: the known kinds for an error message."""
    quoted = [f'"{name}"' for name in _KINDS]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _register_builtin() -> None:
    from thread_layer.kinds import feedback, model_import, move, predict, train

    for module in (train, predict, move, feedback, model_import):
        register(module.KIND)


_register_builtin()
