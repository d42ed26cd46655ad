"""The ``trainyard`` command line.

    trainyard login --url URL --token TOKEN
    trainyard projects
    trainyard create-project definition.json
    trainyard upload PROJECT LOCAL_DIR [--to training_batch_files/]
    trainyard train PROJECT [--follow]
    trainyard run PROJECT KIND [--option NAME=VALUE ...] [--follow]
    trainyard predict PROJECT [--csv FILE [--out FILE]] [--download DEST] [--follow]
    trainyard download PROJECT PATH DEST
    trainyard logs PROJECT EXECUTION [--follow]
    trainyard teams
    trainyard team TEAM
    trainyard team-create NAME [--description TEXT]
    trainyard team-add TEAM EMAIL [--role member|lead]
    trainyard team-remove TEAM EMAIL
    trainyard project-team PROJECT TEAM [--role viewer|editor|owner | --remove]
    trainyard records PROJECT [--export FILE [--format csv|jsonl]] [--version N] [--labeled]
    trainyard feedback PROJECT FILE.csv [--target COLUMN]

PROJECT is a project's id or slug, TEAM a team's id or slug. Errors print ``trainyard:
<message>`` on stderr and exit with 1 (2 for a usage error or when not logged in).
"""

from __future__ import annotations

import argparse
import csv
import getpass
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from trainyard_client import __version__
from trainyard_client.client import PREDICTION_FOLDER, TRAINING_FOLDER, Client
from trainyard_client.config import config_path, save_config, settings
from trainyard_client.errors import (
    ApiError,
    NotLoggedIn,
    TrainyardError,
    failure_message,
)

PROG = "trainyard"


# -- terminal output -----------------------------------------------------------------------

class Bar:
    """A one-line text progress bar on ``stream``, drawn only when it is a terminal."""

    def __init__(self, stream: TextIO | None = None, width: int = 30):
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width
        self.text = ""

    def show(self, fraction: float, label: str) -> None:
        if not self.enabled:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(round(fraction * self.width))
        self.text = f"[{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:3.0f}% {label}"
        self.stream.write("\r\033[K" + self.text)
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled and self.text:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def redraw(self) -> None:
        if self.enabled and self.text:
            self.stream.write(self.text)
            self.stream.flush()

    def done(self) -> None:
        self.clear()
        self.text = ""


def format_line(line: dict) -> str:
    """A log line as ``HH:MM:SS LEVEL   stage        message``."""
    stamp = str(line.get("time") or "")
    clock = stamp[11:19] if len(stamp) >= 19 else stamp
    return f"{clock} {line.get('level', ''):<7} {line.get('stage', ''):<13} {line.get('message')}"


def _out(text: str = "") -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


# -- helpers -------------------------------------------------------------------------------

def _client() -> Client:
    url, token = settings()
    client = Client(url, token)
    # The server records that the CLI started an execution (its trigger's "via").
    client.http.headers["User-Agent"] = f"trainyard-cli/{__version__}"
    return client


def _project(client: Client, ref: str) -> dict:
    """A project by id or slug."""
    return client.projects.resolve(ref)


def _follow(client: Client, execution: dict, *, print_lines: bool) -> dict:
    """Follow an execution: its log lines on stdout (when asked) and a progress bar of its
    stage on stderr (on a terminal). Answers the final state."""
    bar = Bar()

    def on_line(line: dict) -> None:
        if print_lines:
            bar.clear()
            _out(format_line(line))
            bar.redraw()

    def on_state(state: dict) -> None:
        bar.show((state.get("progress") or 0) / 100,
                 f"{state.get('status')}: {state.get('stage')}")

    try:
        return client.executions.follow(execution, on_line, on_state)
    finally:
        bar.done()


def _conclude(final: dict, success: Callable[[dict], None]) -> int:
    if final.get("status") == "succeeded":
        success(final)
        return 0
    _err(f"{PROG}: {failure_message(final)}")
    return 1


# -- commands --------------------------------------------------------------------------------

def cmd_login(args) -> int:
    token = args.token
    if not token:
        if not sys.stdin.isatty():
            raise NotLoggedIn("give the token with --token")
        token = getpass.getpass("API token: ").strip()
    client = Client(args.url, token)
    user = None
    if not args.no_check:
        user = client.whoami()
    path = save_config(client.base_url, token)
    who = f" as {user.get('email')}" if user else ""
    _out(f"Logged in to {client.base_url}{who}; settings saved in {path}")
    return 0


def cmd_whoami(args) -> int:
    client = _client()
    user = client.whoami()
    _out(f"{user.get('email')} ({user.get('name')}) on {client.base_url}")
    return 0


def cmd_projects(args) -> int:
    projects = _client().projects.list()
    if not projects:
        _out("No projects yet: create one with 'trainyard create-project definition.json'.")
        return 0
    rows = [("SLUG", "ID", "TYPE", "MODEL", "NAME")]
    for p in projects:
        active = p.get("active_version")
        rows.append((p.get("slug", ""), p.get("id", ""), p.get("problem_type", ""),
                     f"v{active}" if active else "-", p.get("name", "")))
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    for row in rows:
        _out("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False))
             + "  " + str(row[4]))
    return 0


def cmd_create_project(args) -> int:
    project = _client().create_project_from_schema_file(args.definition)
    _out(f"Created project {project['slug']} ({project['id']})")
    return 0


def cmd_upload(args) -> int:
    client = _client()
    project = _project(client, args.project)
    bar = Bar()

    def progress(sent: int, total: int) -> None:
        bar.show(sent / total if total else 1.0, f"{_size(sent)} of {_size(total)}")

    try:
        uploaded = client.files.upload_folder(project, args.local_dir, args.to, progress,
                                              pattern=args.pattern, overwrite=args.overwrite)
    finally:
        bar.done()
    for item in uploaded:
        _out(f"{item.get('path') or item.get('name')}")
    folder = args.to if args.to.endswith("/") else args.to + "/"
    _out(f"Uploaded {len(uploaded)} file{'s' if len(uploaded) != 1 else ''} to "
         f"{project['slug']}/{folder}")
    return 0


def cmd_train(args) -> int:
    client = _client()
    project = _project(client, args.project)
    execution = client.executions.train(project)
    if not args.follow:
        _out(execution["id"])
        return 0
    _err(f"Training {execution['id']} of {project['slug']} started.")
    final = _follow(client, execution, print_lines=True)

    def success(state: dict) -> None:
        result = state.get("result") or {}
        metrics = ", ".join(_headline_metrics(result.get("metrics") or {}))
        version = f"model v{result['version']}" if result.get("version") else "a model"
        _err(f"Training succeeded: {version}" + (f" ({metrics})" if metrics else "") +
             (", now active" if result.get("promoted") else ""))

    return _conclude(final, success)


def _option(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` of ``run --option``: the value read as JSON where it is one (``3``,
    ``true``, ``null``), else as text."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise TrainyardError(f"--option takes NAME=VALUE, not {text!r}")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def cmd_run(args) -> int:
    """Any execution kind the server knows (its OpenAPI document lists them), with its
    options: the server checks both, so the command line knows no kind by name."""
    client = _client()
    project = _project(client, args.project)
    options = dict(_option(text) for text in args.option)
    execution = client.executions.start(project, args.kind, **options)
    if not args.follow:
        _out(execution["id"])
        return 0
    _err(f"{args.kind} {execution['id']} of {project['slug']} started.")
    final = _follow(client, execution, print_lines=True)
    return _conclude(final, lambda state: _err(
        f"{args.kind} succeeded: {json.dumps(state.get('result') or {}, sort_keys=True)}"))


def _headline_metrics(metrics: dict, most: int = 3) -> list[str]:
    """The first few scores (not counts, cross-validation or baseline figures)."""
    skip = ("n_", "cv_", "baseline")
    shown = [f"{k} {v:.4f}" for k, v in metrics.items()
             if isinstance(v, (int, float)) and not k.startswith(skip)
             and not k.endswith("_weighted")]
    return shown[:most]


def _csv_records(rows: list[dict], columns: list[str]) -> list[dict]:
    """The rows' cells as they are in the file (text): the server turns them into values with
    the same rules as a batch file's (so ``NA`` or an empty cell is a missing value there)."""
    return [{c: row.get(c) for c in columns} for row in rows]


def cmd_predict_csv(args, client: Client, project: dict) -> int:
    source = Path(args.csv)
    try:
        handle = source.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise TrainyardError(f"cannot read {source}: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        if not header:
            raise TrainyardError(f"{source} has no header row")
        known = {c.get("name") for c in (project.get("schema") or {}).get("columns", [])}
        send = [c for c in header if not known or c in known]
        extra = [c for c in header if c not in send]
        if extra:
            _err(f"Not sent (not columns of the project's schema): {', '.join(extra)}")
        out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout
        try:
            writer, version, total = None, args.version, 0
            labels: list[str] = []
            while rows := list(itertools.islice(reader, args.chunk_size)):
                try:
                    answer = client.predict_records(project, _csv_records(rows, send), version,
                                                    chunk_size=args.chunk_size)
                except ApiError as exc:
                    if exc.status == 422:
                        exc.message += f" (record numbers count from row {total + 1} " \
                                       f"of {source})"
                        exc.args = (exc.message,)
                    raise
                version = answer["model_version"]
                probabilities = answer.get("probabilities")
                if writer is None:
                    labels = list(probabilities[0]) if probabilities else []
                    writer = csv.writer(out)
                    writer.writerow(header + ["prediction"] +
                                    [f"probability_{label}" for label in labels] +
                                    ["prediction_id"])
                for i, row in enumerate(rows):
                    extra_values = [probabilities[i].get(label) for label in labels] \
                        if probabilities else []
                    ids = answer.get("prediction_ids") or []
                    writer.writerow([row.get(c, "") for c in header] +
                                    [answer["predictions"][i]] + extra_values +
                                    [ids[i] if i < len(ids) else ""])
                total += len(rows)
        finally:
            if out is not sys.stdout:
                out.close()
    if not total:
        raise TrainyardError(f"{source} has no rows to predict")
    where = f" into {args.out}" if args.out else ""
    _err(f"Predicted {total} row{'s' if total != 1 else ''} with model v{version}{where}")
    return 0


def _download_target(dest: str) -> Path:
    """Where ``--download DEST`` goes: DEST itself when it names a CSV file (its folder made
    if missing), else the folder DEST, made if missing (never a file named like the folder)."""
    target = Path(dest)
    if target.is_dir() or target.is_file() or target.suffix.lower() == ".csv":
        target.parent.mkdir(parents=True, exist_ok=True)
        return target
    target.mkdir(parents=True, exist_ok=True)
    return target


def cmd_predict(args) -> int:
    client = _client()
    project = _project(client, args.project)
    if args.csv:
        return cmd_predict_csv(args, client, project)
    if args.out:
        raise TrainyardError("--out goes with --csv; for a batch prediction use --download DEST")
    execution = client.executions.predict(project, args.version)
    _err(f"Prediction {execution['id']} of {project['slug']} started "
         f"(files of {PREDICTION_FOLDER}).")
    final = _follow(client, execution, print_lines=args.follow)

    def success(state: dict) -> None:
        result = state.get("result") or {}
        _err(f"Prediction succeeded: {result.get('rows')} rows from {result.get('files')} "
             f"files with model v{result.get('version')}; output "
             f"{result.get('output_path')}")
        if args.download:
            path = client.download_output(project, state, _download_target(args.download))
            _out(str(path))

    return _conclude(final, success)


def cmd_download(args) -> int:
    client = _client()
    project = _project(client, args.project)
    bar = Bar()
    try:
        path = client.files.download(project, args.path, args.dest,
                                     lambda done, total: bar.show(done / total if total else 1,
                                                                  _size(done)))
    finally:
        bar.done()
    _out(str(path))
    return 0


def cmd_logs(args) -> int:
    client = _client()
    project = _project(client, args.project)
    if args.execution == "latest":
        latest = client.executions.list(project, limit=1)
        if not latest:
            raise TrainyardError(f"{project['slug']} has no executions yet")
        execution = latest[0]
    else:
        execution = client.executions.get(project, args.execution)
    if args.follow:
        final = _follow(client, execution, print_lines=True)
        return _conclude(final, lambda state: None)
    for line in client.executions.iter_logs(project, execution):
        _out(format_line(line))
    if execution.get("status") not in ("succeeded", "queued", "running"):
        _err(f"{execution['status']}: {failure_message(execution)}")
    return 0


def _record_filters(args) -> dict:
    labeled = True if args.labeled else False if args.unlabeled else None
    return {"version": args.model_version, "source": args.source, "since": args.since,
            "until": args.until, "labeled": labeled}


def cmd_records(args) -> int:
    client = _client()
    project = _project(client, args.project)
    filters = _record_filters(args)
    if args.export:
        path = client.records.export(project, args.export, format=args.format, **filters)
        _err(f"Exported the prediction records to {path}")
        return 0
    for record in client.records.list(project, limit=args.limit, **filters):
        label = "" if record.get("labeled_at") is None else f"  actual={record.get('actual')}"
        _out(f"{record['prediction_id']}  {record.get('created_at', '')[:19]}  "
             f"v{record.get('version')}  {record.get('source'):<8}  "
             f"output={record.get('output')}{label}")
    return 0


def cmd_feedback(args) -> int:
    client = _client()
    project = _project(client, args.project)
    target = args.target or (project.get("schema") or {}).get("target")
    if not target:
        raise TrainyardError("the project has no target column; name it with --target")
    source = Path(args.file)
    try:
        handle = source.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise TrainyardError(f"cannot read {source}: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        missing = [c for c in ("prediction_id", target) if c not in header]
        if missing:
            raise TrainyardError(f"{source} needs the columns prediction_id and {target} "
                                 f"(missing: {', '.join(missing)})")
        labels = [{"prediction_id": row["prediction_id"], "actual": row[target]}
                  for row in reader]
    if not labels:
        raise TrainyardError(f"{source} has no rows")
    result = client.records.feedback(project, labels)
    for rejection in result["rejected"]:
        # rows of the file: the header is line 1, the first label line 2
        _err(f"  line {rejection['row'] + 2}: {rejection.get('prediction_id')}: "
             f"{rejection['reason']}")
    _err(f"Labels kept: {result['accepted']}, refused: {len(result['rejected'])}")
    return 0 if result["accepted"] else 1


def cmd_models(args) -> int:
    client = _client()
    project = _project(client, args.project)
    for model in client.models.list(project):
        metrics = ", ".join(_headline_metrics(model.get("metrics") or {}))
        mark = "*" if model.get("active") else " "
        _out(f"{mark} v{model['version']}  {model.get('algorithm', '')}  {metrics}")
    return 0


def cmd_import_model(args) -> int:
    client = _client()
    project = _project(client, args.project)
    execution = client.models.import_file(project, args.model, args.sample)
    if not args.follow:
        _out(execution["id"])
        return 0
    _err(f"Import {execution['id']} of {project['slug']} started.")
    final = _follow(client, execution, print_lines=True)

    def success(state: dict) -> None:
        result = state.get("result") or {}
        _err(f"Imported as model v{result.get('version')} ({result.get('algorithm')})" +
             (", now active" if result.get("promoted") else ""))

    return _conclude(final, success)


def cmd_teams(args) -> int:
    teams = _client().teams.list()
    if not teams:
        _out("No teams yet (admins create them).")
        return 0
    for team in teams:
        _out(f"{team['slug']}  {team['member_count']} members  {team['name']}")
    return 0


def cmd_team(args) -> int:
    team = _client().teams.get(args.team)
    _out(f"{team['name']} ({team['slug']})")
    for member in team.get("members") or []:
        source = " (single sign-on)" if member.get("source") == "sso" else ""
        _out(f"  {member['role']:<6}  {member['user']['email']}{source}")
    return 0


def cmd_team_create(args) -> int:
    team = _client().teams.create(args.name, args.description or "")
    _out(f"Created team {team['slug']} ({team['id']})")
    return 0


def cmd_team_add(args) -> int:
    added = _client().teams.add_member(args.team, args.email, args.role)
    _out(f"{added['user']['email']} is {added['role']} of {args.team}")
    return 0


def cmd_team_remove(args) -> int:
    _client().teams.remove_member(args.team, args.email)
    _out(f"{args.email} is no longer in {args.team}")
    return 0


def cmd_project_team(args) -> int:
    client = _client()
    project = _project(client, args.project)
    if args.remove:
        client.teams.unshare_project(project, args.team)
        _out(f"The team {args.team} no longer holds a role on {project['slug']}")
        return 0
    given = client.teams.share_project(project, args.team, args.role)
    _out(f"Every member of {given['team']['slug']} is {given['role']} on {project['slug']}")
    return 0


def _show_schedule(schedule: dict) -> None:
    state = "on " if schedule.get("enabled") else "off"
    last = schedule.get("last_execution_id") or schedule.get("last_outcome") or "-"
    _out(f"{schedule['id']}  {state}  {schedule['cron']!r} {schedule['timezone']}  next "
         f"{schedule.get('next_run_at') or '-'}  last {last}  {schedule.get('description') or ''}"
         .rstrip())


def cmd_challengers(args) -> int:
    """List a project's challengers, or approve or reject a waiting one."""
    client = _client()
    project = _project(client, args.project)
    if args.approve is not None or args.reject is not None:
        decided = (client.models.approve(project, args.approve) if args.approve is not None
                   else client.models.reject(project, args.reject))
        challenge = decided.get("challenge") or {}
        _out(f"v{decided['version']} {challenge.get('status')}: {challenge.get('reason', '')}")
        return 0
    for version in client.models.challengers(project, "pending" if args.pending else None):
        challenge = version.get("challenge") or {}
        _out(f"v{version['version']}  {challenge.get('status')}  {challenge.get('metric')} "
             f"{challenge.get('challenger_value')} vs v{challenge.get('champion_version')} "
             f"{challenge.get('champion_value')} on {challenge.get('source')} "
             f"({challenge.get('rows') or '-'} rows)")
    return 0


def cmd_schedule(args) -> int:
    """List, add, change or delete a project's retraining schedules."""
    client = _client()
    project = _project(client, args.project)
    if args.action == "list":
        for schedule in client.schedules.list(project):
            _show_schedule(schedule)
        return 0
    if args.action == "add":
        if not args.cron:
            raise TrainyardError("schedule add needs --cron, e.g. --cron '0 3 * * *'")
        _show_schedule(client.schedules.create(project, args.cron, args.timezone or "UTC",
                                               description=args.description or ""))
        return 0
    if not args.id:
        raise TrainyardError(f"schedule {args.action} needs the schedule id (--id)")
    if args.action == "delete":
        client.schedules.delete(project, args.id)
        _err(f"Schedule {args.id} deleted.")
        return 0
    fields = {name: value for name, value in (("cron", args.cron), ("timezone", args.timezone),
                                              ("description", args.description))
              if value is not None}
    if args.action in ("on", "off"):
        fields["enabled"] = args.action == "on"
    _show_schedule(client.schedules.update(project, args.id, **fields))
    return 0


# -- monitoring, alerts, incidents, webhook ------------------------------------------------------

def _number(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def cmd_monitoring(args) -> int:
    client = _client()
    project = _project(client, args.project)
    data = client.monitoring.get(project, version=args.version,
                                 granularity="window" if args.window else "day",
                                 since=args.since, until=args.until)
    if args.json:
        _out(json.dumps(data, indent=2))
        return 0
    points = data.get("points") or []
    if not points:
        _out("No monitors yet (they are computed in the background once predictions come "
             "in).")
        return 0
    metric = project.get("metric") or (points[-1].get("metric") or "")
    _out(f"{'period':<17} {'ver':>3} {'predictions':>11} {'labeled':>7} {metric:>9} "
         f"{'max PSI':>8} {'p95 ms':>7} {'errors':>7}  drifted")
    for point in points:
        period = point.get("day") or point["end"][:16].replace("T", " ")
        metrics = point.get("metrics") or {}
        value = metrics.get(metric, metrics.get(f"{metric}_macro"))
        rate = (point.get("requests") or {}).get("error_rate")
        drift = point.get("drift") or {}
        _out(f"{period:<17} {point['version']:>3} {point['volume']['predictions']:>11} "
             f"{point['volume'].get('labeled', 0):>7} {_number(value):>9} "
             f"{_number(drift.get('max_psi'), 3):>8} "
             f"{_number((point.get('latency_ms') or {}).get('p95')):>7} "
             f"{'-' if rate is None else f'{rate:.1%}':>7}  "
             f"{', '.join(drift.get('drifted') or [])}")
    return 0


def cmd_incidents(args) -> int:
    client = _client()
    project = _project(client, args.project)
    incidents = client.monitoring.incidents(project, "open" if args.open else None)
    if not incidents:
        _out("No incidents.")
        return 0
    for incident in incidents:
        closed = f" closed {incident['closed_at'][:16]}" if incident.get("closed_at") else ""
        _out(f"{incident['id']}  {incident['status']:<6}  v{incident['version']}  "
             f"opened {incident['opened_at'][:16]}{closed}  {incident['summary']}")
    return 0


def _rule_line(rule: dict) -> str:
    limit = f"{rule['hours']} h" if rule["kind"] == "no_traffic" else _number(rule.get(
        "threshold"))
    extra = " ".join(f"{k}={rule[k]}" for k in ("metric", "feature", "min_rows")
                     if rule.get(k) is not None)
    flags = ("retrain " if rule.get("retrain") else "") + ("" if rule.get("enabled", True)
                                                           else "disabled")
    return f"{rule['id']}  {rule['kind']:<16} {limit:<8} {extra} {flags}".rstrip()


def cmd_alerts(args) -> int:
    client = _client()
    project = _project(client, args.project)
    for rule in client.monitoring.rules(project):
        _out(_rule_line(rule))
    return 0


def cmd_alert_add(args) -> int:
    client = _client()
    project = _project(client, args.project)
    fields = {name: getattr(args, name) for name in ("threshold", "metric", "feature",
                                                     "hours", "min_rows")
              if getattr(args, name) is not None}
    if args.retrain:
        fields["retrain"] = True
    _out(_rule_line(client.monitoring.add_rule(project, args.kind, **fields)))
    return 0


def cmd_alert_remove(args) -> int:
    client = _client()
    client.monitoring.delete_rule(_project(client, args.project), args.rule)
    _out(f"Deleted alert rule {args.rule}")
    return 0


def cmd_webhook(args) -> int:
    client = _client()
    project = _project(client, args.project)
    if args.remove:
        client.monitoring.delete_webhook(project)
        _out(f"{project['slug']} has no webhook any more")
        return 0
    if args.url:
        hook = client.monitoring.set_webhook(project, args.url, new_secret=args.new_secret,
                                             enabled=False if args.disable else None)
    else:
        hook = client.monitoring.webhook(project)
    _out(f"{hook['url']} ({'enabled' if hook['enabled'] else 'disabled'})")
    if hook.get("secret"):
        _out(f"Signing secret (shown only now): {hook['secret']}")
    if args.deliveries:
        for delivery in client.monitoring.deliveries(project):
            attempts = ", ".join(f"#{a['attempt']} {a.get('status_code') or a.get('error')}"
                                 for a in delivery.get("attempts") or [])
            _out(f"{delivery['created_at'][:19]}  {delivery['event']:<18} "
                 f"{delivery['status']:<9} {attempts}")
    return 0


def cmd_search(args) -> int:
    found = _client().catalog.search(
        args.query or "", tags=args.tag, problem=args.problem, metrics=args.metric,
        columns=args.column, owner=args.owner, team=args.team, fresh_days=args.fresh_days,
        sort=args.sort, page=args.page, per_page=args.per_page)
    if not found["items"]:
        _out("No listing matches.")
        return 0
    for item in found["items"]:
        metrics = ", ".join(_headline_metrics(item.get("metrics") or {}))
        tags = " ".join(f"#{t}" for t in item.get("tags") or [])
        _out(f"{item['id']}  {item['title']}  [{item.get('problem_type') or ''}] "
             f"v{item.get('version')}  {metrics}  {tags}".rstrip())
    shown = (found["page"] - 1) * found["per_page"] + len(found["items"])
    if shown < found["total"]:
        _out(f"({shown} of {found['total']}; --page {found['page'] + 1} for more)")
    return 0


def cmd_subscribe(args) -> int:
    sub = _client().catalog.subscribe(args.listing, args.per_minute, args.per_day)
    _out(f"Subscribed ({sub['per_minute']}/minute, {sub['per_day']}/day). Your consumer key, "
         "shown only once:")
    _out(sub["key"])
    return 0


# -- parser ------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Work with a Trainyard server from the command line.",
        epilog=f"Settings: {config_path()} (TRAINYARD_URL and TRAINYARD_TOKEN override it).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = command("login", cmd_login, "save the server address and your API token")
    p.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:5000")
    p.add_argument("--token", help="a personal API token (asked for when omitted)")
    p.add_argument("--no-check", action="store_true", help="save without asking the server")

    command("whoami", cmd_whoami, "who the saved token belongs to")
    command("projects", cmd_projects, "list the projects you may see")

    p = command("create-project", cmd_create_project,
                "create a project from a JSON definition (name, problem_type, schema...)")
    p.add_argument("definition", help="the JSON file")

    p = command("upload", cmd_upload, "upload the files of a local folder")
    p.add_argument("project", help="project id or slug")
    p.add_argument("local_dir", help="the local folder")
    p.add_argument("--to", default=TRAINING_FOLDER,
                   help=f"the project folder (default {TRAINING_FOLDER})")
    p.add_argument("--pattern", default="*", help="only files matching this glob")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files that exist already (else nothing is uploaded)")

    p = command("train", cmd_train, "train the project on its training batch files")
    p.add_argument("project", help="project id or slug")
    p.add_argument("--follow", "-f", action="store_true",
                   help="print the log live and wait for the end (exit 1 on failure)")

    p = command("run", cmd_run, "start any execution kind the server offers, with its options")
    p.add_argument("project", help="project id or slug")
    p.add_argument("kind", help="the execution kind, e.g. train, predict, move")
    p.add_argument("--option", "-o", action="append", default=[], metavar="NAME=VALUE",
                   help="an option of the kind (repeatable; the value is read as JSON where "
                        "it is one, e.g. version=2)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="print the log live and wait for the end (exit 1 on failure)")

    p = command("predict", cmd_predict,
                "predict a CSV now (--csv), or run a batch prediction of "
                f"{PREDICTION_FOLDER}")
    p.add_argument("project", help="project id or slug")
    p.add_argument("--csv", help="a local CSV whose rows to predict in real time")
    p.add_argument("--out", help="where to write the CSV with predictions (default stdout)")
    p.add_argument("--version", type=int, help="the model version (default: the active one)")
    p.add_argument("--chunk-size", type=int, default=1000, help="rows per request (--csv)")
    p.add_argument("--download", metavar="DEST",
                   help="batch: download the output CSV to this .csv file or into this "
                        "folder (made if missing)")
    p.add_argument("--follow", "-f", action="store_true", help="batch: print the log live")

    p = command("download", cmd_download, "download a project file")
    p.add_argument("project", help="project id or slug")
    p.add_argument("path", help="the file's path in the project, e.g. models/v1/metrics.json")
    p.add_argument("dest", help="a local file or folder")

    p = command("logs", cmd_logs, "print an execution's log")
    p.add_argument("project", help="project id or slug")
    p.add_argument("execution", help="an execution id, or 'latest'")
    p.add_argument("--follow", "-f", action="store_true", help="follow it to its end")

    p = command("models", cmd_models, "list a project's model versions (* = active)")
    p.add_argument("project", help="project id or slug")

    p = command("import-model", cmd_import_model,
                "import a model trained elsewhere from a skops file (skops.io.dump)")
    p.add_argument("project", help="project id or slug")
    p.add_argument("model", help="the local .skops file")
    p.add_argument("--sample", help="a batch file of the project to check it on (default: its "
                                    "training batch files)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="print the log live and wait for the end (exit 1 on failure)")

    p = command("search", cmd_search, "search the model catalog")
    p.add_argument("query", nargs="?", default="", help="free text (name, card, columns...)")
    p.add_argument("--tag", action="append", default=[], help="a tag (repeatable: all)")
    p.add_argument("--problem", choices=("classification", "regression"))
    p.add_argument("--metric", action="append", default=[],
                   help="a metric range, e.g. 'f1>=0.9' (repeatable: all)")
    p.add_argument("--column", action="append", default=[], help="an input column")
    p.add_argument("--owner", help="the owner's e-mail")
    p.add_argument("--team", help="a team of the owner (slug)")
    p.add_argument("--fresh-days", type=int, help="trained in the last N days")
    p.add_argument("--sort", help="relevance, fresh, title, or a metric name")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--per-page", type=int, default=20)

    p = command("subscribe", cmd_subscribe, "subscribe to a catalog listing: prints the key")
    p.add_argument("listing", help="the listing id")
    p.add_argument("--per-minute", type=int, help="requests per minute (default 60)")
    p.add_argument("--per-day", type=int, help="requests per day (default 10,000)")

    command("teams", cmd_teams, "list the teams")
    p = command("team", cmd_team, "show a team and its members")
    p.add_argument("team", help="team id or slug")
    p = command("team-create", cmd_team_create, "create a team (admins)")
    p.add_argument("name", help="the team's name")
    p.add_argument("--description", help="what the team does")
    p = command("team-add", cmd_team_add,
                "add someone to a team or change their role (admins and the team's leads)")
    p.add_argument("team", help="team id or slug")
    p.add_argument("email", help="the e-mail of an existing account")
    p.add_argument("--role", choices=("member", "lead"), default="member",
                   help="member (default) or lead (admins only)")
    p = command("team-remove", cmd_team_remove, "take someone out of a team")
    p.add_argument("team", help="team id or slug")
    p.add_argument("email", help="their e-mail (or user id)")
    p = command("project-team", cmd_project_team,
                "give every member of a team a role on a project, or take it off (owners)")
    p.add_argument("project", help="project id or slug")
    p.add_argument("team", help="team id or slug")
    p.add_argument("--role", choices=("viewer", "editor", "owner"), default="viewer",
                   help="the role the team's members get (default viewer)")
    p.add_argument("--remove", action="store_true", help="take the team's role off instead")
    p = command("challengers", cmd_challengers,
                "list a project's challengers, or approve or reject one waiting")
    p.add_argument("project", help="project id or slug")
    p.add_argument("--pending", action="store_true", help="only those waiting for approval")
    p.add_argument("--approve", type=int, metavar="VERSION", help="promote this challenger")
    p.add_argument("--reject", type=int, metavar="VERSION", help="keep the active model")

    p = command("schedule", cmd_schedule, "list, add, change or delete retraining schedules")
    p.add_argument("project", help="project id or slug")
    p.add_argument("action", choices=("list", "add", "set", "on", "off", "delete"))
    p.add_argument("--id", help="the schedule (set, on, off, delete)")
    p.add_argument("--cron", help="five cron fields, e.g. '0 3 * * *', or @daily")
    p.add_argument("--timezone", help="an IANA time zone, e.g. Europe/Paris (default UTC)")
    p.add_argument("--description", help="shown with the trigger of what it starts")

    p = command("monitoring", cmd_monitoring,
                "a project's live monitors: volume, metric on feedback, drift, latency, errors")
    p.add_argument("project", help="project id or slug")
    p.add_argument("--version", type=int, help="one model version (default: all)")
    p.add_argument("--window", action="store_true",
                   help="each run of the rolling window instead of each UTC day")
    p.add_argument("--since", help="ISO date or time (default: 30 days ago)")
    p.add_argument("--until", help="ISO date or time")
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    p = command("incidents", cmd_incidents, "a project's incidents, newest first")
    p.add_argument("project", help="project id or slug")
    p.add_argument("--open", action="store_true", help="only the open ones")
    p = command("alerts", cmd_alerts, "a project's alert rules")
    p.add_argument("project", help="project id or slug")
    p = command("alert-add", cmd_alert_add, "add an alert rule (editors)")
    p.add_argument("project", help="project id or slug")
    p.add_argument("kind", choices=("feature_drift", "prediction_drift", "metric_threshold",
                                    "metric_drop", "error_rate", "no_traffic"))
    p.add_argument("--threshold", type=float, help="PSI, metric value, drop or error rate")
    p.add_argument("--metric", help="the metric (default: the project's)")
    p.add_argument("--feature", help="feature_drift: one feature only")
    p.add_argument("--hours", type=int, help="no_traffic: hours without predictions")
    p.add_argument("--min-rows", type=int, help="the fewest rows judged")
    p.add_argument("--retrain", action="store_true",
                   help="an incident of this rule also starts a retraining")
    p = command("alert-remove", cmd_alert_remove, "delete an alert rule (editors)")
    p.add_argument("project", help="project id or slug")
    p.add_argument("rule", help="the rule's id (see trainyard alerts)")
    p = command("webhook", cmd_webhook,
                "show, set (--url) or remove a project's webhook (setting it: owners)")
    p.add_argument("project", help="project id or slug")
    p.add_argument("--url", help="the http(s) address that receives incident events")
    p.add_argument("--new-secret", action="store_true", help="make a new signing secret")
    p.add_argument("--disable", action="store_true", help="keep it but post nothing")
    p.add_argument("--remove", action="store_true", help="remove the webhook")
    p.add_argument("--deliveries", action="store_true", help="also print the delivery log")
    p = command("records", cmd_records,
                "list a project's prediction records (newest first), or export them")
    p.add_argument("project", help="project id or slug")
    p.add_argument("--export", metavar="FILE", help="write every matching record to FILE")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                   help="the export's format (default csv)")
    p.add_argument("--model-version", type=int, help="only this model version")
    p.add_argument("--source", choices=("realtime", "batch"), help="only this source")
    p.add_argument("--since", help="created at or after (ISO 8601)")
    p.add_argument("--until", help="created before (ISO 8601)")
    labeled = p.add_mutually_exclusive_group()
    labeled.add_argument("--labeled", action="store_true", help="only labeled records")
    labeled.add_argument("--unlabeled", action="store_true", help="only unlabeled records")
    p.add_argument("--limit", type=int, default=50, help="records listed (default 50)")

    p = command("feedback", cmd_feedback,
                "send ground truth from a CSV with a prediction_id column and the target")
    p.add_argument("project", help="project id or slug")
    p.add_argument("file", help="the CSV of labels")
    p.add_argument("--target", help="the column with the true values (default: the "
                                    "project's target)")
    return parser


def _print_details(details) -> None:
    """An error's details, one reason a line: per file for an upload (``files[]``, each with
    its ``reasons``), else per field."""
    if not isinstance(details, dict):
        return
    files = details.get("files")
    if isinstance(files, list) and all(isinstance(f, dict) for f in files):
        for problem in files:
            _err(f"  {problem.get('file')}:")
            for reason in problem.get("reasons") or []:
                _err(f"    - {reason}")
        return
    for key, value in details.items():
        if isinstance(value, dict):
            for inner, reason in value.items():
                _err(f"  {key} {inner}: {reason}")
        elif isinstance(value, list):
            _err(f"  {key}:")
            for item in value:
                _err(f"    - {item}")
        elif key != "execution_id":
            _err(f"  {key}: {value}")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; answers the exit code (0 ok, 1 error, 2 usage / not logged in)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if args.command == "predict" and args.chunk_size < 1:
        parser.error("--chunk-size must be 1 or more")
    try:
        return args.func(args)
    except NotLoggedIn as exc:
        _err(f"{PROG}: {exc}")
        return 2
    except ApiError as exc:
        _err(f"{PROG}: {exc}")
        if exc.status in (409, 422):
            _print_details(exc.details)
        return 1
    except TrainyardError as exc:
        _err(f"{PROG}: {exc}")
        return 1
    except TimeoutError as exc:
        _err(f"{PROG}: {exc}")
        return 1
    except OSError as exc:  # a local file that cannot be read or written
        _err(f"{PROG}: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    except KeyboardInterrupt:
        _err(f"{PROG}: interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
