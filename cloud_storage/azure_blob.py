"""Azure Blob Storage: ``wasbs://container@account/prefix`` or ``az://container/prefix``.

Credentials, one of: ``connection_string``; ``account_name`` + ``account_key``;
``account_name`` + ``sas_token``. Optional ``account_url`` (or ``endpoint``): the blob endpoint,
e.g. ``http://127.0.0.1:10000/devstoreaccount1`` for Azurite; by default
``https://<account>.blob.core.windows.net``. With ``az://`` the account comes from the
credentials.
"""

from __future__ import annotations

import base64
import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import BinaryIO
from urllib.parse import urlsplit

from cloud_storage.base import (
    ListPage,
    ObjectInfo,
    Storage,
    bare_etag,
    chunk_stream,
    exact_size,
    first_chunk,
    send_parts_in_parallel,
    unreachable,
    uri_prefix,
)
from cloud_storage.configuration import ConfigField, prefix_field, prefix_path
from cloud_storage.registry import register_backend
from exception_layer import (
    InvalidStorageUri,
    ObjectNotFound,
    PlatformError,
    StorageAuthError,
    StorageError,
    StorageUnavailable,
)

logger = logging.getLogger(__name__)
MB = 1024 * 1024
#: an API version both Azure and Azurite 3.37 accept (the SDK's default is newer than Azurite)
API_VERSION = "2025-11-05"
DELETE_BATCH = 256
DELETE_THREADS = 8
COPY_TIMEOUT = 3600

_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_BAD_CREDENTIALS = {"AuthenticationFailed", "InvalidAuthenticationInfo",
                    "NoAuthenticationInformation"}
_TRANSIENT_CODES = {"ServerBusy", "InternalError", "OperationTimedOut", "ServiceUnavailable"}


def parse_azure_uri(uri: str) -> tuple[str, str | None, str]:
    """``wasbs://container@account/p`` -> ``("container", "account", "p/")``;
    ``az://container/p`` -> ``("container", None, "p/")``."""
    parts = urlsplit(uri) if isinstance(uri, str) else None
    usage = ("An Azure storage address looks like wasbs://container@account/optional/prefix "
             "or az://container/optional/prefix.")
    if parts is None or parts.scheme not in ("wasbs", "az") or parts.query or parts.fragment:
        raise InvalidStorageUri(usage)
    account = None
    if parts.scheme == "wasbs":
        container, _, host = parts.netloc.partition("@")
        account = host.split(".", 1)[0].lower()
        if not _ACCOUNT.match(account):
            raise InvalidStorageUri(usage)
    else:
        container = parts.netloc
    if not _CONTAINER.match(container):
        raise InvalidStorageUri(f"'{container}' is not a valid container name (3-63 lowercase "
                                "letters, digits and single dashes).")
    return container, account, uri_prefix(parts.path)


def _connection_string_fields(text: str) -> dict[str, str]:
    fields = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


class AzureBlobStorage(Storage):
    """Blobs in an Azure container below a prefix.

    Uploads go as one request up to one block, as staged blocks committed at the end beyond
    (nothing is visible before the commit). Folders are zero-byte ``folder/`` marker blobs.
    """

    scheme = "wasbs"
    kind = "azure"
    label = "Azure Blob Storage"
    configuration = (
        ConfigField("container", "Container", required=True, locates=True,
                    pattern=r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$",
                    message="Container names are 3-63 lower-case letters, digits, dashes."),
        prefix_field("Prefix (folder inside the container)"),
        ConfigField("account_name", "Account name"),
        ConfigField("account_url", "Account URL", help="only for a non-standard endpoint"),
        ConfigField("connection_string", "Connection string", secret=True,
                    help="or an account name with an account key or a SAS token"),
        ConfigField("account_key", "Account key", secret=True),
        ConfigField("sas_token", "SAS token", secret=True),
    )
    upload_chunk_size = 4 * MB  # x UPLOAD_PARALLELISM blocks in flight: bounded memory
    #: azure-core's response generator reports its byte length as ``__len__``, so the SDK's
    #: ``list(response)`` preallocates 8 bytes of pointers per byte of a chunk: keep chunks small
    download_chunk_size = 1 * MB

    def __init__(self, uri: str, credentials: dict | None = None, client=None):
        super().__init__(uri, credentials, client)
        self.container, uri_account, self.prefix = parse_azure_uri(uri)
        creds = self.credentials
        fields = _connection_string_fields(creds.get("connection_string") or "")
        self.account_name = (fields.get("accountname") or creds.get("account_name")
                             or uri_account or "").lower()
        if not self.account_name:
            raise InvalidStorageUri("An az:// address needs the account name in the "
                                    "credentials (account_name or a connection string).")
        if uri_account and uri_account != self.account_name:
            raise InvalidStorageUri(f"The address names account '{uri_account}' but the "
                                    f"credentials are for account '{self.account_name}'.")
        self._account_key = fields.get("accountkey") or creds.get("account_key") or None
        self.account_url = (creds.get("account_url") or creds.get("endpoint")
                            or fields.get("blobendpoint")
                            or self._default_url(fields)).rstrip("/")
        self._container_client = None

    @classmethod
    def check_configuration(cls, settings: dict, secrets: dict) -> dict[str, str]:
        if not secrets.get("connection_string") and not (
                settings.get("account_name") and (secrets.get("account_key")
                                                  or secrets.get("sas_token"))):
            return {"connection_string": "Give a connection string, or an account name with "
                                         "an account key or a SAS token."}
        return {}

    @classmethod
    def configured_location(cls, settings: dict, secrets: dict) -> tuple[str, dict]:
        account, tail = settings.get("account_name"), prefix_path(settings)
        where = f"wasbs://{settings['container']}@{account}" if account else \
            f"az://{settings['container']}"
        return where + tail, cls.configured_credentials(settings, secrets)

    def _location_root(self) -> str:
        # az://container (account in the credentials) and wasbs://container@account name one
        # place.
        return f"{self.scheme}://{self.account_name}/{self.container}/{self.prefix}"

    def _default_url(self, fields: dict) -> str:
        protocol = fields.get("defaultendpointsprotocol", "https")
        suffix = fields.get("endpointsuffix", "core.windows.net")
        return f"{protocol}://{self.account_name}.blob.{suffix}"

    # -- clients ---------------------------------------------------------------------------

    @property
    def service_client(self):
        """The azure-storage-blob ``BlobServiceClient``, built on first use."""
        return self._sdk_client()

    @property
    def container_client(self):
        if self._container_client is None:
            self._container_client = self.service_client.get_container_client(self.container)
        return self._container_client

    def _build_client(self):
        from azure.storage.blob import BlobServiceClient

        options = {
            "api_version": API_VERSION,
            "retry_total": 0,  # retries are ours (call_with_retry): logged and bounded
            "connection_timeout": 10, "read_timeout": 60,
            "max_single_get_size": self.download_chunk_size,
            "max_chunk_get_size": self.download_chunk_size,
        }
        creds = self.credentials
        if creds.get("connection_string"):
            try:
                return BlobServiceClient.from_connection_string(
                    creds["connection_string"], **options)
            except ValueError as exc:
                raise StorageAuthError("The Azure connection string is not valid.") from exc
        if creds.get("account_key"):
            credential = {"account_name": self.account_name, "account_key": creds["account_key"]}
        elif creds.get("sas_token"):
            credential = creds["sas_token"].lstrip("?")
        else:
            credential = None  # anonymous: public containers only
        return BlobServiceClient(self.account_url, credential=credential, **options)

    # -- errors ----------------------------------------------------------------------------

    @staticmethod
    def _code(exc: BaseException) -> tuple[str, int | None]:
        code = getattr(exc, "error_code", None)
        return (str(getattr(code, "value", code) or ""), getattr(exc, "status_code", None))

    def _is_transient(self, exc: BaseException) -> bool:
        from azure.core.exceptions import (
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            return True
        if isinstance(exc, HttpResponseError):
            code, status = self._code(exc)
            return code in _TRANSIENT_CODES or status in (408, 429, 500, 502, 503, 504)
        return False

    def _translate_error(self, exc: BaseException, key: str | None) -> BaseException:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            return unreachable(self.account_url, exc)
        if not isinstance(exc, HttpResponseError):
            return exc
        code, status = self._code(exc)
        if code == "ContainerNotFound" or (status == 404 and key is None):
            return StorageError(f"The container '{self.container}' does not exist.")
        if status == 404:
            return ObjectNotFound(f"No file named {key}.")
        text = (getattr(exc, "message", None) or "").lower()
        if (code in _BAD_CREDENTIALS or status == 401
                or (code == "AuthorizationFailure" and "authenticate" in text)):
            return StorageAuthError("The storage rejected the credentials (account key or SAS "
                                    "token is wrong or expired).")
        if isinstance(exc, ClientAuthenticationError) or status == 403:
            return StorageAuthError(f"Permission denied on container '{self.container}'.")
        if self._is_transient(exc):
            return StorageUnavailable(f"The storage at {self.account_url} is unavailable right "
                                      f"now ({code or status}); try again later.")
        return StorageError(f"The storage refused the operation ({code or status}).")

    # -- helpers ---------------------------------------------------------------------------

    def _blob(self, full: str):
        return self.container_client.get_blob_client(full)

    # -- the interface ---------------------------------------------------------------------

    def list(self, prefix: str = "", *, recursive: bool = False, page_size: int = 1000,
             page_token: str | None = None) -> ListPage:
        full = self._full(self._folder_key(prefix), folder=True)
        size = max(1, min(page_size, 5000))

        def one_page():
            if recursive:
                paged = self.container_client.list_blobs(name_starts_with=full,
                                                         results_per_page=size)
            else:
                paged = self.container_client.walk_blobs(name_starts_with=full, delimiter="/",
                                                         results_per_page=size)
            pages = paged.by_page(continuation_token=page_token or None)
            return list(next(pages, [])), pages.continuation_token

        items, token = self._call("list blobs", one_page)
        page = ListPage(next_token=token or None)
        for item in items:
            key = self._relative(item.name)
            if not hasattr(item, "size"):  # a BlobPrefix
                page.folders.append(key)
            elif not key.endswith("/"):  # not a folder marker
                page.objects.append(ObjectInfo(key, item.size, item.last_modified,
                                               bare_etag(item.etag)))
        page.objects.sort(key=lambda o: o.key)
        page.folders.sort()
        return page

    def stat(self, key: str) -> ObjectInfo:
        full = self._full(key)
        props = self._call("stat", lambda: self._blob(full).get_blob_properties(), key=key)
        return ObjectInfo(key, props.size, props.last_modified, bare_etag(props.etag))

    def open_read(self, key: str) -> BinaryIO:
        full = self._full(key)
        downloader = self._call("read", lambda: self._blob(full).download_blob(max_concurrency=1),
                                key=key)
        return chunk_stream(downloader.chunks())

    def upload(self, key: str, stream: BinaryIO, *, size: int | None = None,
               content_type: str | None = None) -> ObjectInfo:
        from azure.storage.blob import BlobBlock, ContentSettings

        full = self._full(key)
        blob = self._blob(full)
        settings = ContentSettings(content_type=content_type) if content_type else None
        stream = exact_size(stream, size)
        data, complete = first_chunk(stream, self.upload_chunk_size, size)
        if complete:
            body = bytes(data)
            response = self._call("upload", lambda: blob.upload_blob(
                body, overwrite=True, content_settings=settings, max_concurrency=1))
            return ObjectInfo(key, len(body), response.get("last_modified"),
                              bare_etag(response.get("etag")))
        # Staged blocks stay invisible until committed; uncommitted ones expire on their own.
        run = uuid.uuid4().hex

        def stage(number: int, body: bytes):
            block_id = base64.b64encode(f"{run}-{number:06d}".encode()).decode()
            self._call("upload a block", lambda: blob.stage_block(block_id, body,
                                                                  length=len(body)))
            return BlobBlock(block_id=block_id)
        blocks = send_parts_in_parallel(data, stream, self.upload_chunk_size, stage,
                                        parallelism=self.upload_parallelism)
        self._call("commit the blocks", lambda: blob.commit_block_list(
            blocks, content_settings=settings))
        return self.stat(key)

    def delete(self, key: str) -> None:
        full = self._full(key)
        self._call("delete", lambda: self._blob(full).delete_blob(delete_snapshots="include"),
                   key=key)

    def sweep_incomplete_uploads(self, older_than: timedelta) -> int:
        """Delete the blobs below this storage's prefix that hold only uncommitted blocks
        (an upload that never committed) last written more than ``older_than`` ago; Azure would
        discard them after 7 days anyway. A blob with committed data is never touched: it is
        not in the list, and one committed meanwhile fails the delete's date condition."""
        cutoff = datetime.now(UTC) - older_than

        def unfinished():
            client = self.container_client
            staged = client.list_blobs(name_starts_with=self.prefix,
                                       include=["uncommittedblobs"])
            committed = set(client.list_blob_names(name_starts_with=self.prefix))
            return [b.name for b in staged if b.name not in committed
                    and b.last_modified is not None and b.last_modified < cutoff]
        removed = 0
        for name in self._call("list unfinished uploads", unfinished):
            try:
                self._call("delete an unfinished upload", lambda n=name: self._blob(n).delete_blob(
                    if_unmodified_since=cutoff), key=name)
                removed += 1
            except PlatformError as exc:  # finished or removed meanwhile, or refused: next time
                logger.info("Not sweeping an unfinished Azure upload: %s", exc.code)
        return removed

    def _raw_names(self, full_prefix: str, page_size: int = 5000):
        """Every blob name (markers included) below ``full_prefix``, one page at a time."""
        token = None
        while True:
            def one_page(t=token):
                pages = self.container_client.list_blob_names(
                    name_starts_with=full_prefix, results_per_page=page_size,
                ).by_page(continuation_token=t)
                return list(next(pages, [])), pages.continuation_token
            names, token = self._call("list blobs", one_page)
            yield names
            if not token:
                return

    def delete_prefix(self, prefix: str) -> int:
        if not prefix.endswith("/"):
            raise StorageError("delete_prefix needs a folder key ending in '/'.")
        full = self._full(prefix, folder=True)
        names = [name for page in self._raw_names(full) for name in page]
        for name in names:
            self._relative(name)
        for start in range(0, len(names), DELETE_BATCH):
            batch = names[start:start + DELETE_BATCH]
            self._delete_batch(batch)
        return sum(1 for name in names if not name.endswith("/"))

    def _delete_batch(self, names: list[str]) -> None:
        def delete_one(name: str) -> None:
            try:
                self._call("delete", lambda: self._blob(name).delete_blob(
                    delete_snapshots="include"), key=name)
            except ObjectNotFound:  # deleted meanwhile
                pass

        with ThreadPoolExecutor(DELETE_THREADS) as pool:
            list(pool.map(delete_one, names))

    def make_folder(self, prefix: str) -> None:
        if not prefix:
            return
        full = self._full(prefix if prefix.endswith("/") else prefix + "/", folder=True)
        self._call("create a folder",
                   lambda: self._blob(full).upload_blob(b"", overwrite=True))

    def _has_marker(self, prefix: str) -> bool:
        return self.exists(prefix) if prefix else False

    def folder_exists(self, prefix: str) -> bool:
        full = self._full(self._folder_key(prefix), folder=True)
        return bool(next(self._raw_names(full, page_size=1)))

    def copy(self, src: str, dst: str) -> ObjectInfo:
        source, target = self._full(src), self._full(dst)
        self.stat(src)
        source_url = self._blob(source).url  # carries the SAS token when that is the credential
        blob = self._blob(target)
        result = self._call("copy", lambda: blob.start_copy_from_url(source_url), key=src)
        status = result.get("copy_status")
        deadline = time.monotonic() + COPY_TIMEOUT
        delay = 0.1
        while status == "pending":  # a copy across accounts or of a large blob runs a while
            if time.monotonic() > deadline:
                raise StorageUnavailable("The copy did not finish in time.")
            time.sleep(delay)
            delay = min(delay * 2, 5)
            props = self._call("stat", blob.get_blob_properties, key=dst)
            status = props.copy.status
        if status not in ("success", None):
            raise StorageError(f"The copy of {src} failed ({status}).")
        return self.stat(dst)

    def signed_url(self, key: str, expires_seconds: int = 3600) -> str | None:
        full = self._full(key)
        if not self._account_key:
            return None  # a SAS token given to us is not handed out again
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        sas = generate_blob_sas(
            account_name=self.account_name, container_name=self.container, blob_name=full,
            account_key=self._account_key, permission=BlobSasPermissions(read=True),
            expiry=datetime.now(UTC) + timedelta(seconds=int(expires_seconds)))
        return f"{self._blob(full).url}?{sas}"


register_backend(AzureBlobStorage, "az")
