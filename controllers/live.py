"""Live logs over Socket.IO: a browser joins its project's room and gets the lines it missed,
then the live ones. Joining checks the same project role as the pages, on every (re)join.

Every socket also joins the room of its user and of its login, so that a change that ends or
narrows access reaches all the user's sockets in every process (see logging_layer.live_access):
:class:`RevokingRooms` applies such an order to the sockets of this process."""

from __future__ import annotations

import socketio as socketio_library
from flask import session
from flask_login import current_user
from flask_socketio import SocketIO, emit, join_room, leave_room

from controllers.services import context
from controllers.sessions import sign_in
from exception_layer import NotFound
from logging_layer.execution_logger import project_room
from logging_layer.live_access import ACCESS_CHANGED, Revocation, login_room, user_room
from services import accounts, executions
from services.access import load_project
from services.context import Context

_PROJECT_ROOMS = project_room("")


class RevokingRooms:
    """Mixed into the Socket.IO client manager: closing a room whose name carries a
    :class:`Revocation` applies it to the matching sockets of this process instead. Every
    manager calls ``basic_close_room`` in each process for a closed room, the message-queue
    ones for the closes published by other processes too."""

    def basic_close_room(self, room, namespace):
        order = Revocation.from_room(room)
        if order is None:
            return super().basic_close_room(room, namespace)
        room_of_sockets = (login_room(order.login) if order.login is not None
                           else user_room(order.user_id))
        sids = [sid for sid, _ in self.get_participants(namespace, room_of_sockets)]
        for sid in sids:
            if order.end:
                self.server.disconnect(sid, namespace=namespace, ignore_queue=True)
                continue
            rooms = [r for r in self.get_rooms(sid, namespace) if isinstance(r, str)
                     and r.startswith(_PROJECT_ROOMS)
                     and (order.project_id is None or r == project_room(order.project_id))]
            for left in rooms:
                self.basic_leave_room(sid, namespace, left)
            if rooms:
                self.server.emit(ACCESS_CHANGED, {"project_id": order.project_id}, to=sid,
                                 namespace=namespace, ignore_queue=True)
        return None


def client_manager(message_queue: str | None, channel: str = "flask-socketio"):
    """The Socket.IO client manager of a web process: Flask-SocketIO's choice for
    ``message_queue`` (none: in memory), with :class:`RevokingRooms` mixed in."""
    if not message_queue:
        base = socketio_library.Manager
    elif message_queue.startswith(("redis://", "rediss://")):
        base = socketio_library.RedisManager
    elif message_queue.startswith("kafka://"):
        base = socketio_library.KafkaManager
    elif message_queue.startswith("zmq"):
        base = socketio_library.ZmqManager
    else:
        base = socketio_library.KombuManager
    manager = type(f"Revoking{base.__name__}", (RevokingRooms, base), {})
    return manager(message_queue, channel=channel) if message_queue else manager()


def _may_still_watch(ctx: Context, project_id: str) -> bool:
    """True if the user, read again from the database, may still watch the project."""
    user = accounts.get_user(ctx, ctx.user.id)
    if user is None or not user.active:
        return False
    try:
        load_project(Context(ctx.platform, user, ctx.address), project_id=project_id)
    except NotFound:
        return False
    return True


def register_live_events(socketio: SocketIO) -> None:
    """Attach the Socket.IO event handlers."""

    @socketio.on("connect")
    def connect(auth=None):
        # A cookie session, or an API token in the connection's auth payload
        # ({"token": "ty_..."}); anonymous sockets are refused outright.
        if not current_user.is_authenticated:
            token = auth.get("token") if isinstance(auth, dict) else None
            found = accounts.user_for_token(context(), str(token)) if token else None
            if found is None:
                return False
            sign_in(found[0], api_token_id=found[1].id)  # for this socket's session only
        join_room(user_room(current_user.id))
        join_room(login_room(session.get("sid") or ""))
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
        # Checked again once in the room: access that ended between the first check and the
        # join took effect before the room had this socket, so its revocation missed it.
        if not _may_still_watch(ctx, project.id):
            leave_room(project_room(project.id))
            emit("join_error", {"message": "No such project."})
            return
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
