"""What users see when a cloud storage fails: wrong credentials, a missing bucket or container,
an unreachable endpoint, and transient errors that are retried.

Against the real emulators where they can show it: Azurite checks account keys and SAS
signatures. moto_server does not check S3 signatures (any credentials pass), so S3's credential
and permission errors are produced by botocore's Stubber on a real client; the GCS emulator
takes any caller, so a service-account key is refused by a token endpoint instead.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import urllib.error
import urllib.request

import pytest

from cloud_storage import open_storage
from cloud_storage.base import RetryPolicy, call_with_retry
from exception_layer import ObjectNotFound, StorageAuthError, StorageError, StorageUnavailable
from tests.emulators import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    azure_credentials,
    azure_storage,
    free_port,
    gcs_credentials,
    gcs_storage,
    s3_credentials,
    s3_storage,
)

MB = 1024 * 1024
FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01)
SECRET = "s3cr3t-Value-That-Must-Not-Leak"


def fast(storage):
    storage.retry_policy = FAST
    return storage


def assert_safe(error, *secrets):
    for secret in secrets:
        assert secret not in error.message
        assert secret not in str(error)


# -- S3 ------------------------------------------------------------------------------------

def test_s3_missing_bucket(moto_server):
    storage = fast(open_storage("s3://no-such-bucket-here/p", s3_credentials(moto_server)))
    for attempt in (storage.check, lambda: storage.list(""),
                    lambda: storage.upload_bytes("a.txt", b"1"),
                    lambda: storage.read_bytes("a.txt")):
        with pytest.raises(StorageError) as caught:
            attempt()
        assert caught.value.message == "The bucket 'no-such-bucket-here' does not exist."


def test_s3_unreachable_endpoint():
    port = free_port()
    credentials = {"access_key_id": "AKIA", "secret_access_key": SECRET,
                   "endpoint_url": f"http://127.0.0.1:{port}"}
    storage = fast(open_storage("s3://bucket-x/p", credentials))
    with pytest.raises(StorageUnavailable) as caught:
        storage.check()
    assert caught.value.message == (f"Cannot reach the storage at http://127.0.0.1:{port}: "
                                    "connection refused.")
    assert_safe(caught.value, SECRET)


@pytest.mark.parametrize("code, status, message", [
    ("SignatureDoesNotMatch", 403,
     "The storage rejected the credentials (access key or secret is wrong)."),
    ("InvalidAccessKeyId", 403,
     "The storage rejected the credentials (access key or secret is wrong)."),
    ("AccessDenied", 403, "Permission denied on bucket 'bucket-x'."),
])
def test_s3_credential_errors(moto_server, code, status, message):
    from botocore.stub import Stubber

    storage = fast(open_storage("s3://bucket-x/p", {**s3_credentials(moto_server),
                                                    "secret_access_key": SECRET}))
    with Stubber(storage.client) as stub:
        stub.add_client_error("list_objects_v2", service_error_code=code,
                              service_message=f"the signature for {SECRET}",
                              http_status_code=status)
        with pytest.raises(StorageAuthError) as caught:
            storage.check()
    assert caught.value.message == message
    assert_safe(caught.value, SECRET)


def test_s3_transient_errors_are_retried_and_logged(moto_server, caplog):
    from botocore.stub import Stubber

    with s3_storage() as storage:
        fast(storage).upload_bytes("a.txt", b"1")
        stub = Stubber(storage.client)
        stub.add_client_error("head_object", service_error_code="SlowDown",
                              http_status_code=503)
        stub.add_client_error("head_object", service_error_code="503", http_status_code=503)
        stub.add_response("head_object", {"ContentLength": 1})
        with stub, caplog.at_level(logging.WARNING, logger="trainyard.storage"):
            assert storage.stat("a.txt").size == 1
            stub.assert_no_pending_responses()
        retries = [r for r in caplog.records if r.name == "trainyard.storage"]
        assert len(retries) == 2 and "SlowDown (HTTP 503)" in retries[0].getMessage()


def test_s3_permanent_errors_are_not_retried(moto_server):
    from botocore.stub import Stubber

    with s3_storage() as storage:
        stub = Stubber(fast(storage).client)
        stub.add_client_error("head_object", service_error_code="AccessDenied",
                              http_status_code=403)
        stub.add_response("head_object", {"ContentLength": 1})
        with stub:
            with pytest.raises(StorageAuthError):
                storage.stat("a.txt")
            with pytest.raises(AssertionError):  # the second answer was never asked for
                stub.assert_no_pending_responses()


def test_s3_exhausted_retries_become_storage_unavailable(moto_server):
    from botocore.stub import Stubber

    with s3_storage() as storage:
        stub = Stubber(fast(storage).client)
        for _ in range(FAST.attempts):
            stub.add_client_error("list_objects_v2", service_error_code="SlowDown",
                                  http_status_code=503)
        with stub, pytest.raises(StorageUnavailable, match="unavailable right now"):
            storage.list("")


def test_s3_aborted_multipart_upload_leaves_no_parts(moto_server):
    from generated_stream import GeneratedStream

    with s3_storage() as storage:
        size = storage.upload_chunk_size * 2
        with pytest.raises(ConnectionResetError):
            storage.upload("x.bin", GeneratedStream(size, fail_after=size // 2 + 1))
        uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert uploads.get("Uploads", []) == []
        assert not storage.exists("x.bin")


@pytest.mark.parametrize("setting", ["when_supported", "when_required"])
def test_s3_multipart_parts_carry_crc32_unless_asked_not_to(moto_server, monkeypatch, setting):
    """Parts carry CRC32 checksums, as the SDK's own uploads do, so the store checks each part;
    AWS_REQUEST_CHECKSUM_CALCULATION=when_required (for S3-compatibles that refuse checksums)
    turns them off, and the upload still works."""
    from generated_stream import GeneratedStream, generated_sha256

    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", setting)
    with s3_storage() as storage:
        size = storage.upload_chunk_size * 2 + 5
        storage.upload("x.bin", GeneratedStream(size), size=size)
        head = storage.client.head_object(Bucket=storage.bucket, Key=storage._full("x.bin"),
                                          ChecksumMode="ENABLED")
        assert storage.sha256("x.bin") == generated_sha256(size)
    if setting == "when_supported":
        assert head["ChecksumCRC32"]  # combined from the parts' checksums
    else:
        assert "ChecksumCRC32" not in head


def test_s3_signed_url_downloads_the_object(moto_server):
    with s3_storage() as storage:
        storage.upload_bytes("dir/report.csv", b"a,b\n")
        url = storage.signed_url("dir/report.csv", 60)
        assert "X-Amz-Signature=" in url
        with urllib.request.urlopen(url) as response:
            assert response.read() == b"a,b\n"


# -- Azure ---------------------------------------------------------------------------------

def test_azure_wrong_account_key(azurite_server):
    wrong = AZURITE_KEY[:-8] + "AAAAAAA="
    credentials = {"connection_string": azure_credentials(azurite_server)["connection_string"]
                   .replace(AZURITE_KEY, wrong)}
    with azure_storage() as good:
        storage = fast(open_storage(good.uri, credentials))
        for attempt in (storage.check, lambda: storage.upload_bytes("a.txt", b"1")):
            with pytest.raises(StorageAuthError) as caught:
                attempt()
            assert caught.value.message == ("The storage rejected the credentials (account "
                                            "key or SAS token is wrong or expired).")
            assert_safe(caught.value, wrong, AZURITE_KEY)


def test_azure_account_name_and_key_credentials(azurite_server):
    credentials = {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY,
                   "account_url": f"{azurite_server.endpoint}/{AZURITE_ACCOUNT}"}
    with azure_storage() as good:
        uri = good.uri.replace("wasbs://", "az://").replace(f"@{AZURITE_ACCOUNT}", "")
        storage = open_storage(uri + "/x", credentials)
        storage.upload_bytes("k.txt", b"1")
        assert good.read_bytes("x/k.txt") == b"1"


def test_azure_missing_container(azurite_server):
    storage = fast(open_storage(f"wasbs://no-such-container@{AZURITE_ACCOUNT}/p",
                                azure_credentials(azurite_server)))
    for attempt in (storage.check, lambda: storage.upload_bytes("a.txt", b"1"),
                    lambda: storage.stat("a.txt")):
        with pytest.raises(StorageError) as caught:
            attempt()
        assert caught.value.message == "The container 'no-such-container' does not exist."


def test_azure_unreachable_endpoint():
    port = free_port()
    credentials = {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY,
                   "account_url": f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"}
    storage = fast(open_storage(f"wasbs://c-one@{AZURITE_ACCOUNT}/p", credentials))
    with pytest.raises(StorageUnavailable) as caught:
        storage.check()
    assert caught.value.message == (f"Cannot reach the storage at http://127.0.0.1:{port}/"
                                    f"{AZURITE_ACCOUNT}: connection refused.")
    assert_safe(caught.value, AZURITE_KEY)


def test_azure_signed_url_is_checked_by_the_server(azurite_server):
    with azure_storage() as storage:
        storage.upload_bytes("d/r.csv", b"x,y\n")
        url = storage.signed_url("d/r.csv", 60)
        with urllib.request.urlopen(url) as response:
            assert response.read() == b"x,y\n"
        tampered = url.replace("sp=r", "sp=rw")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(tampered)
        assert caught.value.code == 403


def test_azure_sas_token_credentials_cannot_sign(azurite_server):
    storage = open_storage("az://c-one/p", {"account_name": AZURITE_ACCOUNT,
                                             "sas_token": "sv=x&sig=y"})
    assert storage.signed_url("a.txt") is None


# -- GCS -----------------------------------------------------------------------------------

def _service_account_json(token_uri: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return json.dumps({"type": "service_account", "project_id": "trainyard-test",
                       "private_key_id": "k1", "private_key": pem,
                       "client_email": "robot@trainyard-test.iam.gserviceaccount.com",
                       "client_id": "1", "token_uri": token_uri})


def test_gcs_rejected_service_account_key(gcs_server):
    """The token endpoint refuses the key (here: the emulator, which has no token service)."""
    key_json = _service_account_json(f"{gcs_server.endpoint}/token")
    storage = fast(open_storage("gs://some-bucket/p", {**gcs_credentials(gcs_server),
                                                       "service_account_json": key_json}))
    with pytest.raises(StorageAuthError) as caught:
        storage.check()
    assert caught.value.message.startswith("The storage rejected the credentials")
    assert_safe(caught.value, json.loads(key_json)["private_key"][40:80])


def test_gcs_invalid_service_account_json():
    storage = open_storage("gs://some-bucket/p", {"service_account_json": "{not json"})
    with pytest.raises(StorageAuthError, match="service account key is not valid"):
        storage.check()


def test_gcs_missing_bucket(gcs_server):
    storage = fast(open_storage("gs://no-such-bucket-here/p", gcs_credentials(gcs_server)))
    for attempt in (storage.check, lambda: storage.upload_bytes("a.txt", b"1"),
                    lambda: storage.stat("a.txt")):
        with pytest.raises(StorageError) as caught:
            attempt()
        assert caught.value.message == "The bucket 'no-such-bucket-here' does not exist."


def test_gcs_missing_object_in_an_existing_bucket(gcs_server):
    with gcs_storage() as storage:
        with pytest.raises(ObjectNotFound):
            storage.stat("nope.txt")


def test_gcs_unreachable_endpoint():
    port = free_port()
    storage = fast(open_storage("gs://some-bucket/p", {"endpoint": f"http://127.0.0.1:{port}"}))
    with pytest.raises(StorageUnavailable) as caught:
        storage.check()
    assert caught.value.message == (f"Cannot reach the storage at http://127.0.0.1:{port}: "
                                    "connection refused.")


def test_gcs_permission_denied_and_server_errors_are_mapped():
    from google.api_core import exceptions as api

    storage = open_storage("gs://some-bucket/p", {"endpoint": "http://127.0.0.1:1"})
    denied = storage._translate_error(api.Forbidden("robot@x lacks storage.objects.list"), None)
    assert isinstance(denied, StorageAuthError)
    assert denied.message == "Permission denied on bucket 'some-bucket'."
    assert storage._is_transient(api.ServiceUnavailable("busy"))
    assert not storage._is_transient(api.Forbidden("no"))


def test_gcs_signed_url_needs_a_service_account_key(gcs_server):
    with gcs_storage() as storage:
        assert storage.signed_url("a.txt") is None  # anonymous: cannot sign
    signer = open_storage("gs://some-bucket/p", {
        "service_account_json": _service_account_json("https://oauth2.googleapis.com/token")})
    url = signer.signed_url("dir/a b.txt", 60)
    assert url.startswith("https://storage.googleapis.com/some-bucket/p/dir/a%20b.txt?")
    assert "X-Goog-Signature=" in url and "X-Goog-Expires=60" in url


class DroppedUpload:
    """Wraps the SDK's HTTP session so that the first data request of a streamed upload sends
    ``kept`` bytes to the emulator for real, then reads ``dropped`` more and fails as a reset
    connection would. Injected because the emulator cannot drop a connection midway; every
    request, the resumed one included, goes to the real emulator."""

    def __init__(self, session, *, kept: int, dropped: int):
        self.session, self.kept, self.dropped, self.fired = session, kept, dropped, False

    def put(self, url, data=None, headers=None, **kwargs):
        import requests

        if self.fired or data is None:
            return self.session.put(url, data=data, headers=headers, **kwargs)
        self.fired = True
        total = headers["Content-Range"].rpartition("/")[2]
        if self.kept:
            sent = bytearray()
            while len(sent) < self.kept:
                sent += data.read(self.kept - len(sent))
            response = self.session.put(url, data=sent, headers={
                "Content-Range": f"bytes 0-{self.kept - 1}/{total}"}, **kwargs)
            assert response.status_code == 308
        while self.dropped > 0:
            self.dropped -= len(data.read(min(MB, self.dropped)))
        raise requests.exceptions.ConnectionError("Connection reset by peer")

    def __getattr__(self, name):
        return getattr(self.session, name)


def test_gcs_interrupted_upload_resumes_from_what_the_storage_kept(gcs_server, caplog):
    from generated_stream import GeneratedStream, generated_sha256

    with gcs_storage() as storage:
        fast(storage).client._http_internal = DroppedUpload(storage.client._http, kept=4 * MB,
                                                   dropped=3 * MB)
        size = 12 * MB + 3
        with caplog.at_level(logging.WARNING, logger="trainyard.storage"):
            info = storage.upload("big.bin", GeneratedStream(size), size=size)
        assert storage.client._http.fired
        assert info.size == size and storage.sha256("big.bin") == generated_sha256(size)
        assert "GCS upload interrupted (ConnectionError); resuming" in caplog.text


def test_gcs_upload_that_cannot_be_resumed_stores_nothing(gcs_server):
    """The storage kept nothing, and the window to send again from has moved past the start."""
    from generated_stream import GeneratedStream

    with gcs_storage() as storage:
        storage.upload_bytes("big.bin", b"the old version")
        fast(storage).resume_window = 2 * MB
        storage.client._http_internal = DroppedUpload(storage.client._http, kept=0,
                                                      dropped=10 * MB)
        with pytest.raises(StorageUnavailable, match="cannot be resumed"):
            storage.upload("big.bin", GeneratedStream(12 * MB), size=12 * MB)
        assert storage.read_bytes("big.bin") == b"the old version"


@pytest.mark.parametrize("actual", [5 * MB, 7 * MB])
def test_gcs_upload_of_another_size_than_announced_stores_nothing(gcs_server, actual):
    from generated_stream import GeneratedStream

    with gcs_storage() as storage:
        with pytest.raises(StorageError, match="6291456"):
            storage.upload("x.bin", GeneratedStream(actual), size=6 * MB)
        assert not storage.exists("x.bin")


def read_sha256(storage, key: str) -> str:
    digest = hashlib.sha256()
    with storage.open_read(key) as stream:
        while chunk := stream.read(300_000):
            digest.update(chunk)
    return digest.hexdigest()


class CutS3Reads:
    """Wraps the boto3 client so that the body of each ``get_object``, up to ``cuts`` of them,
    delivers ``after`` real bytes from moto and then fails as a connection reset midway would
    (moto cannot drop a connection itself). Every request, the resumed ones included, goes to
    the real moto server; ``calls`` keeps what each asked for."""

    def __init__(self, client, *, after: int, cuts: int = 1):
        self.client, self.after, self.cuts, self.calls = client, after, cuts, []

    def get_object(self, **kwargs):
        self.calls.append(kwargs)
        response = self.client.get_object(**kwargs)
        if self.cuts:
            self.cuts -= 1
            response["Body"] = _CutBody(response["Body"], self.after, _s3_reset)
        return response

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_s3_download_cut_midway_resumes_from_the_next_byte(moto_server, caplog):
    from generated_stream import GeneratedStream, generated_sha256

    size = 6 * MB + 5
    with s3_storage() as storage:
        etag = storage.upload("big.bin", GeneratedStream(size), size=size).version
        cut = fast(storage)._client = CutS3Reads(storage.client, after=2 * MB, cuts=2)
        with caplog.at_level(logging.WARNING, logger="trainyard.storage"):
            assert read_sha256(storage, "big.bin") == generated_sha256(size)
        assert [call.get("Range") for call in cut.calls] == [
            None, f"bytes={2 * MB}-", f"bytes={4 * MB}-"]
        assert [call.get("IfMatch") for call in cut.calls] == [None] + [f'"{etag}"'] * 2
        assert "S3 download interrupted (ResponseStreamingError); resuming from byte " \
            f"{2 * MB}" in caplog.text


def test_s3_download_cut_again_and_again_gives_up_with_a_clear_message(moto_server):
    with s3_storage() as storage:
        storage.upload_bytes("a.csv", b"x" * 1000)
        cut = fast(storage)._client = CutS3Reads(storage.client, after=0, cuts=99)
        with storage.open_read("a.csv") as stream, \
                pytest.raises(StorageUnavailable, match="interrupted 3 times without progress"):
            stream.read()
        assert len(cut.calls) == FAST.attempts


def test_s3_download_of_a_file_replaced_midway_fails_instead_of_mixing(moto_server):
    size = 3 * MB
    with s3_storage() as storage:
        storage.upload_bytes("a.bin", b"1" * size)
        cut = fast(storage)._client = CutS3Reads(storage.client, after=MB)
        real_get = cut.get_object

        def get_object(**kwargs):
            if cut.calls:  # the resumed request: the file was replaced after the cut
                storage.upload_bytes("a.bin", b"2" * size)
            return real_get(**kwargs)

        cut.get_object = get_object
        with storage.open_read("a.bin") as stream, \
                pytest.raises(StorageError, match="a.bin was replaced while it was being read"):
            stream.read()
        assert len(cut.calls) == 2  # moto refused the pinned request: no retry after that


class CutDownloads:
    """Wraps the SDK's HTTP session so that each streamed download request, up to ``cuts``
    of them, delivers ``after`` real bytes from the emulator and then fails as a connection
    reset midway would (the emulator cannot drop a connection itself). Every request, the
    resumed ones included, goes to the real emulator; ``requests`` keeps what each asked for."""

    def __init__(self, session, *, after: int, cuts: int = 1):
        self.session, self.after, self.cuts, self.requests = session, after, cuts, []

    def get(self, url, params=None, headers=None, **kwargs):
        response = self.session.get(url, params=params, headers=headers, **kwargs)
        self.requests.append((dict(params or {}), dict(headers or {})))
        if self.cuts and kwargs.get("stream"):
            self.cuts -= 1
            response.raw = _CutBody(response.raw, self.after)
        return response

    def __getattr__(self, name):
        return getattr(self.session, name)


class _CutBody:
    """A response body that delivers ``after`` real bytes, then raises what the client library
    raises for a connection reset midway."""

    def __init__(self, raw, after: int, broken=None):
        self.raw, self.left, self.broken = raw, after, broken or _reset

    def read(self, amount=None, **kwargs):
        if self.left <= 0:
            raise self.broken()
        data = self.raw.read(min(amount, self.left), **kwargs)
        self.left -= len(data)
        return data

    def __getattr__(self, name):
        return getattr(self.raw, name)


def _reset():
    from urllib3.exceptions import ProtocolError

    return ProtocolError("Connection broken: ConnectionResetError(104)")


def _s3_reset():  # what botocore's StreamingBody raises for a reset connection
    from botocore.exceptions import ResponseStreamingError

    return ResponseStreamingError(error=_reset())


def test_gcs_download_cut_midway_resumes_from_the_next_byte(gcs_server, caplog):
    from generated_stream import GeneratedStream, generated_sha256

    size = 6 * MB + 5
    with gcs_storage() as storage:
        storage.upload("big.bin", GeneratedStream(size), size=size)
        generation = storage.bucket.get_blob(storage._full("big.bin")).generation
        cut = fast(storage).client._http_internal = CutDownloads(storage.client._http,
                                                                 after=2 * MB, cuts=2)
        with caplog.at_level(logging.WARNING, logger="trainyard.storage"):
            assert read_sha256(storage, "big.bin") == generated_sha256(size)
        assert [headers.get("Range") for _, headers in cut.requests] == [
            None, f"bytes={2 * MB}-", f"bytes={4 * MB}-"]
        assert all(params["ifGenerationMatch"] == str(generation)
                   for params, _ in cut.requests)
        assert f"GCS download interrupted (ProtocolError); resuming from byte {2 * MB}" \
            in caplog.text


def test_gcs_download_cut_again_and_again_gives_up_with_a_clear_message(gcs_server):
    with gcs_storage() as storage:
        storage.upload_bytes("a.csv", b"x" * 1000)
        cut = fast(storage).client._http_internal = CutDownloads(storage.client._http,
                                                                 after=0, cuts=99)
        with storage.open_read("a.csv") as stream, \
                pytest.raises(StorageUnavailable, match="interrupted 3 times without progress"):
            stream.read()
        assert len(cut.requests) == FAST.attempts


def test_gcs_download_of_a_file_replaced_midway_fails_instead_of_mixing(gcs_server):
    """The resumed request is pinned to the generation that was opened. Real GCS answers 412
    when that generation is gone; the emulator ignores the condition and would serve the new
    bytes, so this test answers the resumed request with GCS's 412 itself (after checking that
    it carries the pin). What it checks is Trainyard's side: the pin, and the message."""
    import requests

    size = 3 * MB
    with gcs_storage() as storage:
        storage.upload_bytes("a.bin", b"1" * size)
        generation = storage.bucket.get_blob(storage._full("a.bin")).generation
        cut = fast(storage).client._http_internal = CutDownloads(storage.client._http,
                                                                 after=MB)
        real_get = cut.get

        def get(url, params=None, headers=None, **kwargs):
            if not cut.requests:
                return real_get(url, params=params, headers=headers, **kwargs)
            assert params["ifGenerationMatch"] == str(generation)
            storage.upload_bytes("a.bin", b"2" * size)
            refused = requests.Response()
            refused.status_code, refused.url = 412, url
            refused.request = requests.Request("GET", url).prepare()
            refused.raw = io.BytesIO(b'{"error": {"code": 412, "message": "Precondition '
                                     b'Failed"}}')
            cut.requests.append((params, headers))
            return refused

        cut.get = get
        with storage.open_read("a.bin") as stream, \
                pytest.raises(StorageError, match="a.bin was replaced while it was being read"):
            stream.read()
        assert len(cut.requests) == 2


@pytest.fixture
def session_adapter():
    """The GCS adapter probed afresh in the test (and again after it)."""
    from cloud_storage.gcs import SESSION

    SESSION.forget()
    yield SESSION
    SESSION.forget()


def test_gcs_session_adapter_passes_on_the_pinned_client(session_adapter, caplog):
    with caplog.at_level(logging.INFO, logger="trainyard.adapters"):
        assert session_adapter.check()
    assert not [r for r in caplog.records if r.name == "trainyard.adapters"]


class OtherTransport:
    """What an upgraded storage client might keep in ``_http`` instead of google.auth's
    AuthorizedSession: the SDK's own calls still work through it."""

    def __init__(self, session):
        self._session = session

    def __getattr__(self, name):
        return getattr(self._session, name)


def test_gcs_without_the_clients_session_uses_the_sdks_public_transfers(
        gcs_server, session_adapter, monkeypatch, caplog):
    from generated_stream import GeneratedStream, generated_sha256
    from google.cloud.client import Client

    from cloud_storage.gcs import GCSStorage

    real = Client._http
    monkeypatch.setattr(Client, "_http", property(lambda self: OtherTransport(real.fget(self))))

    def private(*args, **kwargs):
        raise AssertionError("the client's session was used")

    monkeypatch.setattr(GCSStorage, "_streamed_upload", private)
    monkeypatch.setattr(GCSStorage, "_media_chunks", private)
    size = 9 * MB + 7  # three chunks and a bit: a resumable upload of known size
    with caplog.at_level(logging.INFO, logger="trainyard.adapters"), gcs_storage() as storage:
        info = storage.upload("big.bin", GeneratedStream(size), size=size)
        assert info.size == size and read_sha256(storage, "big.bin") == generated_sha256(size)
        assert storage.read_bytes("big.bin")[-7:] == GeneratedStream(size).read()[-7:]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "trainyard.adapters"]
    assert line.startswith("gcs-session: not using google-cloud-storage's Client._http (the "
                           "client's _http is a OtherTransport, not an AuthorizedSession)")
    assert line.endswith("using the SDK's chunked resumable uploads and ranged downloads "
                         "instead")


# -- the shared retry helper ---------------------------------------------------------------

class Transient(Exception):
    pass


def test_call_with_retry_backs_off_exponentially_then_gives_up():
    sleeps, calls = [], []

    def flaky():
        calls.append(1)
        raise Transient("503")

    policy = RetryPolicy(attempts=4, base_delay=1, max_delay=3)
    with pytest.raises(Transient):
        call_with_retry(flaky, is_transient=lambda e: isinstance(e, Transient), policy=policy,
                        sleep=sleeps.append)
    assert len(calls) == 4 and len(sleeps) == 3
    assert 0.5 <= sleeps[0] <= 1 and 1 <= sleeps[1] <= 2 and 1.5 <= sleeps[2] <= 3


def test_call_with_retry_does_not_retry_permanent_errors():
    calls = []

    def denied():
        calls.append(1)
        raise PermissionError("403")

    with pytest.raises(PermissionError):
        call_with_retry(denied, is_transient=lambda e: isinstance(e, Transient),
                        policy=FAST, sleep=lambda s: None)
    assert len(calls) == 1


def test_storage_repr_hides_credentials(moto_server):
    storage = open_storage("s3://bucket-x/p", {**s3_credentials(moto_server),
                                               "secret_access_key": SECRET})
    assert SECRET not in repr(storage)
