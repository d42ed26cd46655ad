"""The bridge from stored storage connections to storage clients: which fields each kind of
storage has, which of them are secret, how secrets are encrypted at rest (Fernet) and masked
whenever they are shown."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import quote

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from cloud_storage import check_key
from entity.storage_connection import StorageConnection
from exception_layer import InvalidKey, PlatformError, ValidationFailed

#: what a stored secret looks like when shown; submitting it back means "unchanged"
MASK = "--------"


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    secret: bool = False
    required: bool = False
    help: str = ""
    multiline: bool = False


KINDS: dict[str, dict] = {
    "local": {"label": "Local disk", "fields": [
        Field("directory", "Folder (absolute path on the server)", required=True)]},
    "s3": {"label": "AWS S3 (or S3-compatible)", "fields": [
        Field("bucket", "Bucket", required=True),
        Field("prefix", "Prefix (folder inside the bucket)"),
        Field("region", "Region", help="e.g. eu-west-1"),
        Field("endpoint_url", "Endpoint URL", help="only for S3-compatible stores"),
        Field("access_key_id", "Access key ID"),
        Field("secret_access_key", "Secret access key", secret=True),
        Field("session_token", "Session token (temporary credentials)", secret=True)]},
    "azure": {"label": "Azure Blob Storage", "fields": [
        Field("container", "Container", required=True),
        Field("prefix", "Prefix (folder inside the container)"),
        Field("account_name", "Account name"),
        Field("account_url", "Account URL", help="only for a non-standard endpoint"),
        Field("connection_string", "Connection string", secret=True,
              help="or an account name with an account key or a SAS token"),
        Field("account_key", "Account key", secret=True),
        Field("sas_token", "SAS token", secret=True)]},
    "gcs": {"label": "Google Cloud Storage", "fields": [
        Field("bucket", "Bucket", required=True),
        Field("prefix", "Prefix (folder inside the bucket)"),
        Field("endpoint", "Endpoint", help="only for an emulator or a private endpoint"),
        Field("service_account_json", "Service-account key (JSON)", secret=True,
              multiline=True)]},
}
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,220}[a-z0-9]$")
_CONTAINER = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


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


def field_names(kind: str, *, secret: bool) -> list[str]:
    return [f.name for f in KINDS[kind]["fields"] if f.secret is secret]


def check_connection_fields(kind: str, name: str, values: dict,
                            stored_secrets: dict | None = None) -> tuple[dict, dict]:
    """Validate a connection form; returns (settings, secrets).

    A secret submitted as empty or as the mask keeps the stored value.

    Raises:
        ValidationFailed: with one message per wrong field.
    """
    errors: dict[str, str] = {}
    if kind not in KINDS:
        raise ValidationFailed("Please correct the marked fields.", details={
            "kind": f"Choose one of {', '.join(KINDS)}."})
    name = str(name or "").strip()
    if not name or len(name) > 100:
        errors["name"] = "Name the connection (at most 100 characters)."
    settings: dict[str, str] = {}
    secrets = dict(stored_secrets or {})
    for spec in KINDS[kind]["fields"]:
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
        raise ValidationFailed("Please correct the marked fields.", details=errors)
    _check_kind_rules(kind, settings, secrets, errors)
    if errors:
        raise ValidationFailed("Please correct the marked fields.", details=errors)
    return settings, secrets


def _check_kind_rules(kind: str, settings: dict, secrets: dict, errors: dict) -> None:
    prefix = settings.get("prefix", "").strip("/")
    if prefix:
        try:
            check_key(prefix + "/", folder=True)
        except InvalidKey as exc:
            errors["prefix"] = exc.message
        settings["prefix"] = prefix
    if kind == "local" and not settings["directory"].startswith("/"):
        errors["directory"] = "Give an absolute path, e.g. /srv/trainyard/storage."
    if kind in ("s3", "gcs") and not _BUCKET.match(settings["bucket"]):
        errors["bucket"] = ("Bucket names are 3-222 lower-case letters, digits, dots, dashes "
                            "or underscores.")
    if kind == "s3":
        if bool(settings.get("access_key_id")) != bool(secrets.get("secret_access_key")):
            errors["secret_access_key"] = ("Give both the access key ID and the secret, or "
                                           "neither (to use the server's own AWS identity).")
        endpoint = settings.get("endpoint_url")
        if endpoint and not endpoint.startswith(("http://", "https://")):
            errors["endpoint_url"] = "The endpoint starts with http:// or https://."
    if kind == "azure":
        if not _CONTAINER.match(settings["container"]):
            errors["container"] = "Container names are 3-63 lower-case letters, digits, dashes."
        if not secrets.get("connection_string") and not (
                settings.get("account_name") and (secrets.get("account_key")
                                                  or secrets.get("sas_token"))):
            errors["connection_string"] = ("Give a connection string, or an account name with "
                                           "an account key or a SAS token.")
    if kind == "gcs" and secrets.get("service_account_json"):
        try:
            info = json.loads(secrets["service_account_json"])
            if not isinstance(info, dict) or "client_email" not in info:
                raise ValueError
        except ValueError:
            errors["service_account_json"] = "Paste the whole service-account key file (JSON)."


def storage_location(connection: StorageConnection, box: SecretBox) -> tuple[str, dict]:
    """The storage URI and the credentials dict the backend takes."""
    settings, secrets = connection.settings, box.decrypt(connection.secrets)
    prefix = settings.get("prefix", "").strip("/")
    tail = "/" + quote(prefix) if prefix else ""
    kind = connection.kind
    if kind == "local":
        from pathlib import Path

        return Path(settings["directory"]).as_uri(), {}
    values = {k: v for k, v in {**settings, **secrets}.items()
              if v and k not in ("bucket", "container", "prefix", "directory")}
    if kind == "s3":
        return f"s3://{settings['bucket']}{tail}", values
    if kind == "azure":
        account = settings.get("account_name")
        if account:
            return f"wasbs://{settings['container']}@{account}{tail}", values
        return f"az://{settings['container']}{tail}", values
    if kind == "gcs":
        return f"gs://{settings['bucket']}{tail}", values
    raise ValidationFailed(f"Unknown storage kind {kind!r}.")


def masked(connection: StorageConnection, box: SecretBox) -> dict:
    """What pages and the API show: settings in clear, secrets as the mask (or empty)."""
    secrets = box.decrypt(connection.secrets)
    return {"id": connection.id, "name": connection.name, "kind": connection.kind,
            "settings": dict(connection.settings),
            "secrets": {name: (MASK if secrets.get(name) else "")
                        for name in field_names(connection.kind, secret=True)},
            "created_at": connection.created_at.isoformat(),
            "updated_at": connection.updated_at.isoformat()}
