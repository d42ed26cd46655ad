"""How a storage backend declares the fields of a connection to it, the way Redash's
``configuration_schema`` does: each backend class lists its :class:`ConfigField` s (name, type,
label, help text, required or not, secret or not, what a valid value looks like) in
``Storage.configuration``. The admin forms, the API document, validation, masking and encryption
of stored connections are all generated from these declarations (``integration.credentials``);
nothing outside the backend's own file knows a cloud's fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from cloud_storage.base import check_key
from exception_layer import InvalidKey


@dataclass(frozen=True)
class ConfigField:
    """One field of a storage connection, as an admin fills it in.

    Args:
        name: the key in the connection's settings (or secrets) and in the API body.
        label: what the form shows (and the "is required" message names).
        type: its JSON-schema type; every field is text today.
        required: the connection cannot be saved without it.
        secret: encrypted at rest, never shown back (masked), kept when sent back masked.
        help: one line shown under the field (and its description in the API document).
        multiline: a text area rather than a one-line input (key files).
        pattern: a regular expression a non-empty value must match (``re.match``; anchor it),
            and ``message``: what the admin is told when it does not.
        clean: turns a non-empty value into the stored one (trimming, parsing); raises
            ``ValueError`` with the message for the admin when the value is wrong.
        locates: part of where the files are (bucket, container, folder, prefix): it cannot
            change while projects use the connection, and it is not a credential.
    """

    name: str
    label: str
    type: str = "string"
    required: bool = False
    secret: bool = False
    help: str = ""
    multiline: bool = False
    pattern: str = ""
    message: str = ""
    clean: Callable[[str], str] | None = None
    locates: bool = False

    def check(self, value: str) -> str:
        """The value to store for a non-empty ``value``; raises ``ValueError`` (the message
        for the admin) when it is wrong."""
        if self.pattern and not re.match(self.pattern, value):
            raise ValueError(self.message or f"{self.label} is not valid.")
        return self.clean(value) if self.clean else value

    def json_schema(self) -> dict:
        """The field as a JSON schema (for the API document)."""
        schema: dict = {"type": self.type, "title": self.label}
        if self.help:
            schema["description"] = self.help
        if self.secret:
            schema["writeOnly"] = True
        return schema


def clean_prefix(value: str) -> str:
    """A prefix (a folder inside a bucket or container) without its outer slashes; raises
    ``ValueError`` when it is not a well-formed relative folder."""
    prefix = value.strip("/")
    if prefix:
        try:
            check_key(prefix + "/", folder=True)
        except InvalidKey as exc:
            raise ValueError(exc.message) from None
    return prefix


def prefix_field(label: str) -> ConfigField:
    """The optional folder inside a bucket or container that a connection's files live under."""
    return ConfigField("prefix", label, clean=clean_prefix, locates=True)


def bucket_field() -> ConfigField:
    """The bucket of an object store that names its buckets the common way (lower-case letters,
    digits, dots, dashes, underscores): where a connection's files are."""
    return ConfigField("bucket", "Bucket", required=True, locates=True,
                       pattern=r"^[a-z0-9][a-z0-9.\-_]{1,220}[a-z0-9]$",
                       message="Bucket names are 3-222 lower-case letters, digits, dots, "
                               "dashes or underscores.")


def bucket_uri(scheme: str, settings: dict) -> str:
    """``scheme://bucket/prefix`` of a connection with a :func:`bucket_field` and a prefix."""
    return f"{scheme}://{settings['bucket']}{prefix_path(settings)}"


def prefix_path(settings: dict) -> str:
    """The prefix of a connection as the path part of its URI ("" or "/quoted/prefix")."""
    prefix = settings.get("prefix", "").strip("/")
    return "/" + quote(prefix) if prefix else ""


def check_json_key_file(required_key: str, message: str) -> Callable[[str], str]:
    """A ``clean`` for a pasted JSON key file: a JSON object holding ``required_key``."""

    def check(value: str) -> str:
        try:
            info = json.loads(value)
        except ValueError:
            raise ValueError(message) from None
        if not isinstance(info, dict) or required_key not in info:
            raise ValueError(message)
        return value
    return check
