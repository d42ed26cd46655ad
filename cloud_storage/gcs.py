"""Google Cloud Storage: ``gs://bucket/prefix``.

Credentials: ``service_account_json`` (the key file's JSON text, or the parsed dict) and an
optional ``project``; or ``endpoint`` (e.g. ``http://127.0.0.1:9023`` for an emulator), used
anonymously unless a service account is given. With neither, ``STORAGE_EMULATOR_HOST`` (an
emulator, anonymous) or Google's application default credentials are used.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections import deque
from collections.abc import Iterator
from datetime import timedelta
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from cloud_storage.base import (
    FullReads,
    ListPage,
    ObjectInfo,
    Storage,
    chunk_stream,
    exact_size,
    first_chunk,
    logger,
    read_fully,
    replaced_while_read,
    resuming_reads,
    unreachable,
    uri_prefix,
)
from cloud_storage.configuration import (
    ConfigField,
    bucket_field,
    bucket_uri,
    check_json_key_file,
    prefix_field,
)
from cloud_storage.registry import register_backend
from exception_layer import (
    InvalidStorageUri,
    ObjectNotFound,
    PlatformError,
    StorageAuthError,
    StorageError,
    StorageUnavailable,
)
from logging_layer.adapters import Adapter

MB = 1024 * 1024
TIMEOUT = (10, 120)  # connect, read (seconds)
RANGED_READ = 4 * MB  # one SDK call per range, where the streamed read is not used
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]$")
_TOKEN_FROM_SERVER = "t:"
_TOKEN_AFTER_KEY = "k:"


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix`` -> ``("bucket", "some/prefix/")`` (the prefix may be "")."""
    parts = urlsplit(uri) if isinstance(uri, str) else None
    if parts is None or parts.scheme != "gs" or parts.query or parts.fragment:
        raise InvalidStorageUri("A Google Cloud Storage address looks like "
                                "gs://bucket/optional/prefix.")
    if not _BUCKET_NAME.match(parts.netloc):
        raise InvalidStorageUri(f"'{parts.netloc}' is not a valid bucket name.")
    return parts.netloc, uri_prefix(parts.path)


class _Prepended(io.RawIOBase):
    """``head`` (already read from ``stream``) followed by the rest of ``stream``."""

    def __init__(self, head: bytes | bytearray, stream: BinaryIO):
        super().__init__()
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head is not None:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:] if count < len(self._head) else None
            if count:
                return count
        data = self._stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class _BytesReads(FullReads):
    """Full reads returned as ``bytes`` (``requests`` takes a bytearray for a stream), with the
    position the resumable upload checks through ``tell()`` (it never seeks back: a failed
    chunk is re-sent from memory)."""

    position = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.position += len(data)
        return data if isinstance(data, bytes) else bytes(data)

    def tell(self) -> int:
        return self.position


class _GenerationChanged(Exception):
    """The object's generation changed between the requests of one read."""


class _Resendable:
    """An upload's source, read once in blocks, keeping its last ``window`` bytes so that an
    interrupted request can be resumed from where the storage says it stopped.

    ``body(start)`` is the request body from byte ``start`` to ``size``. The source is read
    through ``ExactSize``, one byte past its end before the last block is handed out, so a short
    or long source fails the request before the storage can commit the object. ``error`` keeps what
    reading the source raised (a client that went away is not the storage's fault).
    """

    BLOCK = MB

    def __init__(self, head: bytes | bytearray, stream: BinaryIO, size: int, window: int):
        self.stream, self.size, self.window = stream, size, window
        self.blocks: deque[tuple[int, memoryview]] = deque()
        self.received = 0
        self.error: BaseException | None = None
        if head:
            self._keep(head)  # not copied

    @property
    def kept_from(self) -> int:
        """The first byte that can still be sent again."""
        return self.blocks[0][0] if self.blocks else self.received

    def _keep(self, data: bytes | bytearray) -> None:
        self.blocks.append((self.received, memoryview(data)))
        self.received += len(data)
        while self.blocks and self.blocks[0][0] + len(self.blocks[0][1]) <= \
                self.received - self.window:
            self.blocks.popleft()

    def _pull(self) -> None:
        try:
            # The source is read through ExactSize: a short or long one raises here.
            data = read_fully(self.stream, min(self.BLOCK, self.size - self.received))
            if self.received + len(data) >= self.size:
                self.stream.read(1)  # one more byte raises, the end does not
        except BaseException as exc:
            self.error = exc
            raise
        self._keep(data)

    def piece(self, position: int, limit: int) -> memoryview:
        """Up to ``limit`` bytes from ``position``, read from the source when needed."""
        if position >= self.received:
            self._pull()
        start, block = self.blocks[-1]  # where a request that is not a resend reads
        if start <= position:
            return block[position - start:position - start + limit]
        for start, block in self.blocks:
            if start <= position < start + len(block):
                return block[position - start:position - start + limit]
        raise StorageError("The upload cannot be resumed from this point.")

    def body(self, start: int) -> _Body:
        return _Body(self, start)


class _Body:
    """One request's body: the bytes of a :class:`_Resendable` from ``start`` to the end."""

    def __init__(self, source: _Resendable, start: int):
        self.source, self.position = source, start

    def __len__(self) -> int:  # requests sends it with this Content-Length
        return self.source.size - self.position

    def __iter__(self):
        while chunk := self.read(MB):
            yield chunk

    def read(self, size: int = -1) -> memoryview | bytes:
        if self.position >= self.source.size:
            return b""
        limit = self.source.size - self.position if size is None or size < 0 else size
        chunk = self.source.piece(self.position, limit)
        self.position += len(chunk)
        return chunk


def _probe_session() -> str | None:
    """The client's ``_http`` is the authorized requests session that carries its credentials
    (what the streamed upload and read send their requests with), or why not."""
    try:
        from google.auth.credentials import AnonymousCredentials
        from google.auth.transport.requests import AuthorizedSession
        from google.cloud import storage
    except ImportError:  # no GCS SDK: the backend is never used
        return None
    credentials = AnonymousCredentials()
    client = storage.Client(project="trainyard-probe", credentials=credentials,
                            client_options={"api_endpoint": "http://127.0.0.1:9"})
    session = getattr(client, "_http", None)
    if not isinstance(session, AuthorizedSession):
        return f"the client's _http is a {type(session).__name__}, not an AuthorizedSession"
    if session.credentials is not credentials:
        return "the client's _http does not carry the client's credentials"
    return None


#: the storage client's authorized requests session, for streamed uploads and reads
SESSION = Adapter("gcs-session", _probe_session,
                  internal="google-cloud-storage's Client._http",
                  fallback="the SDK's chunked resumable uploads and ranged downloads")


class GCSStorage(Storage):
    """Objects in a GCS bucket below a prefix.

    Uploads go as one request up to one chunk, as a resumable upload beyond (the object exists
    only once the last byte is in): one streamed request when the size is known, the SDK's
    chunks when it is not (or when the client's session, :data:`SESSION`, cannot be used).
    Reads are one streamed request (ranged SDK calls without the session). Folders are
    zero-byte ``folder/`` marker objects.
    """

    scheme = "gs"
    kind = "gcs"
    label = "Google Cloud Storage"
    configuration = (
        bucket_field(),
        prefix_field("Prefix (folder inside the bucket)"),
        ConfigField("endpoint", "Endpoint", help="only for an emulator or a private endpoint"),
        ConfigField("service_account_json", "Service-account key (JSON)", secret=True,
                    multiline=True, clean=check_json_key_file(
                        "client_email", "Paste the whole service-account key file (JSON).")),
    )
    #: a multiple of 256 KiB: the first read of an upload, and the SDK's chunk for an upload of
    #: unknown size (held about three times over while it is read and sent: under ~16 MB)
    upload_chunk_size = 4 * MB
    #: an upload of known size goes as one streamed request; this much of its end is kept in
    #: memory, to resume from after an interruption
    resume_window = 16 * MB

    @property
    def upload_memory(self) -> int:
        # the window, plus its oldest block (the first chunk) until it falls out whole
        return self.resume_window + self.upload_chunk_size + _Resendable.BLOCK

    def __init__(self, uri: str, credentials: dict | None = None, client=None):
        super().__init__(uri, credentials, client)
        self.bucket_name, self.prefix = parse_gs_uri(uri)
        self.endpoint = (self.credentials.get("endpoint")
                         or os.environ.get("STORAGE_EMULATOR_HOST") or None)

    @classmethod
    def configured_location(cls, settings: dict, secrets: dict) -> tuple[str, dict]:
        return bucket_uri(cls.scheme, settings), cls.configured_credentials(settings, secrets)

    # -- the client ------------------------------------------------------------------------

    @property
    def client(self):
        """The google-cloud-storage client, built on first use."""
        return self._sdk_client()

    @property
    def bucket(self):
        return self.client.bucket(self.bucket_name)

    @property
    def _endpoint_name(self) -> str:
        return self.endpoint or "https://storage.googleapis.com"

    def _service_account(self):
        info = self.credentials.get("service_account_json")
        if not info:
            return None
        from google.oauth2 import service_account

        try:
            info = json.loads(info) if isinstance(info, str) else dict(info)
            return service_account.Credentials.from_service_account_info(
                info, scopes=["https://www.googleapis.com/auth/devstorage.read_write"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageAuthError("The service account key is not valid JSON of a Google "
                                   "service account key file.") from exc

    def _build_client(self):
        from google.cloud import storage

        credentials = self._service_account()
        project = self.credentials.get("project") or getattr(credentials, "project_id", None)
        options = {}
        if self.endpoint:
            options["client_options"] = {"api_endpoint": self.endpoint}
            if credentials is None:
                from google.auth.credentials import AnonymousCredentials

                credentials = AnonymousCredentials()
        try:
            return storage.Client(project=project or "trainyard", credentials=credentials,
                                  **options)
        except Exception as exc:  # google.auth's DefaultCredentialsError and the like
            raise self._translate_error(exc, None) from exc

    def _google_retry(self):
        """A google.api_core Retry with our policy, for the SDK's resumable upload chunks."""
        from google.api_core.retry import Retry

        policy = self.retry_policy

        def log(exc):
            logger.warning("GCS upload chunk failed transiently (%s); retrying",
                           self._summarize_error(exc))

        return Retry(predicate=self._is_transient, initial=policy.base_delay,
                     maximum=policy.max_delay, multiplier=2.0,
                     timeout=max(1.0, policy.max_delay * policy.attempts), on_error=log)

    # -- errors ----------------------------------------------------------------------------

    @staticmethod
    def _status(exc: BaseException) -> int | None:
        code = getattr(exc, "code", None)
        if isinstance(code, int):
            return code
        response = getattr(exc, "response", None)
        return getattr(response, "status_code", None)

    def _is_transient(self, exc: BaseException) -> bool:
        import requests
        from google.api_core import exceptions as api

        if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout
                      | api.TooManyRequests | api.InternalServerError | api.BadGateway
                      | api.ServiceUnavailable | api.GatewayTimeout):
            return True
        if isinstance(exc, api.GoogleAPICallError | PlatformError):
            return False
        from google.cloud.storage.exceptions import InvalidResponse

        return isinstance(exc, InvalidResponse) and self._status(exc) in (408, 429, 500, 502,
                                                                           503, 504)

    def _summarize_error(self, exc: BaseException) -> str:
        status = self._status(exc)
        return f"{type(exc).__name__} (HTTP {status})" if status else type(exc).__name__

    def _translate_error(self, exc: BaseException, key: str | None) -> BaseException:
        import requests
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth

        if isinstance(exc, PlatformError):
            return exc
        if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return unreachable(self._endpoint_name, exc)
        if isinstance(exc, auth.RefreshError):
            return StorageAuthError("The storage rejected the credentials (the service "
                                    "account key is wrong, revoked or disabled).")
        if isinstance(exc, auth.DefaultCredentialsError):
            return StorageAuthError("No credentials for the storage: give a service account "
                                    "key.")
        if isinstance(exc, auth.TransportError):
            return unreachable("https://oauth2.googleapis.com", exc)
        status = self._status(exc)
        if status is None:
            return exc
        if status == 404:
            return self._not_found(exc, key)
        if status == 401:
            return StorageAuthError("The storage rejected the credentials (the service "
                                    "account key is wrong or expired).")
        if status == 403:
            return StorageAuthError(f"Permission denied on bucket '{self.bucket_name}'.")
        if status in (408, 429) or status >= 500:
            return StorageUnavailable(f"The storage at {self._endpoint_name} is unavailable "
                                      f"right now (HTTP {status}); try again later.")
        if isinstance(exc, api.GoogleAPICallError) or status >= 400:
            return StorageError(f"The storage refused the operation (HTTP {status}).")
        return exc

    def _not_found(self, exc: BaseException, key: str | None) -> PlatformError:
        missing_bucket = StorageError(f"The bucket '{self.bucket_name}' does not exist.")
        if key is None:
            return missing_bucket
        text = str(getattr(exc, "message", "") or "").lower()
        if "bucket" in text and "object" not in text:
            return missing_bucket
        if "object" not in text:  # some servers say nothing: ask whether the bucket exists
            try:
                if not self.bucket.exists(retry=None, timeout=TIMEOUT):
                    return missing_bucket
            except Exception:  # noqa: BLE001 - the answer to the first question stands
                pass
        return ObjectNotFound(f"No file named {key}.")

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _info(key: str, blob) -> ObjectInfo:
        return ObjectInfo(key, int(blob.size or 0), blob.updated,
                          str(blob.generation) if blob.generation else None)

    # -- the interface ---------------------------------------------------------------------

    def list(self, prefix: str = "", *, recursive: bool = False, page_size: int = 1000,
             page_token: str | None = None) -> ListPage:
        full = self._full(self._folder_key(prefix), folder=True)
        page_size = max(1, page_size)
        server_token, after = None, None
        if page_token and page_token.startswith(_TOKEN_FROM_SERVER):
            server_token = page_token[len(_TOKEN_FROM_SERVER):]
        elif page_token and page_token.startswith(_TOKEN_AFTER_KEY):
            after = self.prefix + page_token[len(_TOKEN_AFTER_KEY):]
        elif page_token:
            raise StorageError("This listing page token is not valid.")

        def one_page():
            iterator = self.client.list_blobs(
                self.bucket_name, prefix=full, delimiter=None if recursive else "/",
                page_size=page_size, page_token=server_token, start_offset=after,
                retry=None, timeout=TIMEOUT)
            page = next(iterator.pages, None)
            if page is None:
                return [], [], iterator.next_page_token
            blobs = list(page)
            return blobs, sorted(page.prefixes), iterator.next_page_token

        blobs, prefixes, token = self._call("list objects", one_page)
        entries = sorted([(blob.name, blob) for blob in blobs]
                         + [(name, None) for name in prefixes], key=lambda e: e[0])
        if after is not None:  # a server that ignores startOffset
            entries = [e for e in entries if e[0] > after
                       and not (after.endswith("/") and e[0].startswith(after))]
        result = ListPage()
        if len(entries) > page_size:
            # A server that ignores maxResults (the emulator): page on our side.
            entries = entries[:page_size]
            result.next_token = _TOKEN_AFTER_KEY + self._relative(entries[-1][0])
        elif token:
            result.next_token = _TOKEN_FROM_SERVER + token
        for name, blob in entries:
            key = self._relative(name)
            if blob is None:
                result.folders.append(key)
            elif not key.endswith("/"):  # not a folder marker
                result.objects.append(self._info(key, blob))
        return result

    def _reload(self, key: str, full: str):
        blob = self.bucket.blob(full)
        self._call("stat", lambda: blob.reload(retry=None, timeout=TIMEOUT), key=key)
        return blob

    def stat(self, key: str) -> ObjectInfo:
        return self._info(key, self._reload(key, self._full(key)))

    def open_read(self, key: str) -> BinaryIO:
        """The object's bytes as one streamed request, as the SDK's own download does (one
        request per ranged chunk cost about half the speed on the emulator). A connection lost
        midway is resumed from the next byte with our retry policy, pinned to the generation
        that was opened, so a file replaced meanwhile fails the read instead of mixing two
        versions."""
        full = self._full(key)
        blob = self._reload(key, full)
        read = self._media_chunks if SESSION.usable else self._ranged_chunks
        chunks = read(key, full, int(blob.size or 0), blob.generation)
        return chunk_stream(chunks, on_close=chunks.close)

    def _ranged_chunks(self, key: str, full: str, size: int, generation) -> Iterator[bytes]:
        """``size`` bytes of the object through the SDK's public ranged download, one call
        (with our retry policy) per ``RANGED_READ`` bytes, pinned to ``generation``: the path
        when the client's session cannot be used (:data:`SESSION`)."""
        blob = self.bucket.blob(full)
        position = 0
        while position < size:
            end = min(position + RANGED_READ, size) - 1
            try:
                data = self._call("read", lambda start=position, end=end: blob.download_as_bytes(
                    start=start, end=end, if_generation_match=generation or None,
                    checksum=None, retry=None, timeout=TIMEOUT), key=key)
            except StorageError as exc:
                if self._status(exc.__cause__) == 412:  # ifGenerationMatch failed
                    raise replaced_while_read(key) from None
                raise
            if not data:
                raise replaced_while_read(key)
            position += len(data)
            yield data

    def _media_url(self, full: str) -> str:
        return (f"{self._endpoint_name.rstrip('/')}/download/storage/v1/b/"
                f"{quote(self.bucket_name, safe='')}/o/{quote(full, safe='')}")

    def _media_chunks(self, key: str, full: str, size: int, generation) -> Iterator[bytes]:
        """``size`` bytes of the object, in pieces of up to ``download_chunk_size``."""
        import requests
        from urllib3.exceptions import HTTPError as TransportFailure

        session, url = self.client._http, self._media_url(full)
        params = {"alt": "media"}
        if generation:
            params["ifGenerationMatch"] = str(generation)

        def request(start: int):
            from google.api_core.exceptions import from_http_response

            response = session.get(url, params=params, stream=True, timeout=TIMEOUT,
                                   headers={"Range": f"bytes={start}-"} if start else None)
            if response.status_code not in (200, 206):
                error = from_http_response(response)  # reads the error's body
                response.close()
                raise error
            served = response.headers.get("x-goog-generation")
            if (start and response.status_code != 206) or \
                    (generation and served and served != str(generation)):
                response.close()
                raise _GenerationChanged()
            return response

        def open_at(position: int):
            try:
                return self._call("read", lambda: request(position), key=key)
            except _GenerationChanged:
                raise replaced_while_read(key) from None
            except StorageError as exc:
                if self._status(exc.__cause__) == 412:  # ifGenerationMatch failed
                    raise replaced_while_read(key) from None
                raise

        return resuming_reads(
            size, open_at, lambda response, n: response.raw.read(n, decode_content=False),
            lambda response: response.close(),
            (TransportFailure, requests.exceptions.RequestException, OSError),
            policy=self.retry_policy, piece=self.download_chunk_size, label="GCS download",
            what=f"{key} from {self._endpoint_name}", summarize=self._summarize_error)

    def upload(self, key: str, stream: BinaryIO, *, size: int | None = None,
               content_type: str | None = None) -> ObjectInfo:
        full = self._full(key)
        stream = exact_size(stream, size)
        data, complete = first_chunk(stream, self.upload_chunk_size, size)
        if complete:
            blob = self.bucket.blob(full)
            body = bytes(data)
            self._call("upload", lambda: blob.upload_from_string(
                body, content_type=content_type or "application/octet-stream", retry=None,
                timeout=TIMEOUT))
            return self._info(key, blob)
        if size is not None and size > len(data) and SESSION.usable:
            return self._streamed_upload(key, full, data, stream, size, content_type)
        blob = self.bucket.blob(full, chunk_size=self.upload_chunk_size)
        source = _BytesReads(_Prepended(data, stream))
        del data
        try:
            # A resumable upload: the SDK retries each chunk with our policy.
            blob.upload_from_file(source, content_type=content_type, retry=self._google_retry(),
                                  timeout=TIMEOUT)
        except Exception as exc:
            if exc is source.error:  # the source failed, not the storage
                raise
            translated = self._translate_error(exc, None)
            if translated is exc:
                raise
            raise translated from exc
        return self._info(key, blob)

    def _streamed_upload(self, key: str, full: str, head, stream: BinaryIO, size: int,
                         content_type: str | None) -> ObjectInfo:
        """A resumable upload of a known size sent as one streamed request, which Google
        recommends over chunks when the data can be streamed: memory stays at the resume
        window, not a chunk per request. After an interruption, the storage says how much it
        kept and the rest is sent again from there (with our retry policy); if it kept less
        than the window still holds, the upload fails and nothing is stored."""
        blob = self.bucket.blob(full)
        url = self._call("start an upload", lambda: blob.create_resumable_upload_session(
            content_type=content_type or "application/octet-stream", size=size, timeout=TIMEOUT,
            retry=None))
        session = self.client._http  # the SDK's authorized requests session
        source = _Resendable(head, stream, size, self.resume_window)
        del head
        policy, start, failures = self.retry_policy, 0, 0
        try:
            while True:
                try:
                    start = self._upload_progress(session.put(
                        url, data=source.body(start), timeout=TIMEOUT,
                        headers={"Content-Range": f"bytes {start}-{size - 1}/{size}"}))
                    if start is None:
                        break
                    failure = StorageUnavailable(f"The storage at {self._endpoint_name} kept "
                                                 f"only {start} of {size} bytes.")
                except Exception as exc:
                    if source.error is not None:
                        raise source.error from None
                    if not self._is_transient(exc):
                        raise
                    failure = exc
                failures += 1
                if failures >= policy.attempts:
                    raise failure
                delay = policy.delay(failures)
                logger.warning("GCS upload interrupted (%s); resuming, retry %d of %d in %.2fs",
                               self._summarize_error(failure), failures, policy.attempts - 1,
                               delay)
                time.sleep(delay)
                start = self._call("ask how much of an upload arrived",
                                   lambda: self._upload_progress(session.put(
                                       url, timeout=TIMEOUT,
                                       headers={"Content-Range": f"bytes */{size}"})))
                if start is None:  # it had arrived whole
                    break
                if not source.kept_from <= start <= source.received:
                    raise StorageUnavailable(
                        f"The upload to {self._endpoint_name} was interrupted and cannot be "
                        "resumed (the storage kept less of it than can be sent again); try "
                        "the upload again.") from failure
        except BaseException as exc:
            self._cancel_upload(session, url)
            if isinstance(exc, PlatformError) or exc is source.error:
                raise
            translated = self._translate_error(exc, None)
            if translated is exc:
                raise
            raise translated from exc
        return self.stat(key)

    @staticmethod
    def _upload_progress(response) -> int | None:
        """None once the storage has the whole object; else the next byte it wants."""
        if response.status_code in (200, 201):
            return None
        if response.status_code == 308:
            kept = response.headers.get("Range", "")  # "bytes=0-N": N + 1 bytes kept
            return int(kept.rpartition("-")[2]) + 1 if kept else 0
        from google.api_core.exceptions import from_http_response

        raise from_http_response(response)

    @staticmethod
    def _cancel_upload(session, url: str) -> None:
        """Drop an unfinished upload session (GCS expires them in a week anyway)."""
        try:
            session.delete(url, timeout=TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the upload already failed; say why, not this
            logger.info("Could not cancel an unfinished GCS upload: %s", type(exc).__name__)

    def delete(self, key: str) -> None:
        blob = self.bucket.blob(self._full(key))
        self._call("delete", lambda: blob.delete(retry=None, timeout=TIMEOUT), key=key)

    def _raw_names(self, full_prefix: str, *, limit: int | None = None) -> list[str]:
        def names():
            iterator = self.client.list_blobs(self.bucket_name, prefix=full_prefix,
                                              max_results=limit, retry=None, timeout=TIMEOUT)
            return [blob.name for blob in iterator]
        return self._call("list objects", names)

    def delete_prefix(self, prefix: str) -> int:
        if not prefix.endswith("/"):
            raise StorageError("delete_prefix needs a folder key ending in '/'.")
        names = self._raw_names(self._full(prefix, folder=True))
        for name in names:
            self._relative(name)
            blob = self.bucket.blob(name)
            try:
                self._call("delete", lambda b=blob: b.delete(retry=None, timeout=TIMEOUT),
                           key=name)
            except ObjectNotFound:  # deleted meanwhile
                continue
        return sum(1 for name in names if not name.endswith("/"))

    def make_folder(self, prefix: str) -> None:
        if not prefix:
            return
        blob = self.bucket.blob(self._full(prefix if prefix.endswith("/") else prefix + "/",
                                           folder=True))
        self._call("create a folder", lambda: blob.upload_from_string(
            b"", retry=None, timeout=TIMEOUT))

    def _has_marker(self, prefix: str) -> bool:
        return self.exists(prefix) if prefix else False

    def folder_exists(self, prefix: str) -> bool:
        return bool(self._raw_names(self._full(self._folder_key(prefix), folder=True),
                                    limit=1))

    def copy(self, src: str, dst: str) -> ObjectInfo:
        source = self._reload(src, self._full(src))
        target = self.bucket.blob(self._full(dst))
        token = None
        while True:  # rewrite copies large objects in several calls
            token, _, _ = self._call("copy", lambda t=token: target.rewrite(
                source, token=t, retry=None, timeout=TIMEOUT), key=src)
            if token is None:
                break
        return self._info(dst, target)

    def signed_url(self, key: str, expires_seconds: int = 3600) -> str | None:
        full = self._full(key)
        options = {"api_access_endpoint": self.endpoint} if self.endpoint else {}
        blob = self.bucket.blob(full)
        try:  # signed with the client's own credentials
            return blob.generate_signed_url(
                version="v4", expiration=timedelta(seconds=int(expires_seconds)),
                method="GET", **options)
        except AttributeError:  # the SDK's answer for credentials that cannot sign
            return None  # anonymous or user credentials: the app signs its own link


register_backend(GCSStorage)
