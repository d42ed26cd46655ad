"""The bridge from stored storage connections to storage clients. Each storage backend
declares the fields of a connection to it (``Storage.configuration``, see
``cloud_storage.configuration``); from those declarations alone this module validates a
connection's fields, encrypts its secret ones at rest (Fernet), masks them whenever they are
shown, and turns a stored connection into the URI and credentials its backend takes."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from cloud_storage import ConfigField, Storage, storage_kinds
from entity.storage_connection import StorageConnection
from exception_layer import PlatformError, ValidationFailed

#: what a stored secret looks like when shown; submitting it back means "unchanged"
MASK = "--------"
FORM_ERROR = "Please correct the marked fields."


class SecretBox:
    """Encrypts and decrypts JSON secrets with Fernet.

    Args:
        keys: Fernet keys, the first one used to encrypt; the others still decrypt (rotation).
    """

    def __init__(self, keys: list[str]):
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(k.encode() if isinstance(k, str) else k)
                                    for k in keys])

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, secrets: dict) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode() if secrets else ""

    def decrypt(self, token: str) -> dict:
        if not token:
            return {}
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise PlatformError("The stored credentials cannot be decrypted with the current "
                                "SECRETS_KEY; restore the key or enter the secrets again.") \
                from None

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` with the first key."""
        return self._fernet.rotate(token.encode()).decode() if token else ""


def backend_of(kind: str) -> type[Storage] | None:
    """The backend class of a kind of connection (None: no such kind)."""
    return storage_kinds().get(kind)


def connection_fields(kind: str) -> tuple[ConfigField, ...]:
    """The declared fields of a kind of connection, in form order (none for an unknown kind)."""
    backend = backend_of(kind)
    return backend.configuration if backend else ()


def field_names(kind: str, *, secret: bool) -> list[str]:
    return [f.name for f in connection_fields(kind) if f.secret is secret]


def location_fields(kind: str) -> list[str]:
    """The fields that say where a connection's files are (they cannot change while projects
    use it)."""
    return [f.name for f in connection_fields(kind) if f.locates]


def check_connection_fields(kind: str, name: str, values: dict,
                            stored_secrets: dict | None = None) -> tuple[dict, dict]:
    """Validate a connection form against its kind's declared fields; returns
    (settings, secrets).

    A secret submitted as empty or as the mask keeps the stored value. Each field is checked
    for its type and presence first; then, when all are present, for its declared pattern and
    ``clean``, and the backend's rules across fields.

    Raises:
        ValidationFailed: with one message per wrong field.
    """
    backend = backend_of(kind)
    if backend is None:
        raise ValidationFailed(FORM_ERROR, details={
            "kind": f"Choose one of {', '.join(storage_kinds())}."})
    errors: dict[str, str] = {}
    name = str(name or "").strip()
    if not name or len(name) > 100:
        errors["name"] = "Name the connection (at most 100 characters)."
    settings: dict[str, str] = {}
    secrets = dict(stored_secrets or {})
    for spec in backend.configuration:
        raw = values.get(spec.name)
        if raw is not None and not isinstance(raw, str):
            errors[spec.name] = "Must be text."
            continue
        value = (raw or "").strip()
        if spec.secret:
            if value and value != MASK:
                secrets[spec.name] = value
            continue
        if spec.required and not value:
            errors[spec.name] = f"{spec.label} is required."
        settings[spec.name] = value
    if errors:
        raise ValidationFailed(FORM_ERROR, details=errors)
    for spec in backend.configuration:
        held = secrets if spec.secret else settings
        if held.get(spec.name):
            try:
                held[spec.name] = spec.check(held[spec.name])
            except ValueError as exc:
                errors[spec.name] = str(exc)
    for field, message in backend.check_configuration(settings, secrets).items():
        errors.setdefault(field, message)
    if errors:
        raise ValidationFailed(FORM_ERROR, details=errors)
    return settings, secrets


def storage_location(connection: StorageConnection, box: SecretBox) -> tuple[str, dict]:
    """The storage URI and the credentials dict the backend takes."""
    backend = backend_of(connection.kind)
    if backend is None:
        raise ValidationFailed(f"Unknown storage kind {connection.kind!r}.")
    return backend.configured_location(dict(connection.settings), box.decrypt(connection.secrets))


def masked(connection: StorageConnection, box: SecretBox) -> dict:
    """What pages and the API show: settings in clear, secrets as the mask (or empty)."""
    secrets = box.decrypt(connection.secrets)
    return {"id": connection.id, "name": connection.name, "kind": connection.kind,
            "settings": dict(connection.settings),
            "secrets": {name: (MASK if secrets.get(name) else "")
                        for name in field_names(connection.kind, secret=True)},
            "created_at": connection.created_at.isoformat(),
            "updated_at": connection.updated_at.isoformat()}


# -- the JSON schemas of a connection, from the declarations (for the API document) -------------

_TEXT = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_MASKED = {"enum": [MASK, ""]}


def kind_schema(kind: str, *, answer: bool = False) -> dict:
    """The JSON schema of a connection of one kind: its ``kind`` and the declared fields of its
    ``settings`` and ``secrets``, as the API takes them or (``answer``) as it shows them, each
    secret masked.

    Raises:
        KeyError: for an unknown kind.
    """
    backend = storage_kinds()[kind]
    settings = {f.name: f.json_schema() for f in backend.configuration if not f.secret}
    secrets = {f.name: ({**_MASKED, "title": f.label} if answer else f.json_schema())
               for f in backend.configuration if f.secret}
    return {"title": backend.label, "type": "object", "properties": {
        "kind": {"const": kind},
        "settings": {"type": "object", "properties": settings},
        "secrets": {"type": "object", "properties": secrets}}}


def connection_schema() -> dict:
    """The JSON schema of a connection as the API answers it (:func:`masked`)."""
    kinds = storage_kinds()
    return {
        "type": "object",
        "required": ["id", "name", "kind", "settings", "secrets", "created_at", "updated_at"],
        "properties": {
            "id": {**_TEXT, "minLength": 1}, "name": _TEXT, "kind": {"enum": list(kinds)},
            "settings": {"type": "object", "additionalProperties": _TEXT},
            "secrets": {"type": "object", "additionalProperties": _MASKED,
                        "description": f"secret fields, masked ({MASK}) when set"},
            "created_at": _TIME, "updated_at": _TIME},
        "anyOf": [kind_schema(kind, answer=True) for kind in kinds],
    }


def connection_input_schema() -> dict:
    """The JSON schema of a connection's definition (the body that creates or changes one): a
    name, a kind, and the kind's declared fields in ``settings`` and ``secrets``."""
    kinds = storage_kinds()
    return {
        "type": "object",
        "description": "Fields per kind: " + "; ".join(
            f"{kind}: " + ", ".join(f.name + (" (secret)" if f.secret else "")
                                    for f in backend.configuration)
            for kind, backend in kinds.items())
            + f". A secret left empty or sent as {MASK} keeps its stored value.",
        "properties": {"name": {**_TEXT, "maxLength": 100},
                       "kind": {"enum": list(kinds)},
                       "settings": {"type": "object", "additionalProperties": _TEXT},
                       "secrets": {"type": "object", "additionalProperties": _TEXT}},
        "anyOf": [kind_schema(kind) for kind in kinds],
    }
