"""Amazon S3 (and S3-compatible stores such as MinIO or moto): ``s3://bucket/prefix``.

Credentials (all optional; without them boto3's ambient chain is used): ``access_key_id``,
``secret_access_key``, ``session_token``, ``region`` (default ``us-east-1``) and ``endpoint_url``
(an S3-compatible endpoint; path-style addressing is used with it).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
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
    logger,
    replaced_while_read,
    resuming_reads,
    send_parts_in_parallel,
    unreachable,
    uri_prefix,
)
from cloud_storage.configuration import ConfigField, bucket_field, bucket_uri, prefix_field
from cloud_storage.registry import register_backend
from exception_layer import (
    InvalidStorageUri,
    ObjectNotFound,
    StorageAuthError,
    StorageError,
    StorageUnavailable,
)

MB = 1024 * 1024
#: copy_object copies up to 5 GB; larger objects are copied part by part
MAX_SINGLE_COPY = 5 * 1024 * MB
MAX_PARTS = 10_000
DELETE_BATCH = 1000

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$")
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId",
                    "UnrecognizedClientException", "InvalidSecurity", "AuthFailure"}
_BAD_TOKEN = {"ExpiredToken", "InvalidToken", "TokenRefreshRequired", "ExpiredTokenException"}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_WRONG_REGION = {"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraint"}
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                    "RequestLimitExceeded", "TooManyRequestsException", "InternalError",
                    "ServiceUnavailable", "503", "500", "502", "504", "RequestTimeoutException",
                    "PriorRequestNotComplete", "BandwidthLimitExceeded"}


def _response_date(response: dict) -> datetime:
    """The server's time of a write (its Date header), else now: saves a HEAD request."""
    header = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(header) if header else datetime.now(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")`` (the prefix may be "")."""
    parts = urlsplit(uri) if isinstance(uri, str) else None
    if parts is None or parts.scheme != "s3" or parts.query or parts.fragment:
        raise InvalidStorageUri("An S3 storage address looks like s3://bucket/optional/prefix.")
    bucket = parts.netloc
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise InvalidStorageUri(f"'{bucket}' is not a valid S3 bucket name "
                                "(3-63 lowercase letters, digits, dots and dashes).")
    return bucket, uri_prefix(parts.path)


class S3Storage(Storage):
    """Objects in an S3 bucket below a prefix.

    Uploads go as one request up to one chunk, as a multipart upload beyond (each part retried
    on its own; an interrupted upload is aborted, so no object appears). Folders are zero-byte
    ``folder/`` marker objects.
    """

    scheme = "s3"
    kind = "s3"
    label = "AWS S3 (or S3-compatible)"
    configuration = (
        bucket_field(),
        prefix_field("Prefix (folder inside the bucket)"),
        ConfigField("region", "Region", help="e.g. eu-west-1"),
        ConfigField("endpoint_url", "Endpoint URL", help="only for S3-compatible stores",
                    pattern=r"^https?://",
                    message="The endpoint starts with http:// or https://."),
        ConfigField("access_key_id", "Access key ID"),
        ConfigField("secret_access_key", "Secret access key", secret=True),
        ConfigField("session_token", "Session token (temporary credentials)", secret=True),
    )
    upload_chunk_size = 8 * MB  # S3 parts are 5 MiB at least; 8 MiB is the SDK's own part
    upload_parallelism = 3  # x 8 MB in flight + 1 being read: about 32 MB per upload

    def __init__(self, uri: str, credentials: dict | None = None, client=None):
        super().__init__(uri, credentials, client)
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.region = self.credentials.get("region") or "us-east-1"
        self.endpoint_url = self.credentials.get("endpoint_url") or None

    @classmethod
    def check_configuration(cls, settings: dict, secrets: dict) -> dict[str, str]:
        if bool(settings.get("access_key_id")) != bool(secrets.get("secret_access_key")):
            return {"secret_access_key": "Give both the access key ID and the secret, or "
                                         "neither (to use the server's own AWS identity)."}
        return {}

    @classmethod
    def configured_location(cls, settings: dict, secrets: dict) -> tuple[str, dict]:
        return bucket_uri(cls.scheme, settings), cls.configured_credentials(settings, secrets)

    # -- the client ------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self.endpoint_url or f"https://s3.{self.region}.amazonaws.com"

    @property
    def client(self):
        """The boto3 S3 client, built on first use (boto3 clients are thread-safe)."""
        return self._sdk_client()

    def _build_client(self):
        import boto3
        from botocore.config import Config

        creds = self.credentials
        session = boto3.session.Session(
            aws_access_key_id=creds.get("access_key_id") or None,
            aws_secret_access_key=creds.get("secret_access_key") or None,
            aws_session_token=creds.get("session_token") or None,
            region_name=self.region,
        )
        config = Config(
            signature_version="s3v4",
            # retries are ours (call_with_retry), so that they are logged and bounded
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=10, read_timeout=60, max_pool_connections=32,
            s3={"addressing_style": "path"} if self.endpoint_url else {},
        )
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    # -- errors ----------------------------------------------------------------------------

    @staticmethod
    def _code(exc: BaseException) -> tuple[str, int | None]:
        response = getattr(exc, "response", None) or {}
        return (str(response.get("Error", {}).get("Code", "")),
                response.get("ResponseMetadata", {}).get("HTTPStatusCode"))

    def _is_transient(self, exc: BaseException) -> bool:
        from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

        if isinstance(exc, ClientError):
            code, status = self._code(exc)
            return code in _TRANSIENT_CODES or status in (429, 500, 502, 503, 504)
        return isinstance(exc, ConnectionError | HTTPClientError)

    def _translate_error(self, exc: BaseException, key: str | None) -> BaseException:
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        if isinstance(exc, ClientError):
            code, status = self._code(exc)
            if code == "NoSuchBucket":
                return StorageError(f"The bucket '{self.bucket}' does not exist.")
            if code in _NOT_FOUND or status == 404:
                if key is not None:
                    return ObjectNotFound(f"No file named {key}.")
                return StorageError(f"The bucket '{self.bucket}' does not exist.")
            if code in _BAD_CREDENTIALS or status == 401:
                return StorageAuthError("The storage rejected the credentials "
                                        "(access key or secret is wrong).")
            if code in _BAD_TOKEN:
                return StorageAuthError("The storage rejected the credentials "
                                        "(the session token is expired or invalid).")
            if code in _WRONG_REGION or status == 301:
                return StorageError(f"The bucket '{self.bucket}' is not in region "
                                    f"'{self.region}': set the region of the credentials.")
            if code == "AccessDenied" or status == 403:
                return StorageAuthError(f"Permission denied on bucket '{self.bucket}'.")
            if code in _TRANSIENT_CODES or status in (429, 500, 502, 503, 504):
                return StorageUnavailable(f"The storage at {self.endpoint} is unavailable right "
                                          f"now ({code or status}); try again later.")
            return StorageError(f"The storage refused the operation ({code or status}).")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StorageAuthError("No credentials for the storage: give an access key id and "
                                    "a secret access key.")
        if isinstance(exc, ConnectionError | HTTPClientError):
            return unreachable(self.endpoint, exc)
        return exc

    # -- the interface ---------------------------------------------------------------------

    def list(self, prefix: str = "", *, recursive: bool = False, page_size: int = 1000,
             page_token: str | None = None) -> ListPage:
        full = self._full(self._folder_key(prefix), folder=True)
        params = {"Bucket": self.bucket, "Prefix": full, "MaxKeys": max(1, page_size)}
        if not recursive:
            params["Delimiter"] = "/"
        if page_token:
            params["ContinuationToken"] = page_token
        response = self._call("list objects", lambda: self.client.list_objects_v2(**params))
        page = ListPage(next_token=response.get("NextContinuationToken")
                        if response.get("IsTruncated") else None)
        for item in response.get("Contents", []):
            key = self._relative(item["Key"])
            if key.endswith("/"):  # a folder marker
                continue
            page.objects.append(ObjectInfo(key, item["Size"], item.get("LastModified"),
                                           bare_etag(item.get("ETag"))))
        page.folders = sorted(self._relative(p["Prefix"])
                              for p in response.get("CommonPrefixes", []))
        page.objects.sort(key=lambda o: o.key)
        return page

    def stat(self, key: str) -> ObjectInfo:
        full = self._full(key)
        head = self._call("stat", lambda: self.client.head_object(Bucket=self.bucket, Key=full),
                          key=key)
        return ObjectInfo(key, head["ContentLength"], head.get("LastModified"),
                          bare_etag(head.get("ETag")))

    def open_read(self, key: str) -> BinaryIO:
        """The object's bytes as one streamed GET. A connection lost midway is resumed from
        the next byte with the retry policy, pinned (``If-Match``) to the ETag that was
        opened, so a file replaced meanwhile fails the read instead of mixing two versions."""
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError as TransportFailure

        full = self._full(key)
        first = [self._call("read", lambda: self.client.get_object(Bucket=self.bucket,
                                                                   Key=full), key=key)]
        etag = first[0].get("ETag")

        def open_at(position: int):
            if first:  # the response opened above, once
                return first.pop()
            extra = {"Range": f"bytes={position}-"} if position else {}
            if etag:
                extra["IfMatch"] = etag
            try:
                response = self._call("read", lambda: self.client.get_object(
                    Bucket=self.bucket, Key=full, **extra), key=key)
            except StorageError as exc:
                if self._code(exc.__cause__)[1] == 412:  # If-Match failed
                    raise replaced_while_read(key) from None
                raise
            if position and not str(response.get("ContentRange", "")).startswith(
                    f"bytes {position}-"):
                response["Body"].close()
                raise StorageError(f"{key} could not be read on from byte {position}: the "
                                   "storage ignored the range.")
            return response

        chunks = resuming_reads(
            int(first[0]["ContentLength"]), open_at,
            lambda response, n: response["Body"].read(n),
            lambda response: response["Body"].close(),
            (BotoCoreError, TransportFailure, OSError), policy=self.retry_policy,
            piece=self.download_chunk_size, label="S3 download",
            what=f"{key} from {self.endpoint}", summarize=self._summarize_error)

        def close() -> None:
            chunks.close()
            if first:  # closed before the first read
                first.pop()["Body"].close()
        return chunk_stream(chunks, on_close=close)

    def upload(self, key: str, stream: BinaryIO, *, size: int | None = None,
               content_type: str | None = None) -> ObjectInfo:
        full = self._full(key)
        extra = {"ContentType": content_type} if content_type else {}
        chunk_size = self.upload_chunk_size
        if size is not None and size > chunk_size * MAX_PARTS:
            chunk_size = -(-size // MAX_PARTS)
        stream = exact_size(stream, size)
        data, complete = first_chunk(stream, chunk_size, size)
        if complete:
            response = self._call("upload", lambda: self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, **extra))
            return ObjectInfo(key, len(data), _response_date(response),
                              bare_etag(response.get("ETag")))
        checksum = self._part_checksum()
        if checksum:
            extra["ChecksumAlgorithm"] = checksum
        upload_id = self._call("start a multipart upload",
                               lambda: self.client.create_multipart_upload(
                                   Bucket=self.bucket, Key=full, **extra))["UploadId"]
        try:
            parts = self._upload_parts(full, upload_id, stream, data, chunk_size, checksum)
            self._call("complete a multipart upload",
                       lambda: self.client.complete_multipart_upload(
                           Bucket=self.bucket, Key=full, UploadId=upload_id,
                           MultipartUpload={"Parts": parts}))
        except BaseException:
            self._abort(full, upload_id)
            raise
        return self.stat(key)

    def _part_checksum(self) -> str | None:
        """The checksum each part of a multipart upload carries: CRC32, as the SDK's own
        uploads do, so that the store checks every part and combines the parts' checksums
        instead of reading the whole object again. None when the client is set to send
        checksums only where required (``AWS_REQUEST_CHECKSUM_CALCULATION=when_required``,
        for S3-compatible stores that refuse them)."""
        setting = getattr(self.client.meta.config, "request_checksum_calculation", None)
        return None if setting == "when_required" else "CRC32"

    def _upload_parts(self, full: str, upload_id: str, stream: BinaryIO, data,
                      chunk_size: int, checksum: str | None) -> list[dict]:
        extra = {"ChecksumAlgorithm": checksum} if checksum else {}

        def send(number: int, body: bytes) -> dict:
            response = self._call("upload a part", lambda: self.client.upload_part(
                Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=body,
                **extra))
            part = {"ETag": response["ETag"], "PartNumber": number}
            if response.get("ChecksumCRC32"):  # a store that took it but does not echo it
                part["ChecksumCRC32"] = response["ChecksumCRC32"]  # would not ask for it back
            return part
        return send_parts_in_parallel(data, stream, chunk_size, send, max_parts=MAX_PARTS,
                                      parallelism=self.upload_parallelism)

    def _abort(self, full: str, upload_id: str) -> None:
        try:
            self._call("abort a multipart upload", lambda: self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id))
        except Exception as exc:  # the upload still failed; a lifecycle rule cleans up parts
            logger.warning("Could not abort the multipart upload of an object in bucket %s: %s",
                           self.bucket, type(exc).__name__)

    def sweep_incomplete_uploads(self, older_than: timedelta) -> int:
        """Abort the multipart uploads below this storage's prefix started more than
        ``older_than`` ago (their parts are billed until then; an abort that failed, or a
        process killed mid-upload, leaves them)."""
        cutoff = datetime.now(UTC) - older_than
        aborted, markers = 0, {}
        while True:
            page = self._call("list unfinished uploads",
                              lambda m=markers: self.client.list_multipart_uploads(
                                  Bucket=self.bucket, Prefix=self.prefix, **m))
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    self._abort(upload["Key"], upload["UploadId"])
                    aborted += 1
            if not page.get("IsTruncated"):
                return aborted
            markers = {"KeyMarker": page["NextKeyMarker"],
                       "UploadIdMarker": page["NextUploadIdMarker"]}

    def delete(self, key: str) -> None:
        full = self._full(key)
        self.stat(key)  # S3 deletes missing keys silently; the contract says ObjectNotFound
        self._call("delete", lambda: self.client.delete_object(Bucket=self.bucket, Key=full),
                   key=key)

    def _raw_keys(self, full_prefix: str, page_size: int = 1000):
        """Every key (markers included) below ``full_prefix``, one page (list) at a time."""
        token = None
        while True:
            params = {"Bucket": self.bucket, "Prefix": full_prefix, "MaxKeys": page_size}
            if token:
                params["ContinuationToken"] = token
            response = self._call("list objects",
                                  lambda p=params: self.client.list_objects_v2(**p))
            yield [item["Key"] for item in response.get("Contents", [])]
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return

    def delete_prefix(self, prefix: str) -> int:
        if not prefix.endswith("/"):
            raise StorageError("delete_prefix needs a folder key ending in '/'.")
        full = self._full(prefix, folder=True)
        count = 0
        # Collect first: deleting while paginating could skip keys on some S3-compatibles.
        batches = list(self._raw_keys(full))
        for batch in batches:
            for start in range(0, len(batch), DELETE_BATCH):
                keys = batch[start:start + DELETE_BATCH]
                for k in keys:
                    self._relative(k)
                response = self._call("delete objects", lambda k=keys: self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in k], "Quiet": True}))
                if response.get("Errors"):
                    codes = sorted({e.get("Code", "?") for e in response["Errors"]})
                    raise StorageError(f"{len(response['Errors'])} files could not be deleted "
                                       f"({', '.join(codes)}).")
                count += sum(1 for k in keys if not k.endswith("/"))
        return count

    def make_folder(self, prefix: str) -> None:
        if not prefix:
            return
        full = self._full(prefix if prefix.endswith("/") else prefix + "/", folder=True)
        self._call("create a folder", lambda: self.client.put_object(
            Bucket=self.bucket, Key=full, Body=b""))

    def _has_marker(self, prefix: str) -> bool:
        try:
            self._call("stat", lambda: self.client.head_object(
                Bucket=self.bucket, Key=self._full(prefix, folder=True)), key=prefix)
        except ObjectNotFound:
            return False
        return True

    def folder_exists(self, prefix: str) -> bool:
        full = self._full(self._folder_key(prefix), folder=True)
        return bool(next(self._raw_keys(full, page_size=1)))

    def copy(self, src: str, dst: str) -> ObjectInfo:
        source, target = self._full(src), self._full(dst)
        info = self.stat(src)
        copy_source = {"Bucket": self.bucket, "Key": source}
        if info.size <= MAX_SINGLE_COPY:
            self._call("copy", lambda: self.client.copy_object(
                Bucket=self.bucket, Key=target, CopySource=copy_source), key=src)
        else:  # managed multipart copy (UploadPartCopy), not retried as a whole
            from boto3.s3.transfer import TransferConfig

            self._call("copy", lambda: self.client.copy(
                copy_source, self.bucket, target,
                Config=TransferConfig(multipart_chunksize=512 * MB)), key=src)
        return self.stat(dst)

    def signed_url(self, key: str, expires_seconds: int = 3600) -> str | None:
        from botocore.exceptions import NoCredentialsError

        full = self._full(key)
        try:
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": full},
                ExpiresIn=int(expires_seconds))
        except NoCredentialsError:
            return None


register_backend(S3Storage)
