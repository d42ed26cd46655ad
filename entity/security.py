"""Security records: personal API tokens, one-time tokens (invitations, password resets),
the audit log, failed logins, and the platform's own settings."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from entity.base import from_iso, new_id, new_sortable_id, to_iso, utcnow
from entity.store import Collection

TOKEN_SCOPES = ("read", "write")
#: how long a process keeps trusting a token (and its user) it has just read from the database:
#: a revocation or deactivation elsewhere takes effect in every process within this time (at
#: once in the process that made it)
RECENT_TOKEN_SECONDS = 5.0
#: how often a login session's last use is written (so that a page view rarely writes)
SESSION_SEEN_EVERY = timedelta(hours=1)
#: how long the login throttle's kept records (an account's known addresses) live
KEEP_LOGIN_RECORDS = timedelta(days=30)


def hash_secret(secret: str) -> str:
    """Tokens are random 256-bit values, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


# -- personal API tokens ---------------------------------------------------------------------

@dataclass
class ApiToken:
    user_id: str
    name: str
    scope: str
    token_hash: str
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @staticmethod
    def issue(user_id: str, name: str, scope: str) -> tuple[ApiToken, str]:
        """A new token and its clear value ``ty_<id>_<secret>`` (shown once, never stored)."""
        secret = new_secret()
        token = ApiToken(user_id=user_id, name=name, scope=scope, token_hash=hash_secret(secret))
        return token, f"ty_{token.id}_{secret}"

    @staticmethod
    def split(value: str) -> tuple[str, str] | None:
        parts = value.split("_", 2) if value else []
        if len(parts) != 3 or parts[0] != "ty" or not parts[1] or not parts[2]:
            return None
        return parts[1], parts[2]

    def matches(self, secret: str) -> bool:
        return self.revoked_at is None and hmac.compare_digest(self.token_hash,
                                                               hash_secret(secret))

    def to_document(self) -> dict:
        return {"_id": self.id, "user_id": self.user_id, "name": self.name, "scope": self.scope,
                "token_hash": self.token_hash, "created_at": to_iso(self.created_at),
                "last_used_at": to_iso(self.last_used_at), "revoked_at": to_iso(self.revoked_at)}

    @classmethod
    def from_document(cls, doc: dict) -> ApiToken:
        return cls(id=doc["_id"], user_id=doc["user_id"], name=doc["name"], scope=doc["scope"],
                   token_hash=doc["token_hash"], created_at=from_iso(doc["created_at"]),
                   last_used_at=from_iso(doc.get("last_used_at")),
                   revoked_at=from_iso(doc.get("revoked_at")))

    def to_public(self) -> dict:
        return {"id": self.id, "name": self.name, "scope": self.scope,
                "created_at": to_iso(self.created_at), "last_used_at": to_iso(self.last_used_at),
                "revoked": self.revoked_at is not None}


class ApiTokenRepository:
    def __init__(self, collection: Collection):
        self.collection = collection
        # token id -> (trusted until, token, its user): the bearer check of a busy API client
        # would otherwise read two documents per request
        self._recent: dict[str, tuple[float, ApiToken, object]] = {}
        self._recent_lock = threading.Lock()

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["user_id"])

    def add(self, token: ApiToken) -> ApiToken:
        self.collection.insert(token.to_document())
        return token

    def get(self, token_id: str) -> ApiToken | None:
        doc = self.collection.get(token_id)
        return ApiToken.from_document(doc) if doc else None

    def list_for_user(self, user_id: str) -> list[ApiToken]:
        docs = self.collection.find({"user_id": user_id}, sort=[("created_at", -1)])
        return [ApiToken.from_document(d) for d in docs]

    def touch(self, token: ApiToken, *, every_seconds: int = 60) -> None:
        """Record a use; written at most once a minute (a hot API path must not write)."""
        now = utcnow()
        if token.last_used_at and (now - token.last_used_at).total_seconds() < every_seconds:
            return
        self.collection.update_one({"_id": token.id}, {"last_used_at": to_iso(now)})
        token.last_used_at = now

    def remember(self, token: ApiToken, user, seconds: float = RECENT_TOKEN_SECONDS) -> None:
        """Trust ``token`` and its ``user``, as just read, for ``seconds`` in this process."""
        with self._recent_lock:
            if len(self._recent) >= 10_000:
                self._recent.clear()
            self._recent[token.id] = (time.monotonic() + seconds, token, user)

    def recall(self, token_id: str) -> tuple[ApiToken, object] | None:
        """The token and user remembered for ``token_id`` if still trusted, else None."""
        entry = self._recent.get(token_id)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1], entry[2]

    def forget(self, *, token_id: str | None = None, user_id: str | None = None) -> None:
        """Stop trusting a remembered token, or all of a user's tokens."""
        with self._recent_lock:
            if token_id is not None:
                self._recent.pop(token_id, None)
            if user_id is not None:
                for key in [k for k, v in self._recent.items() if v[1].user_id == user_id]:
                    del self._recent[key]

    def revoke(self, token_id: str) -> bool:
        self.forget(token_id=token_id)
        return self.collection.update_one({"_id": token_id, "revoked_at": None},
                                          {"revoked_at": to_iso(utcnow())})

    def revoke_all_for_user(self, user_id: str) -> int:
        self.forget(user_id=user_id)
        return self.collection.update_many({"user_id": user_id, "revoked_at": None},
                                           {"revoked_at": to_iso(utcnow())})


# -- one-time tokens: invitations and password resets ----------------------------------------

@dataclass
class OneTimeToken:
    kind: str
    user_id: str
    token_hash: str
    expires_at: datetime
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    used_at: datetime | None = None

    def to_document(self) -> dict:
        return {"_id": self.id, "kind": self.kind, "user_id": self.user_id,
                "token_hash": self.token_hash, "expires_at": to_iso(self.expires_at),
                "created_at": to_iso(self.created_at), "used_at": to_iso(self.used_at)}

    @classmethod
    def from_document(cls, doc: dict) -> OneTimeToken:
        return cls(id=doc["_id"], kind=doc["kind"], user_id=doc["user_id"],
                   token_hash=doc["token_hash"], expires_at=from_iso(doc["expires_at"]),
                   created_at=from_iso(doc["created_at"]), used_at=from_iso(doc.get("used_at")))


class OneTimeTokenRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["token_hash"], unique=True)

    def issue(self, kind: str, user_id: str, expires_at: datetime) -> str:
        """Store a new single-use token; returns its clear value (for the mailed link)."""
        secret = new_secret()
        self.collection.insert(OneTimeToken(kind=kind, user_id=user_id,
                                            token_hash=hash_secret(secret),
                                            expires_at=expires_at).to_document())
        return secret

    def find_valid(self, kind: str, secret: str) -> OneTimeToken | None:
        doc = self.collection.find_one({"token_hash": hash_secret(secret or ""), "kind": kind})
        if doc is None:
            return None
        token = OneTimeToken.from_document(doc)
        if token.used_at is not None or token.expires_at <= utcnow():
            return None
        return token

    def consume(self, token: OneTimeToken) -> bool:
        """Mark the token used; False if someone used it first (single use, atomically)."""
        return self.collection.update_one({"_id": token.id, "used_at": None},
                                          {"used_at": to_iso(utcnow())})

    def invalidate_for_user(self, kind: str, user_id: str) -> int:
        return self.collection.update_many({"kind": kind, "user_id": user_id, "used_at": None},
                                           {"used_at": to_iso(utcnow())})


# -- audit log ---------------------------------------------------------------------------------

@dataclass
class AuditEvent:
    action: str
    actor_id: str | None
    actor_email: str | None
    target: str | None = None
    details: dict = field(default_factory=dict)
    success: bool = True
    address: str | None = None
    id: str = field(default_factory=new_sortable_id)
    time: datetime = field(default_factory=utcnow)

    def to_document(self) -> dict:
        return {"_id": self.id, "action": self.action, "actor_id": self.actor_id,
                "actor_email": self.actor_email, "target": self.target, "details": self.details,
                "success": self.success, "address": self.address, "time": to_iso(self.time)}

    @classmethod
    def from_document(cls, doc: dict) -> AuditEvent:
        fields = {k: v for k, v in doc.items() if k not in ("_id", "time")}
        return cls(id=doc["_id"], time=from_iso(doc["time"]), **fields)

    def to_public(self) -> dict:
        doc = self.to_document()
        doc["id"] = doc.pop("_id")
        return doc


class AuditRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["time"])
        self.collection.ensure_index(["actor_email", "time"])
        self.collection.ensure_index(["action", "time"])

    def add(self, event: AuditEvent) -> AuditEvent:
        self.collection.insert(event.to_document())
        return event

    @staticmethod
    def _filter(actor: str | None, action: str | None, since: datetime | None,
                until: datetime | None) -> dict:
        query: dict = {}
        if actor:
            query["actor_email"] = actor.strip().lower()
        if action:
            query["action"] = action
        if since or until:
            query["time"] = {k: to_iso(v) for k, v in (("$gte", since), ("$lt", until)) if v}
        return query

    def search(self, *, actor: str | None = None, action: str | None = None,
               since: datetime | None = None, until: datetime | None = None, skip: int = 0,
               limit: int = 50) -> tuple[list[AuditEvent], int]:
        query = self._filter(actor, action, since, until)
        docs = self.collection.find(query, sort=[("time", -1)], skip=skip, limit=limit)
        return [AuditEvent.from_document(d) for d in docs], self.collection.count(query)

    def prune(self, before: datetime) -> int:
        """Delete the events older than ``before``; returns how many."""
        return self.collection.delete_many({"time": {"$lt": to_iso(before)}})


# -- failed logins (rate limiting across processes) ------------------------------------------

class LoginFailureRepository:
    """Timestamped records under a key (failed logins, and the few markers the login throttle
    keeps: known addresses, unlocks). Records made with ``keep=True`` outlive the retention of
    failures and are pruned after :data:`KEEP_LOGIN_RECORDS`."""

    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["key", "time"])

    def record(self, *keys: str, keep: bool = False) -> None:
        now = to_iso(utcnow())
        for key in keys:
            doc = {"_id": new_id(), "key": key, "time": now}
            if keep:
                doc["keep"] = True
            self.collection.insert(doc)

    def count_since(self, key: str, since: datetime) -> int:
        return self.collection.count({"key": key, "time": {"$gte": to_iso(since)}})

    def oldest_since(self, key: str, since: datetime) -> datetime | None:
        doc = self.collection.find_one({"key": key, "time": {"$gte": to_iso(since)}},
                                       sort=[("time", 1)])
        return from_iso(doc["time"]) if doc else None

    def latest(self, key: str, since: datetime) -> datetime | None:
        """The time of the newest record under ``key`` since ``since``, or None."""
        doc = self.collection.find_one({"key": key, "time": {"$gte": to_iso(since)}},
                                       sort=[("time", -1)])
        return from_iso(doc["time"]) if doc else None

    def clear(self, key: str) -> None:
        self.collection.delete_many({"key": key})

    def prune(self, before: datetime) -> int:
        """Delete the failures older than ``before`` (and kept records older than
        :data:`KEEP_LOGIN_RECORDS`); returns how many."""
        return (self.collection.delete_many({"time": {"$lt": to_iso(before)}, "keep": None})
                + self.collection.delete_many({"keep": True, "time": {
                    "$lt": to_iso(utcnow() - KEEP_LOGIN_RECORDS)}}))


# -- login sessions (so that logging out really ends a session) ------------------------------

class SessionRepository:
    """Login sessions that are still valid. The session cookie only names one; deleting it here
    ends that session even if someone kept a copy of the cookie."""

    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.ensure_index(["user_id"])
        self.collection.ensure_index(["last_seen_at"])

    def open(self, user_id: str) -> str:
        session_id = new_secret()
        now = to_iso(utcnow())
        self.collection.insert({"_id": hash_secret(session_id), "user_id": user_id,
                                "created_at": now, "last_seen_at": now})
        return session_id

    def is_open(self, session_id: str, user_id: str) -> bool:
        """True if the session is open for this user; records its use (at most once per
        :data:`SESSION_SEEN_EVERY`: a page view must not write)."""
        doc = self.collection.get(hash_secret(session_id or ""))
        if doc is None or doc["user_id"] != user_id:
            return False
        now = utcnow()
        seen = from_iso(doc.get("last_seen_at"))
        if seen is None or now - seen >= SESSION_SEEN_EVERY:
            self.collection.update_one({"_id": doc["_id"]}, {"last_seen_at": to_iso(now)})
        return True

    def close(self, session_id: str) -> None:
        self.collection.delete_many({"_id": hash_secret(session_id or "")})

    def close_all(self, user_id: str) -> int:
        return self.collection.delete_many({"user_id": user_id})

    def prune_idle(self, before: datetime) -> int:
        """Delete the sessions last used before ``before``; returns how many."""
        return self.collection.delete_many({"last_seen_at": {"$lt": to_iso(before)}})


# -- platform settings -------------------------------------------------------------------------

class SettingsRepository:
    """A few platform-wide switches that admins change at run time."""

    DEFAULTS = {"self_registration": False}

    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        return None

    def get(self) -> dict:
        doc = self.collection.get("platform") or {}
        return {k: doc.get(k, v) for k, v in self.DEFAULTS.items()}

    def claim_setup(self) -> bool:
        """Atomically take the one-time first-run set-up; False if it was already taken."""
        from exception_layer import DuplicateKey

        try:
            self.collection.insert({"_id": "first-run-setup"})
        except DuplicateKey:
            return False
        return True

    def release_setup(self) -> None:
        """Give the set-up back (its account could not be created after all)."""
        self.collection.delete_many({"_id": "first-run-setup"})

    def update(self, **changes) -> dict:
        unknown = set(changes) - set(self.DEFAULTS)
        if unknown:
            raise ValueError(f"Unknown settings: {', '.join(sorted(unknown))}")
        if self.collection.get("platform") is None:
            from exception_layer import DuplicateKey

            try:
                self.collection.insert({"_id": "platform", **self.DEFAULTS})
            except DuplicateKey:
                pass
        self.collection.update_one({"_id": "platform"}, changes)
        return self.get()
