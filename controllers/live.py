"""Live logs over Socket.IO: a browser joins its project's room and gets the lines it missed,
then the live ones. Joining checks the same project role as the pages."""

from __future__ import annotations

from flask_login import current_user
from flask_socketio import SocketIO, emit, join_room

from controllers.services import context
from controllers.sessions import sign_in
from exception_layer import NotFound
from logging_layer.execution_logger import project_room
from services import accounts, executions
from services.access import load_project


def register_live_events(socketio: SocketIO) -> None:
    """Attach the Socket.IO event handlers."""

    @socketio.on("connect")
    def connect(auth=None):
        # A cookie session, or an API token in the connection's auth payload
        # ({"token": "ty_..."}); anonymous sockets are refused outright.
        if current_user.is_authenticated:
            return True
        token = auth.get("token") if isinstance(auth, dict) else None
        found = accounts.user_for_token(context(), str(token)) if token else None
        if found is None:
            return False
        sign_in(found[0], api_token_id=found[1].id)  # for this socket's session only
        return True

    @socketio.on("join")
    def join(data):
        if not current_user.is_authenticated:
            emit("join_error", {"message": "Please log in."})
            return
        if not isinstance(data, dict):
            emit("join_error", {"message": "join needs {project_id, execution_id, after_seq}."})
            return
        ctx = context()
        try:
            project = load_project(ctx, project_id=str(data.get("project_id") or ""))
        except NotFound:
            emit("join_error", {"message": "No such project."})
            return
        join_room(project_room(project.id))
        execution_id = data.get("execution_id") or project.active_execution_id
        try:
            execution = executions.load(ctx, project, str(execution_id)) if execution_id \
                else None
        except NotFound:
            execution = None
        if execution is None:
            return
        try:
            after_seq = max(0, int(data.get("after_seq") or 0))
        except (TypeError, ValueError):
            after_seq = 0
        # Joined first, then replayed: a line written meanwhile may arrive twice (the client
        # drops repeated seq numbers) but never goes missing.
        for record in executions.logs(ctx, execution, after_seq):
            emit("log", record.to_public())
        emit("execution", executions.reload(ctx, execution).to_public())
