"""An artifact store in an S3 bucket (AWS S3, MinIO, or any S3 API) through boto3.

One boto3 client per store (boto3 clients are thread-safe); each call runs in a worker thread with
``asyncio.to_thread``. The sha256 digest of each object is kept in its user metadata
(``x-amz-meta-sha256``) so :meth:`S3Store.stat` knows it without downloading the content.
Credentials are handed to boto3 and kept nowhere else: they never appear in the store's repr or
in the messages of the errors it raises.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from libs.common.artifacts.archive import DIGEST_ALGORITHM, digest_of
from libs.common.artifacts.errors import ArtifactError, ArtifactNotFound
from libs.common.artifacts.objects import StoredObject, clean_path, clean_prefix, content_type_for

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

_T = TypeVar("_T")
_DIGEST_METADATA_KEY = DIGEST_ALGORITHM  # x-amz-meta-sha256: <hex>
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_BUCKET_EXISTS_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})


class S3Store:
    """Artifacts as objects in ``bucket``; keys are the artifact paths.

    ``endpoint_url`` points at a non-AWS S3 API (MinIO, moto) and switches to path-style
    addressing; ``None`` means AWS itself. When ``access_key``/``secret_key`` are ``None`` boto3's
    default credential chain applies (environment, profile, instance or pod identity). With
    ``create_bucket=True`` the bucket is created on first use if it does not exist.
    """

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        region: str = "us-east-1",
        create_bucket: bool = False,
        session_token: str | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ArtifactError(f"invalid S3 bucket name {bucket!r}")
        if endpoint_url is not None and "@" in urlsplit(endpoint_url).netloc:
            raise ArtifactError("the S3 endpoint URL must not carry credentials; pass access and secret keys")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self._create_bucket = create_bucket
        self._bucket_checked = not create_bucket
        self._bucket_lock = threading.Lock()
        self._credentials = _Credentials(access_key, secret_key, session_token)
        self._client: S3Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r}, region={self.region!r})"

    # --- async API ---------------------------------------------------------------------------------

    async def put(self, path: str, data: bytes) -> StoredObject:
        key = clean_path(path)
        return await self._run("put", key, lambda: self._put(key, data))

    async def get(self, path: str) -> bytes:
        key = clean_path(path)
        return await self._run("get", key, lambda: self._get(key))

    async def stat(self, path: str) -> StoredObject:
        key = clean_path(path)
        return await self._run("stat", key, lambda: self._stat(key))

    async def exists(self, path: str) -> bool:
        try:
            await self.stat(path)
        except ArtifactNotFound:
            return False
        return True

    async def delete(self, path: str) -> None:
        key = clean_path(path)
        await self._run("delete", key, lambda: self._delete(key))

    async def list(self, prefix: str) -> builtins.list[StoredObject]:
        cleaned = clean_prefix(prefix)
        return await self._run("list", cleaned, lambda: self._list(cleaned))

    async def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (what ``create_bucket=True`` does on first use)."""
        await self._run("create bucket", "", lambda: self._ensure_bucket(force=True))

    # --- blocking calls, run in threads ------------------------------------------------------------

    async def _run(self, operation: str, key: str, call: Callable[[], _T]) -> _T:
        def guarded() -> _T:
            self._ensure_bucket()
            try:
                return call()
            except ClientError as exc:
                raise self._translate(operation, key, exc) from None
            except BotoCoreError as exc:
                raise ArtifactError(f"s3 {operation} {self._location(key)}: {exc}") from None

        return await asyncio.to_thread(guarded)

    def _translate(self, operation: str, key: str, exc: ClientError) -> ArtifactError:
        error: Any = exc.response.get("Error", {})
        code = str(error.get("Code", "")) or "Unknown"
        if code in _NOT_FOUND_CODES and key:
            return ArtifactNotFound(key)
        message = str(error.get("Message", "")) or str(
            exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        )
        return ArtifactError(f"s3 {operation} {self._location(key)}: {code}: {message}")

    def _s3(self) -> S3Client:
        """The store's one boto3 client, created on first use (in a worker thread: it loads models)."""
        if self._client is not None:
            return self._client
        with self._client_lock:
            if self._client is None:
                config = Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=60,
                    # Checksums only where S3 requires them: other S3 implementations reject newer ones.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    aws_access_key_id=self._credentials.access_key,
                    aws_secret_access_key=self._credentials.secret_key,
                    aws_session_token=self._credentials.session_token,
                    config=config,
                )
            return self._client

    def _location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _ensure_bucket(self, *, force: bool = False) -> None:
        if self._bucket_checked and not force:
            return
        with self._bucket_lock:
            if self._bucket_checked and not force:
                return
            try:
                self._s3().head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code not in {"404", "NoSuchBucket", "NotFound"}:
                    raise self._translate("create bucket", "", exc) from None
                self._create()
            except BotoCoreError as exc:
                raise ArtifactError(f"s3 create bucket {self._location('')}: {exc}") from None
            self._bucket_checked = True

    def _create(self) -> None:
        try:
            if self.region == "us-east-1":
                self._s3().create_bucket(Bucket=self.bucket)
            else:
                self._s3().create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={"LocationConstraint": self.region},  # type: ignore[typeddict-item]
                )
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) not in _BUCKET_EXISTS_CODES:
                raise self._translate("create bucket", "", exc) from None

    def _put(self, key: str, data: bytes) -> StoredObject:
        digest = digest_of(data)
        self._s3().put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type_for(key),
            Metadata={_DIGEST_METADATA_KEY: digest.partition(":")[2]},
        )
        return StoredObject(path=key, size=len(data), digest=digest, last_modified=datetime.now(UTC))

    def _get(self, key: str) -> bytes:
        response = self._s3().get_object(Bucket=self.bucket, Key=key)
        with response["Body"] as body:
            return body.read()

    def _stat(self, key: str) -> StoredObject:
        response = self._s3().head_object(Bucket=self.bucket, Key=key)
        hex_digest = response.get("Metadata", {}).get(_DIGEST_METADATA_KEY)
        return StoredObject(
            path=key,
            size=int(response["ContentLength"]),
            digest=f"{DIGEST_ALGORITHM}:{hex_digest}" if hex_digest else None,
            last_modified=_utc(response.get("LastModified")),
        )

    def _delete(self, key: str) -> None:
        self._s3().delete_object(Bucket=self.bucket, Key=key)

    def _list(self, prefix: str) -> builtins.list[StoredObject]:
        found: builtins.list[StoredObject] = []
        paginator = self._s3().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found.append(
                    StoredObject(
                        path=item["Key"],
                        size=int(item.get("Size", 0)),
                        last_modified=_utc(item.get("LastModified")),
                    )
                )
        found.sort(key=lambda obj: obj.path)
        return found


class _Credentials:
    """Keys kept until the client is created; their repr never shows them."""

    __slots__ = ("access_key", "secret_key", "session_token")

    def __init__(self, access_key: str | None, secret_key: str | None, session_token: str | None) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token

    def __repr__(self) -> str:
        return (
            "<S3 credentials redacted>" if self.access_key or self.secret_key else "<default S3 credentials>"
        )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
