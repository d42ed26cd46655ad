"""Live logs follow access: every change that ends or narrows a user's access takes that user's
sockets out of the project rooms at once, in every web process.

Each socket joins, besides the project rooms it asks for, the room of its user and the room of
the login it was opened with (a cookie session or an API token). A revocation is an order about
those rooms: "the sockets of user X (opened with login L) leave project P's room" (access
narrowed: the client may join again, and is checked again) or "... are disconnected" (the login
ended). The order travels as the name of a room being closed, because closing a room is the one
Socket.IO operation that every process applies to its own sockets (through the message queue
when there is one); the process side reads it back in ``controllers.live``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

#: rooms whose name starts with this carry a revocation order, not sockets
ORDER_PREFIX = "trainyard-revoke:"
#: the event a socket gets when it was taken out of project rooms (it may join again)
ACCESS_CHANGED = "access_changed"


def user_room(user_id: str) -> str:
    """The room every socket of a user joins when it connects."""
    return f"user:{user_id}"


def login_room(login: str) -> str:
    """The room of the sockets opened with one login, named as the session names it: the
    server-side session id, or ``token:<token id>`` (hashed: room names travel through the
    message queue)."""
    return "login:" + hashlib.sha256(login.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Revocation:
    """Which sockets (a user's, or only those opened with one login) and what happens to them:
    ``end`` disconnects them; otherwise they leave ``project_id``'s room (all project rooms when
    it is None) and are told they may join again."""

    user_id: str | None
    project_id: str | None = None
    login: str | None = None
    end: bool = False

    def to_room(self) -> str:
        return ORDER_PREFIX + json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_room(cls, room: str) -> Revocation | None:
        """The order a room name carries, or None for an ordinary room."""
        if not isinstance(room, str) or not room.startswith(ORDER_PREFIX):
            return None
        try:
            return cls(**json.loads(room[len(ORDER_PREFIX):]))
        except (TypeError, ValueError):
            return None


class LiveAccess:
    """Where the access-ending changes tell the live-log layer (one call at each of them).

    Args:
        close_room: closes a Socket.IO room in every process (the socket server's
            ``close_room``); None for scripts and workers that hold no sockets.
    """

    def __init__(self, close_room: Callable[[str], None] | None = None):
        self._close_room = close_room

    def revoke(self, user_id: str | None, project_id: str | None = None, *,
               login: str | None = None, end: bool = False) -> None:
        """Take the user's sockets out, at once and in every process, after a change that ended
        or narrowed their access (call it once the change is stored).

        Args:
            user_id: whose sockets (may be None when ``login`` names them).
            project_id: the project whose room they leave (None: every project room); a
                client that joins again is checked again.
            login: only the sockets opened with this login (a session id, ``token:<id>``).
            end: disconnect the sockets instead (the login, or all the user's logins, ended).
        """
        if self._close_room is not None:
            self._close_room(Revocation(user_id, project_id, login, end).to_room())
