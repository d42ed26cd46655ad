"""Following an execution live: Socket.IO (websocket, authenticated with the API token), the
server-sent-events endpoint, or polling. Every transport feeds one :class:`Follower`, which
hands the log lines on once each and in sequence order, whatever order they arrived in."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator

import requests

from trainyard_client.client import FINAL_STATUSES, Client
from trainyard_client.errors import ApiError, ConnectionFailed

TRANSPORTS = ("auto", "socketio", "sse", "poll")
QUIET_SECONDS = 5.0  # without news for this long, ask the REST API
GAP_SECONDS = 2.0  # a missing line not arrived by then is fetched over REST


class _Unavailable(Exception):
    """This transport cannot be used (or was lost); try the next one."""


def _state_key(state: dict) -> tuple:
    return (state.get("status"), state.get("stage"), state.get("progress"), state.get("error"))


def parse_sse(chunks: Iterator[bytes]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent-events byte stream."""
    buffer = b""
    event, data = "message", []
    for chunk in chunks:
        buffer += chunk
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                break
            line, buffer = buffer[:end].rstrip(b"\r").decode("utf-8"), buffer[end + 1:]
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "message", []
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)


def _disconnect(sio) -> None:
    try:
        sio.disconnect()
    except Exception:  # noqa: BLE001,S110 - already closed
        pass


class Follower:
    """Follows execution ``execution_id`` of project ``project_id`` to its end."""

    def __init__(self, client: Client, project_id: str, execution_id: str,
                 on_line: Callable[[dict], None] | None = None,
                 on_state: Callable[[dict], None] | None = None, *, after_seq: int = 0,
                 timeout: float | None = None):
        self.client = client
        self.project_id = project_id
        self.execution_id = execution_id
        self.on_line = on_line
        self.on_state = on_state
        self.next_seq = after_seq + 1
        self.pending: dict[int, dict] = {}
        self.gap_since: float | None = None
        self.last_key: tuple | None = None
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.timeout = timeout

    # -- delivery ----------------------------------------------------------------------------

    def line(self, record: dict) -> None:
        if record.get("execution_id") not in (None, self.execution_id):
            return
        seq = int(record.get("seq", 0))
        if seq < self.next_seq:
            return  # already delivered (a replayed line may arrive twice)
        self.pending[seq] = record
        self._flush()

    def _flush(self) -> None:
        while self.next_seq in self.pending:
            record = self.pending.pop(self.next_seq)
            self.next_seq += 1
            if self.on_line is not None:
                self.on_line(record)
        if self.pending:
            self.gap_since = self.gap_since or time.monotonic()
        else:
            self.gap_since = None

    def state(self, state: dict) -> None:
        key = _state_key(state)
        if key != self.last_key:
            self.last_key = key
            if self.on_state is not None:
                self.on_state(state)

    def catch_up(self) -> None:
        """Fetch the lines after the last one delivered over REST."""
        for record in self.client.executions.iter_logs(self.project_id, self.execution_id,
                                                       self.next_seq - 1):
            self.line(record)

    def finish(self, final: dict) -> dict:
        """Deliver every remaining line, then the final state."""
        self.catch_up()
        for seq in sorted(self.pending):  # lines beyond a gap that will never fill
            self.next_seq = seq
            self._flush()
        self.last_key = _state_key(final)
        if self.on_state is not None:
            self.on_state(final)
        return final

    def current(self) -> dict:
        return self.client.executions.get(self.project_id, self.execution_id)

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise TimeoutError(f"execution {self.execution_id} did not end within "
                               f"{self.timeout:g}s")

    # -- transports --------------------------------------------------------------------------

    def run(self, transport: str = "auto") -> dict:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
        order = {"auto": ("socketio", "sse", "poll"), "socketio": ("socketio",),
                 "sse": ("sse",), "poll": ("poll",)}[transport]
        last_error: Exception | None = None
        for name in order:
            try:
                return getattr(self, f"_{name}")()
            except _Unavailable as exc:
                last_error = exc
        raise ConnectionFailed(self.client.base_url, f"cannot follow the execution live "
                                                     f"({last_error})")

    def _socketio(self) -> dict:
        try:
            import socketio
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise _Unavailable("python-socketio is not installed") from exc
        events: queue.Queue = queue.Queue()
        sio = socketio.Client(reconnection=False)
        sio.on("log", lambda data: events.put(("log", data)))
        sio.on("execution", lambda data: events.put(("execution", data)))
        sio.on("join_error", lambda data: events.put(("join_error", data)))
        sio.on("access_changed", lambda data: events.put(("access_changed", data)))
        sio.on("disconnect", lambda *args: events.put(("disconnect", None)))
        try:
            sio.connect(self.client.base_url, auth={"token": self.client.token or ""},
                        transports=["websocket"], wait_timeout=10)
        except Exception as exc:  # noqa: BLE001 - refused, no websocket, proxy...
            raise _Unavailable(f"Socket.IO: {exc}") from exc
        def join() -> None:
            sio.emit("join", {"project_id": self.project_id,
                              "execution_id": self.execution_id,
                              "after_seq": self.next_seq - 1})

        try:
            join()
            last_news = time.monotonic()
            while True:
                self._check_deadline()
                try:
                    event, data = events.get(timeout=0.5)
                except queue.Empty:
                    event, data = None, None
                if event == "log":
                    last_news = time.monotonic()
                    self.line(data)
                elif event == "execution" and data.get("id") == self.execution_id:
                    last_news = time.monotonic()
                    if data.get("status") in FINAL_STATUSES:
                        return self.finish(data)
                    self.state(data)
                elif event == "join_error":
                    message = (data or {}).get("message") or "cannot watch this execution"
                    raise ApiError(404, "join_error", message)
                elif event == "access_changed":  # out of the room: join again, checked again
                    join()
                elif event == "disconnect":
                    raise _Unavailable("the Socket.IO connection was closed")
                quiet = time.monotonic() - last_news >= QUIET_SECONDS
                gap = self.gap_since and time.monotonic() - self.gap_since >= GAP_SECONDS
                if quiet or gap:
                    self.catch_up()
                    if quiet:
                        last_news = time.monotonic()
                        state = self.current()
                        if state["status"] in FINAL_STATUSES:
                            return self.finish(state)
                        self.state(state)
        finally:
            # Closing a websocket waits for the server's close frame (up to 3 s): do it in
            # the background so the caller gets the final state at once.
            threading.Thread(target=_disconnect, args=(sio,), daemon=True).start()

    def _sse(self) -> dict:
        path = f"/projects/{self.project_id}/executions/{self.execution_id}/events"
        failures = 0
        while True:
            self._check_deadline()
            try:
                response = self.client.request("GET", path,
                                               params={"after_seq": self.next_seq - 1},
                                               headers={"Accept": "text/event-stream"},
                                               stream=True, timeout=(10, 30))
            except ApiError as exc:
                missing = exc.status in (405, 501) or (
                    exc.status == 404 and exc.message == "No such page or API endpoint.")
                if missing:  # a server without the SSE endpoint
                    raise _Unavailable(f"SSE: {exc.message}") from exc
                raise
            except ConnectionFailed as exc:
                raise _Unavailable(f"SSE: {exc.reason}") from exc
            progressed = stalled = False
            try:
                for event, data in parse_sse(response.iter_content(chunk_size=None)):
                    progressed = True
                    payload = json.loads(data)
                    if event == "log":
                        self.line(payload)
                    elif event == "execution":
                        if payload.get("status") in FINAL_STATUSES:
                            return self.finish(payload)
                        self.state(payload)
                    self._check_deadline()
            except (requests.exceptions.RequestException, ValueError) as exc:
                # a dropped or stalled stream: reconnect from the last line delivered
                stalled = "timed out" in str(exc).lower()
            finally:
                response.close()
            state = self.current()
            if state["status"] in FINAL_STATUSES:
                return self.finish(state)
            failures = 0 if progressed or stalled else failures + 1
            if failures >= 5:
                raise _Unavailable("SSE: the event stream keeps closing")
            time.sleep(0.2 * failures)

    def _poll(self, interval: float = 1.0) -> dict:
        while True:
            self._check_deadline()
            self.catch_up()
            state = self.current()
            if state["status"] in FINAL_STATUSES:
                return self.finish(state)
            self.state(state)
            time.sleep(interval)
