"""The Trainyard API client: ``Client(base_url, token)`` and its parts ``projects``, ``files``,
``executions``, ``models`` and ``records`` (prediction records and their feedback).

Projects, executions and model versions are passed around as the JSON objects the API answers
(plain dicts); a method that needs a project or an execution takes either such a dict or its id.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import requests

from trainyard_client.errors import ApiError, ConnectionFailed, TrainyardError
from trainyard_client.multipart import MultipartFiles

__all__ = ["Client", "FINAL_STATUSES", "ACTIVE_STATUSES"]

ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("succeeded", "failed", "cancelled", "interrupted")
TRAINING_FOLDER = "training_batch_files/"
PREDICTION_FOLDER = "prediction_batch_files/"

#: progress(sent_bytes, total_bytes)
Progress = Callable[[int, int], None]
Ref = str | dict


def _id(ref: Ref, what: str = "project") -> str:
    if isinstance(ref, dict):
        if not ref.get("id"):
            raise TypeError(f"this {what} object has no id")
        return str(ref["id"])
    if isinstance(ref, str) and ref:
        return ref
    raise TypeError(f"give a {what} id or a {what} object, not {ref!r}")


def _reason(exc: Exception) -> str:
    """A short reason for a connection failure, without the urllib3 noise."""
    if isinstance(exc, requests.exceptions.Timeout):
        return "the request timed out"
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if match:
        return match.group(1).strip().rstrip(".").lower()
    if "NameResolutionError" in text or "Name or service not known" in text:
        return "unknown host"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the connection was closed by the server"
    return text.split(":")[-1].strip(" ')") or type(exc).__name__


def _write_stream(response: requests.Response, dest: Path,
                  progress: Progress | None = None) -> Path:
    """Write a streamed response to ``dest`` through a temporary file (no half files)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    total = int(response.headers.get("Content-Length") or 0)
    done = 0
    handle = tempfile.NamedTemporaryFile("wb", dir=dest.parent, prefix=f".{dest.name}.",
                                         delete=False)
    try:
        with handle:
            for chunk in response.iter_content(chunk_size=256 * 1024):
                handle.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total or done)
        os.replace(handle.name, dest)
    except requests.exceptions.RequestException as exc:
        Path(handle.name).unlink(missing_ok=True)
        raise TrainyardError(f"the download of {dest.name} was interrupted: "
                             f"{_reason(exc)}") from exc
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    finally:
        response.close()
    return dest


def _attachment_name(response: requests.Response) -> str | None:
    header = response.headers.get("Content-Disposition", "")
    match = re.search(r"filename\*=UTF-8''([^;]+)", header) or \
        re.search(r'filename="?([^";]+)"?', header)
    return Path(unquote(match.group(1))).name if match else None


class Client:
    """A connection to one Trainyard server.

    Args:
        base_url: the server's address, e.g. ``http://127.0.0.1:5000`` (a trailing ``/api/v1``
            is accepted too).
        token: a personal API token (``ty_...``, made on the profile page or with
            ``POST /api/v1/tokens``); sent as ``Authorization: Bearer <token>``.
        timeout: seconds to wait for the server to answer (connecting takes at most 10).
        session: a ``requests.Session`` to use (a new one by default).

    The parts of the API are attributes: :attr:`projects`, :attr:`files`, :attr:`executions`,
    :attr:`models`, :attr:`teams`, :attr:`monitoring`
    and :attr:`catalog`. Every error of the server raises
    :class:`~trainyard_client.ApiError`; a server that cannot be reached raises
    :class:`~trainyard_client.ConnectionFailed`.
    """

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 300,
                 session: requests.Session | None = None):
        base = str(base_url).strip().rstrip("/")
        if not re.match(r"^https?://[^/]+", base):
            raise TrainyardError(f"the server address must start with http:// or https://, "
                                 f"not {base_url!r}")
        if base.endswith("/api/v1"):
            base = base[: -len("/api/v1")]
        self.base_url = base
        self.api_url = base + "/api/v1"
        self.token = token
        self.timeout = timeout
        self.http = session or requests.Session()
        self.http.headers["User-Agent"] = "trainyard-client/0.1"
        self.http.headers["Accept"] = "application/json"
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        self.projects = Projects(self)
        self.files = Files(self)
        self.executions = Executions(self)
        self.models = Models(self)
        self.teams = Teams(self)
        self.schedules = Schedules(self)
        self.monitoring = Monitoring(self)
        self.records = Records(self)
        self.catalog = Catalog(self)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    # -- HTTP --------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                data: Any = None, headers: dict | None = None, stream: bool = False,
                timeout: float | tuple | None = None) -> requests.Response:
        """Send one request to ``/api/v1<path>``; answer the response when its status is
        below 400, raise :class:`ApiError` otherwise (or :class:`ConnectionFailed`)."""
        url = self.api_url + path
        try:
            response = self.http.request(method, url, params=params, json=json, data=data,
                                         headers=headers, stream=stream,
                                         timeout=timeout or (10, self.timeout))
        except requests.exceptions.RequestException as exc:
            raise ConnectionFailed(self.base_url, _reason(exc)) from exc
        if response.status_code >= 400:
            try:
                raise ApiError.from_response(response)
            finally:
                response.close()
        return response

    def call(self, method: str, path: str, **kwargs) -> Any:
        """:meth:`request`, answering the JSON body (None for an empty answer)."""
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(response.status_code, "bad_response",
                           f"the server answered {method} {path} with something other than "
                           "JSON: is the address the Trainyard server?") from None

    def paginate(self, path: str, params: dict | None = None,
                 per_page: int = 200) -> Iterator[dict]:
        """Every item of a paginated list (``{"items", "page", "per_page", "total"}``),
        fetching the pages one after the other."""
        page = 1
        while True:
            body = self.call("GET", path, params={**(params or {}), "page": page,
                                                  "per_page": per_page})
            items = body.get("items") or []
            yield from items
            if not items or page * body.get("per_page", per_page) >= body.get("total", 0):
                return
            page += 1

    # -- account -----------------------------------------------------------------------------

    def consume_predict(self, listing: Ref, records: Iterable[dict]) -> dict:
        """Predict ``records`` through a catalog listing, with the consumer key as the token
        (``Client(url, token="tyc_...")``)."""
        return self.call("POST", f"/consume/{quote(_id(listing, 'listing'), safe='')}/predict",
                         json={"records": list(records)})

    def consume_score(self, listing: Ref, records: Iterable[dict]) -> dict:
        """Score labeled ``records`` (inputs plus the target) through a catalog listing:
        answers ``{"model_version", "rows", "metrics"}``."""
        return self.call("POST", f"/consume/{quote(_id(listing, 'listing'), safe='')}/score",
                         json={"records": list(records)})

    def whoami(self) -> dict:
        """The user the token belongs to."""
        return self.call("GET", "/session")["user"]

    # -- projects from files -----------------------------------------------------------------

    def create_project_from_schema_file(self, path: str | os.PathLike) -> dict:
        """Create a project from a JSON file holding its definition: ``name``,
        ``problem_type``, ``schema`` and optionally ``description``, ``metric``,
        ``time_budget_seconds``, ``recipients`` (the body of ``POST /projects``)."""
        path = Path(path)
        try:
            definition = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TrainyardError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise TrainyardError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(definition, dict):
            raise TrainyardError(f"{path} must hold a JSON object (the project definition)")
        return self.call("POST", "/projects", json=definition)

    def infer_schema(self, csv_path: str | os.PathLike, *more: str | os.PathLike,
                     target: str | None = None) -> dict:
        """Infer a batch-file schema from sample CSVs (every row of each decides the types):
        ``filename_pattern``, ``columns``, ``target``, ``ignored``. The target is not guessed:
        it is ``target`` when given, else None (see :meth:`propose_schema` for the ranked
        proposals); set it, adjust the rest, then pass it to :meth:`Projects.create`."""
        schema = self.propose_schema(csv_path, *more)["schema"]
        if target is not None:
            schema["target"] = target
            schema["ignored"] = [c for c in schema.get("ignored", []) if c != target]
        return schema

    def propose_schema(self, csv_path: str | os.PathLike, *more: str | os.PathLike) -> dict:
        """The server's whole answer: ``{"schema", "target_proposals"}``, the proposals being
        ``{"column", "problem_type", "reasons"}``, most likely target first."""
        body = MultipartFiles([csv_path, *more], field="sample")
        return self.call("POST", "/schema/infer", data=body,
                         headers={"Content-Type": body.content_type})

    # -- predictions ---------------------------------------------------------------------------

    def predict_records(self, project: Ref, records: Iterable[dict], version: int | None = None,
                        *, chunk_size: int = 1000) -> dict:
        """Predict records now with the active model (or model ``version``).

        ``records`` are objects of column: value (every feature column present; None for an
        unknown value). Values are sent as they are: the server reads text with the same rules
        as a batch file's cells (``"1.5"`` is a number, ``"NA"`` or ``""`` a missing value), so
        the client converts nothing. They are sent ``chunk_size`` at a time;
        every chunk after the first uses the version the first one used, so all rows come from
        one model.

        Answers ``{"model_version", "rows", "prediction_ids": [...], "predictions": [...]}``
        plus ``"probabilities"`` (one ``{label: p}`` per row) for classification; each
        prediction id is what its feedback names (:meth:`Records.feedback`).
        """
        pid = _id(project)
        records = list(records)
        if chunk_size < 1:
            raise ValueError("chunk_size must be 1 or more")
        if not records:
            raise TrainyardError("no records to predict")
        merged: dict[str, Any] = {}
        for start in range(0, len(records), chunk_size):
            body: dict[str, Any] = {"records": records[start:start + chunk_size]}
            if version is not None:
                body["version"] = int(version)
            answer = self.call("POST", f"/projects/{pid}/predict", json=body)
            if not merged:
                merged = {**answer, "predictions": list(answer["predictions"]),
                          "prediction_ids": list(answer.get("prediction_ids") or [])}
                if "probabilities" in answer:
                    merged["probabilities"] = list(answer["probabilities"])
                version = answer["model_version"]
            else:
                merged["rows"] += answer["rows"]
                merged["predictions"].extend(answer["predictions"])
                merged["prediction_ids"].extend(answer.get("prediction_ids") or [])
                if "probabilities" in merged:
                    merged["probabilities"].extend(answer.get("probabilities") or [])
        return merged

    def download_output(self, project: Ref, execution: Ref,
                        dest: str | os.PathLike) -> Path:
        """Download the CSV output of a succeeded prediction execution to ``dest`` (a file, or
        an existing folder: then ``predictions-<execution id>.csv`` in it). Streamed."""
        pid, eid = self.executions._ids(project, execution)
        response = self.request("GET", f"/projects/{pid}/executions/{eid}/output.csv",
                                stream=True, headers={"Accept": "text/csv"})
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / f"predictions-{eid}.csv"
        return _write_stream(response, dest)


class _Part:
    def __init__(self, client: Client):
        self.client = client


class Projects(_Part):
    """Projects: ``client.projects``."""

    def list(self) -> list[dict]:
        """Every project you may see (all pages)."""
        return list(self.client.paginate("/projects"))

    def get(self, project: Ref) -> dict:
        """One project, by id (or object); a slug works too (looked up in the list)."""
        ref = _id(project)
        try:
            return self.client.call("GET", f"/projects/{quote(ref, safe='')}")
        except ApiError as exc:
            if exc.status != 404:
                raise
        return self.resolve(ref)

    def resolve(self, ref: str) -> dict:
        """The project whose id or slug is ``ref`` (from the project list)."""
        for project in self.client.paginate("/projects"):
            if ref in (project.get("id"), project.get("slug")):
                return project
        raise ApiError(404, "not_found", f"no project with the id or slug {ref!r}")

    def create(self, name: str, problem_type: str, schema: dict, *, description: str = "",
               metric: str | None = None, time_budget_seconds: int | None = None,
               recipients: list[str] | None = None, **fields) -> dict:
        """Create a project.

        Args:
            name: its name (the slug is made from it).
            problem_type: ``"classification"`` or ``"regression"``.
            schema: ``{"filename_pattern", "columns": [{"name", "type"}], "target",
                "ignored"}`` (see :meth:`Client.infer_schema`).
            description, metric, time_budget_seconds, recipients: optional settings; any other
                field of ``POST /projects`` may be passed as a keyword.
        """
        body: dict[str, Any] = {"name": name, "problem_type": problem_type, "schema": schema,
                                "description": description, **fields}
        if metric is not None:
            body["metric"] = metric
        if time_budget_seconds is not None:
            body["time_budget_seconds"] = time_budget_seconds
        if recipients is not None:
            body["recipients"] = recipients
        return self.client.call("POST", "/projects", json=body)

    def update(self, project: Ref, **fields) -> dict:
        """Change some fields of a project (``PATCH``); answers the project."""
        return self.client.call("PATCH", f"/projects/{_id(project)}", json=fields)

    def delete(self, project: Ref) -> None:
        """Delete a project with all its files (owners)."""
        self.client.call("DELETE", f"/projects/{_id(project)}")


class Files(_Part):
    """A project's files: ``client.files``. Folders end with ``/``."""

    def list(self, project: Ref, folder: str = "") -> dict:
        """The sub-folders and files of ``folder`` (all pages): ``{"path", "folders": [...],
        "files": [{"path", "name", "size", "modified"}]}``."""
        pid, token = _id(project), None
        merged: dict[str, Any] = {"path": folder, "folders": [], "files": []}
        while True:
            params = {"path": folder}
            if token:
                params["page_token"] = token
            page = self.client.call("GET", f"/projects/{pid}/files", params=params)
            merged["path"] = page.get("path", folder)
            merged["folders"].extend(f for f in page.get("folders", [])
                                     if f not in merged["folders"])
            merged["files"].extend(page.get("files", []))
            token = page.get("next_token")
            if not token:
                return merged

    def upload(self, project: Ref, folder: str, paths: Iterable[str | os.PathLike],
               progress_callback: Progress | None = None, *,
               overwrite: bool = False) -> list[dict]:
        """Upload local files into ``folder`` in one request, streamed from disk. Batch files
        are checked against the schema: all are stored, or none (:class:`ApiError` 422 with
        the reasons in ``details["files"]``, per file). A file that exists already is replaced
        only with ``overwrite`` (else :class:`ApiError` 409, ``details["existing"]``).
        Answers the stored files."""
        paths = [Path(p) for p in paths]
        if not paths:
            return []
        for path in paths:
            if not path.is_file():
                raise TrainyardError(f"{path} is not a file")
        body = MultipartFiles(paths, field="files", progress=progress_callback)
        answer = self.client.call("POST", f"/projects/{_id(project)}/files",
                                  params={"path": folder,
                                          **({"overwrite": "true"} if overwrite else {})},
                                  data=body,
                                  headers={"Content-Type": body.content_type})
        return answer["uploaded"]

    def upload_folder(self, project: Ref, local_dir: str | os.PathLike,
                      remote_folder: str = TRAINING_FOLDER,
                      progress_callback: Progress | None = None, *, pattern: str = "*",
                      files_per_request: int = 100,
                      bytes_per_request: int = 512 * 1024 * 1024,
                      overwrite: bool = False) -> list[dict]:
        """Upload the files of ``local_dir`` (not its sub-folders; hidden files skipped, names
        matching ``pattern``) into ``remote_folder``, in as few requests as the limits allow.
        ``progress_callback(sent_bytes, total_bytes)`` covers the whole folder."""
        local = Path(local_dir)
        if not local.is_dir():
            raise TrainyardError(f"{local} is not a folder")
        paths = sorted(p for p in local.iterdir() if p.is_file() and not p.name.startswith(".")
                       and fnmatch.fnmatch(p.name, pattern))
        if not paths:
            raise TrainyardError(f"no files to upload in {local}")
        groups: list[list[Path]] = [[]]
        size = 0
        for path in paths:
            length = path.stat().st_size
            if groups[-1] and (len(groups[-1]) >= files_per_request
                               or size + length > bytes_per_request):
                groups.append([])
                size = 0
            groups[-1].append(path)
            size += length
        total = sum(MultipartFiles(group).length for group in groups)
        done, uploaded = 0, []
        for group in groups:
            def report(sent: int, _length: int, base: int = done) -> None:
                if progress_callback is not None:
                    progress_callback(base + sent, total)
            uploaded.extend(self.upload(project, remote_folder, group, report,
                                        overwrite=overwrite))
            done += MultipartFiles(group).length
        return uploaded

    def download(self, project: Ref, path: str, dest: str | os.PathLike,
                 progress_callback: Progress | None = None) -> Path:
        """Download the project file ``path`` to ``dest`` (a file, or an existing folder to
        put it in under its own name), streamed. Answers where it was written."""
        response = self.client.request("GET", f"/projects/{_id(project)}/files/content",
                                       params={"path": path}, stream=True,
                                       headers={"Accept": "*/*"})
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / (_attachment_name(response) or Path(path).name)
        return _write_stream(response, dest, progress_callback)

    def delete(self, project: Ref, path: str) -> None:
        """Delete a file, or a folder with everything in it when ``path`` ends with ``/``."""
        self.client.call("DELETE", f"/projects/{_id(project)}/files", params={"path": path})

    def mkdir(self, project: Ref, path: str) -> str:
        """Create a folder; answers its path."""
        return self.client.call("POST", f"/projects/{_id(project)}/folders",
                                json={"path": path})["path"]


class Executions(_Part):
    """Trainings and predictions: ``client.executions``."""

    def _ids(self, project: Ref | None, execution: Ref) -> tuple[str, str]:
        if project is None:
            if not isinstance(execution, dict) or not execution.get("project_id"):
                raise TypeError("give the project, or an execution object (with project_id)")
            return str(execution["project_id"]), _id(execution, "execution")
        return _id(project), _id(execution, "execution")

    def start(self, project: Ref, kind: str, **options) -> dict:
        """Start an execution of ``kind`` (``train``, ``predict``, ``move`` or any other kind
        the server lists in its OpenAPI document) with the kind's ``options``; answers it
        (queued). :class:`ApiError` 409 ``execution_in_progress`` names a running one."""
        return self.client.call("POST", f"/projects/{_id(project)}/executions",
                                json={"kind": kind, **options})

    def train(self, project: Ref) -> dict:
        """Start a training on the files of ``training_batch_files/``."""
        return self.start(project, "train")

    def predict(self, project: Ref, version: int | None = None) -> dict:
        """Start a batch prediction of ``prediction_batch_files/`` with the active model (or
        model ``version``); the output goes to ``prediction_output/<execution>/``."""
        options = {} if version is None else {"version": int(version)}
        return self.start(project, "predict", **options)

    def get(self, project: Ref | None, execution: Ref) -> dict:
        """An execution's current state: ``status``, ``stage``, ``progress``, ``error``,
        ``result``..."""
        pid, eid = self._ids(project, execution)
        return self.client.call("GET", f"/projects/{pid}/executions/{eid}")

    def list(self, project: Ref, *, limit: int | None = None) -> list[dict]:
        """A project's executions, newest first (all, or the first ``limit``)."""
        items = []
        for item in self.client.paginate(f"/projects/{_id(project)}/executions",
                                         per_page=min(limit or 200, 200)):
            items.append(item)
            if limit is not None and len(items) >= limit:
                break
        return items

    def cancel(self, project: Ref | None, execution: Ref) -> dict:
        """Ask a queued or running execution to stop; answers its state."""
        pid, eid = self._ids(project, execution)
        return self.client.call("POST", f"/projects/{pid}/executions/{eid}/cancel")

    def logs(self, project: Ref | None, execution: Ref, after_seq: int = 0,
             limit: int = 1000) -> dict:
        """Log lines after sequence number ``after_seq``: ``{"items": [{execution_id, seq,
        time, level, stage, message}], "last_seq", "status"}``."""
        pid, eid = self._ids(project, execution)
        return self.client.call("GET", f"/projects/{pid}/executions/{eid}/logs",
                                params={"after_seq": after_seq, "limit": limit})

    def iter_logs(self, project: Ref | None, execution: Ref,
                  after_seq: int = 0) -> Iterator[dict]:
        """Every log line written so far after ``after_seq``, in order (all pages)."""
        while True:
            page = self.logs(project, execution, after_seq, limit=1000)
            yield from page["items"]
            if len(page["items"]) < 1000:
                return
            after_seq = page["last_seq"]

    def follow(self, execution: Ref, on_line: Callable[[dict], None] | None = None,
               on_state: Callable[[dict], None] | None = None, *, project: Ref | None = None,
               after_seq: int = 0, transport: str = "auto",
               timeout: float | None = None) -> dict:
        """Follow an execution live until it ends; answers its final state.

        ``on_line(line)`` is called for every log line after ``after_seq``, once each and in
        order; ``on_state(execution)`` for each change of status, stage or progress, last with
        the final state. Both are called in this thread.

        ``transport``: ``"socketio"`` (a websocket authenticated with the token), ``"sse"``
        (the server-sent-events endpoint), ``"poll"``, or ``"auto"``: Socket.IO, falling back
        to SSE when it cannot connect, then to polling. A follower that loses its connection
        goes on with the next transport from the last line it delivered.

        Raises TimeoutError after ``timeout`` seconds.
        """
        from trainyard_client.live import Follower

        pid, eid = self._ids(project, execution)
        return Follower(self.client, pid, eid, on_line, on_state, after_seq=after_seq,
                        timeout=timeout).run(transport)

    def wait(self, execution: Ref, *, project: Ref | None = None, interval: float = 1.0,
             timeout: float | None = None) -> dict:
        """Poll an execution every ``interval`` seconds until it ends; answers its final state
        (whatever the status). Raises TimeoutError after ``timeout`` seconds."""
        pid, eid = self._ids(project, execution)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.get(pid, eid)
            if state["status"] in FINAL_STATUSES:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"execution {eid} is still {state['status']} after "
                                   f"{timeout:g}s")
            time.sleep(interval)


class Models(_Part):
    """Trained model versions: ``client.models``."""

    def list(self, project: Ref) -> list[dict]:
        """Every version of a project's model (``version``, ``metrics``, ``active``...)."""
        return list(self.client.paginate(f"/projects/{_id(project)}/models"))

    def get(self, project: Ref, version: int) -> dict:
        """One model version."""
        return self.client.call("GET", f"/projects/{_id(project)}/models/{int(version)}")

    def promote(self, project: Ref, version: int) -> dict:
        """Make ``version`` the active model (the one predictions use)."""
        return self.client.call("POST",
                                f"/projects/{_id(project)}/models/{int(version)}/promote")

    def rollback(self, project: Ref) -> dict:
        """Make the previously active version active again; answers it."""
        return self.client.call("POST", f"/projects/{_id(project)}/models/rollback")

    def compare(self, project: Ref, a: int, b: int) -> dict:
        """Two versions side by side: metrics with their differences, algorithms, data."""
        return self.client.call("GET", f"/projects/{_id(project)}/models/compare",
                                params={"a": int(a), "b": int(b)})

    def delete(self, project: Ref, version: int) -> None:
        """Delete a version that is not the active one, with its files."""
        self.client.call("DELETE", f"/projects/{_id(project)}/models/{int(version)}")

    def import_file(self, project: Ref, model_path: str | os.PathLike,
                    sample_path: str | os.PathLike | None = None) -> dict:
        """Import a model trained elsewhere from a local skops file (``skops.io.dump``),
        checked on ``sample_path`` (a batch file of the project; default: its training batch
        files). Answers the ``import`` execution (wait for it with
        ``client.executions.wait``); a file naming untrusted types is refused at once
        (ApiError 422, the types in ``details["untrusted_types"]``)."""
        parts = [("model", model_path)] + ([("sample", sample_path)] if sample_path else [])
        body = MultipartFiles(parts)
        return self.client.call("POST", f"/projects/{_id(project)}/models/import", data=body,
                                headers={"Content-Type": body.content_type})

    def challengers(self, project: Ref, status: str | None = None) -> list[dict]:
        """Versions trained while another was active, with their ``challenge`` (comparison,
        outcome, reason); ``status="pending"``: those waiting for approval."""
        params = {"status": status} if status else None
        return self.client.call("GET", f"/projects/{_id(project)}/challengers",
                                params=params)["items"]

    def approve(self, project: Ref, version: int) -> dict:
        """Promote a challenger waiting for approval (ApiError 409 when it is not waiting)."""
        return self.client.call("POST",
                                f"/projects/{_id(project)}/models/{int(version)}/approve")

    def reject(self, project: Ref, version: int) -> dict:
        """Reject a challenger waiting for approval; the active model stays."""
        return self.client.call("POST",
                                f"/projects/{_id(project)}/models/{int(version)}/reject")


class Teams(_Part):
    """Teams, and the roles teams hold on projects: ``client.teams``. A team is named by its
    id or its slug."""

    def list(self) -> list[dict]:
        """Every team (``id``, ``name``, ``slug``, ``description``, ``member_count``)."""
        return list(self.client.paginate("/teams"))

    def get(self, team: Ref) -> dict:
        """One team with its ``members`` (``user``, ``role``: lead or member, ``source``)."""
        return self.client.call("GET", f"/teams/{quote(_id(team, 'team'), safe='')}")

    def create(self, name: str, description: str = "") -> dict:
        """Create a team (admins)."""
        return self.client.call("POST", "/teams", json={"name": name,
                                                        "description": description})

    def update(self, team: Ref, **fields) -> dict:
        """Rename a team or change its ``description`` (admins)."""
        return self.client.call("PATCH", f"/teams/{quote(_id(team, 'team'), safe='')}",
                                json=fields)

    def delete(self, team: Ref) -> None:
        """Delete a team (admins): its members lose the roles it held at once."""
        self.client.call("DELETE", f"/teams/{quote(_id(team, 'team'), safe='')}")

    def add_member(self, team: Ref, email: str, role: str = "member") -> dict:
        """Add someone to a team or change their role (admins and the team's leads; only
        admins name leads)."""
        return self.client.call("PUT", f"/teams/{quote(_id(team, 'team'), safe='')}/members",
                                json={"email": email, "role": role})

    def remove_member(self, team: Ref, user: Ref) -> None:
        """Take someone (their user id, their e-mail, or a user object) out of a team."""
        found = self.get(team)
        ref = _id(user, "user")
        for member in found.get("members") or []:
            if ref in (member["user"]["id"], member["user"]["email"]):
                ref = member["user"]["id"]
                break
        self.client.call("DELETE", f"/teams/{quote(found['id'], safe='')}/members/"
                                   f"{quote(ref, safe='')}")

    def share_project(self, project: Ref, team: Ref, role: str) -> dict:
        """Give every member of ``team`` the ``role`` (viewer, editor, owner) on a project
        (owners)."""
        return self.client.call("PUT", f"/projects/{_id(project)}/teams",
                                json={"team": _id(team, "team"), "role": role})

    def unshare_project(self, project: Ref, team: Ref) -> None:
        """Take a team's role off a project (owners)."""
        self.client.call("DELETE", f"/projects/{_id(project)}/teams/"
                                   f"{quote(self.get(team)['id'], safe='')}")


class Schedules(_Part):
    """Retraining schedules of a project: ``client.schedules``."""

    def list(self, project: Ref) -> list[dict]:
        """The project's schedules (``cron``, ``timezone``, ``enabled``, ``next_run_at``,
        ``last_execution_id``, ``last_outcome``...)."""
        return self.client.call("GET", f"/projects/{_id(project)}/schedules")["items"]

    def create(self, project: Ref, cron: str, timezone: str = "UTC", *,
               description: str = "", enabled: bool = True) -> dict:
        """Add a schedule: retrain at every slot of ``cron`` (``0 3 * * *``) in ``timezone``
        (``Europe/Paris``). An invalid rule or zone raises ApiError 422 naming the field."""
        return self.client.call("POST", f"/projects/{_id(project)}/schedules", json={
            "cron": cron, "timezone": timezone, "description": description,
            "enabled": enabled})

    def update(self, project: Ref, schedule_id: str, **fields) -> dict:
        """Change ``cron``, ``timezone``, ``description`` or ``enabled`` of a schedule."""
        return self.client.call("PATCH", f"/projects/{_id(project)}/schedules/{schedule_id}",
                                json=fields)

    def delete(self, project: Ref, schedule_id: str) -> None:
        """Delete a schedule."""
        self.client.call("DELETE", f"/projects/{_id(project)}/schedules/{schedule_id}")


class Monitoring(_Part):
    """Live monitoring, alert rules, incidents and the webhook: ``client.monitoring``."""

    def get(self, project: Ref, *, version: int | None = None, granularity: str = "day",
            since: str | None = None, until: str | None = None) -> dict:
        """The monitor points (``granularity`` ``day`` or ``window``; ``since``/``until``:
        ISO dates or times): ``{"points": [{"version", "start", "end", "volume",
        "latency_ms", "requests", "metrics", "drift"...}], ...}``."""
        params = {"granularity": granularity}
        for name, value in (("version", version), ("from", since), ("to", until)):
            if value is not None:
                params[name] = value
        return self.client.call("GET", f"/projects/{_id(project)}/monitoring", params=params)

    def rules(self, project: Ref) -> list[dict]:
        """The project's alert rules (its defaults until changed)."""
        return list(self.client.paginate(f"/projects/{_id(project)}/alert-rules"))

    def add_rule(self, project: Ref, kind: str, **fields) -> dict:
        """Add an alert rule: ``kind`` and its ``threshold`` (``hours`` for no_traffic),
        optionally ``metric``, ``feature``, ``min_rows``, ``retrain``, ``enabled``."""
        return self.client.call("POST", f"/projects/{_id(project)}/alert-rules",
                                json={"kind": kind, **fields})

    def update_rule(self, project: Ref, rule: Ref, **fields) -> dict:
        """Change fields of an alert rule."""
        return self.client.call("PATCH", f"/projects/{_id(project)}/alert-rules/"
                                         f"{_id(rule, 'rule')}", json=fields)

    def delete_rule(self, project: Ref, rule: Ref) -> None:
        self.client.call("DELETE", f"/projects/{_id(project)}/alert-rules/{_id(rule, 'rule')}")

    def incidents(self, project: Ref, status: str | None = None) -> list[dict]:
        """The project's incidents, newest first (``status``: open or closed)."""
        return list(self.client.paginate(f"/projects/{_id(project)}/incidents",
                                         {"status": status} if status else None))

    def incident(self, project: Ref, incident: Ref) -> dict:
        return self.client.call("GET", f"/projects/{_id(project)}/incidents/"
                                       f"{_id(incident, 'incident')}")

    def webhook(self, project: Ref) -> dict:
        """The project's webhook (raises ApiError 404 when it has none)."""
        return self.client.call("GET", f"/projects/{_id(project)}/webhook")

    def set_webhook(self, project: Ref, url: str, *, enabled: bool | None = None,
                    new_secret: bool = False) -> dict:
        """Create or change the webhook; the answer holds ``secret`` when one was made (on
        creation or with ``new_secret``): it is shown only this once."""
        body: dict = {"url": url}
        if enabled is not None:
            body["enabled"] = enabled
        if new_secret:
            body["new_secret"] = True
        return self.client.call("PUT", f"/projects/{_id(project)}/webhook", json=body)

    def delete_webhook(self, project: Ref) -> None:
        self.client.call("DELETE", f"/projects/{_id(project)}/webhook")

    def deliveries(self, project: Ref) -> list[dict]:
        """The webhook's delivery log, newest first, each with its attempts."""
        return list(self.client.paginate(f"/projects/{_id(project)}/webhook/deliveries"))


#: labels sent per feedback request (the server takes at most 10,000)
FEEDBACK_CHUNK = 5000


class Records(_Part):
    """Prediction records and ground-truth feedback: ``client.records``.

    Filters (keyword arguments of :meth:`list` and :meth:`export`): ``version``, ``source``
    (``"realtime"`` or ``"batch"``), ``since`` and ``until`` (ISO 8601 text or datetimes),
    ``labeled`` (True / False).
    """

    @staticmethod
    def _filters(filters: dict) -> dict:
        params = {}
        for name, value in filters.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif hasattr(value, "isoformat"):
                value = value.isoformat()
            params[name] = value
        return params

    def list(self, project: Ref, *, limit: int | None = None, **filters) -> list[dict]:
        """The project's records, newest first (all pages, or the first ``limit``)."""
        items = self.client.paginate(f"/projects/{_id(project)}/records",
                                     self._filters(filters))
        return list(items if limit is None else
                    (item for _, item in zip(range(limit), items, strict=False)))

    def get(self, project: Ref, prediction_id: str) -> dict:
        """One record, by the prediction id its prediction answered."""
        return self.client.call("GET", f"/projects/{_id(project)}/records/"
                                       f"{quote(str(prediction_id), safe='')}")

    def export(self, project: Ref, dest: str | os.PathLike, *, format: str = "csv",
               **filters) -> Path:
        """Download every matching record (oldest first) as CSV or JSON lines (``format``
        ``"jsonl"``) into ``dest``, streamed."""
        response = self.client.request(
            "GET", f"/projects/{_id(project)}/records/export",
            params={"format": format, **self._filters(filters)}, stream=True,
            headers={"Accept": "*/*"})
        return _write_stream(response, Path(dest))

    def feedback(self, project: Ref, labels: Iterable, *,
                 chunk_size: int = FEEDBACK_CHUNK) -> dict:
        """Send ground truth for past predictions: ``labels`` are ``{"prediction_id",
        "actual"}`` objects or ``(prediction_id, actual)`` pairs. Values go as they are
        (text is read by the schema's rules, as a batch file's cell). Sent ``chunk_size`` at
        a time; every good label is kept.

        Answers ``{"accepted": n, "rejected": [{"row", "prediction_id", "reason"}]}`` with
        rows counted from 0 over all of ``labels``. Raises :class:`ApiError` only for what
        is not about single labels (no access, a malformed request).
        """
        items = [dict(label) if isinstance(label, dict) else
                 {"prediction_id": label[0], "actual": label[1]} for label in labels]
        if not items:
            raise TrainyardError("no labels to send")
        if chunk_size < 1:
            raise ValueError("chunk_size must be 1 or more")
        result: dict[str, Any] = {"accepted": 0, "rejected": []}
        for start in range(0, len(items), chunk_size):
            try:
                answer = self.client.call("POST", f"/projects/{_id(project)}/feedback",
                                          json={"labels": items[start:start + chunk_size]})
            except ApiError as exc:  # no label of this chunk kept: its reasons are listed
                details = exc.details if isinstance(exc.details, dict) else {}
                if exc.status != 422 or not isinstance(details.get("rejected"), list):
                    raise
                answer = {"accepted": 0, "rejected": details["rejected"]}
            result["accepted"] += answer["accepted"]
            result["rejected"] += [{**r, "row": r["row"] + start} for r in answer["rejected"]]
        return result


class Catalog(_Part):
    """The model catalog: ``client.catalog``. Search, cards, publishing, subscribing, and the
    consumer calls a consumer key (``tyc_...``) makes (:meth:`Client.consume_predict`)."""

    def search(self, q: str = "", *, tags: Iterable[str] = (), problem: str | None = None,
               metrics: Iterable[str] = (), columns: Iterable[str] = (),
               owner: str | None = None, team: str | None = None,
               fresh_days: int | None = None, sort: str | None = None, page: int = 1,
               per_page: int = 20) -> dict:
        """One page of the listings you may see matching every filter (``metrics``: ranges
        such as ``"f1>=0.9"``): ``{"items", "page", "per_page", "total"}``."""
        params = {"q": q, "tag": list(tags), "problem": problem, "metric": list(metrics),
                  "column": list(columns), "owner": owner, "team": team,
                  "fresh_days": fresh_days, "sort": sort, "page": page, "per_page": per_page}
        return self.client.call("GET", "/catalog", params={k: v for k, v in params.items()
                                                           if v not in (None, "", [])})

    def get(self, listing: Ref) -> dict:
        """One listing."""
        return self.client.call("GET", f"/catalog/{quote(_id(listing, 'listing'), safe='')}")

    def card(self, listing: Ref) -> dict:
        """A listing's model card (the readme as sanitized HTML, and the generated sections)."""
        return self.client.call("GET",
                                f"/catalog/{quote(_id(listing, 'listing'), safe='')}/card")

    def publish(self, project: Ref, title: str, **fields) -> dict:
        """Publish a project's model (its owner): ``summary``, ``readme``, ``visibility``
        (organisation, teams, public), ``teams``, ``template``, ``pinned_version``, ``tags``."""
        return self.client.call("POST", f"/projects/{_id(project)}/listings",
                                json={"title": title, **fields})

    def update(self, listing: Ref, **fields) -> dict:
        """Change a listing (``status="unpublished"`` stops every consumer key)."""
        return self.client.call("PATCH", f"/catalog/{quote(_id(listing, 'listing'), safe='')}",
                                json=fields)

    def subscribe(self, listing: Ref, per_minute: int | None = None,
                  per_day: int | None = None) -> dict:
        """Subscribe: answers the subscription with its consumer ``key`` (shown once)."""
        body = {k: v for k, v in (("per_minute", per_minute), ("per_day", per_day))
                if v is not None}
        return self.client.call(
            "POST", f"/catalog/{quote(_id(listing, 'listing'), safe='')}/subscriptions",
            json=body)

    def consumers(self, listing: Ref) -> list[dict]:
        """Each consumer of your listing with its usage (requests, rows, errors, latency)."""
        return self.client.call(
            "GET", f"/catalog/{quote(_id(listing, 'listing'), safe='')}/consumers")["consumers"]

    def revoke(self, listing: Ref, subscription: Ref) -> None:
        """Revoke a consumer key (the listing's owner, or the subscriber)."""
        sub_id = quote(_id(subscription, "subscription"), safe="")
        self.client.call("DELETE", f"/catalog/{quote(_id(listing, 'listing'), safe='')}"
                                   f"/consumers/{sub_id}")
