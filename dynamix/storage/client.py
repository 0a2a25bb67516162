"""The boto3 S3 client built from the ``storage`` section, and one-line errors for its failures.

This is the only place (with :mod:`dynamix.storage.s3`) that imports boto3. Retries and
multipart transfers are boto3's own machinery (botocore retry modes, s3transfer's
``TransferConfig``); what this module adds is validation of the settings and a translation
of botocore's exceptions into :class:`StorageError` lines that name the bucket and the fix.
"""

from __future__ import annotations

import logging
import typing
from typing import Any

import boto3
from boto3.exceptions import RetriesExceededError as Boto3RetriesExceededError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)
from s3transfer.exceptions import RetriesExceededError

from dynamix.config import RetryMode, StorageConfig
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

MB = 1024 * 1024
RETRY_MODES = typing.get_args(RetryMode)
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
_DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled"}


class StorageError(DynamixError):
    """An S3 transfer failed for a reason the user can fix (bucket, credentials, endpoint)."""


def make_client(config: StorageConfig) -> Any:
    """An S3 client with botocore retries; credentials come from the standard AWS chain only."""
    if config.retry_mode not in RETRY_MODES:
        raise StorageError(
            f"params.yaml: storage.retry_mode {config.retry_mode!r} is not one of {', '.join(RETRY_MODES)}"
        )
    if config.max_attempts < 1:
        raise StorageError("params.yaml: storage.max_attempts must be at least 1")
    when = "when_supported" if config.checksum_algorithm else "when_required"
    botocore_config = Config(
        retries={"mode": config.retry_mode, "max_attempts": config.max_attempts},
        connect_timeout=10,
        read_timeout=60,
        request_checksum_calculation=when,
        response_checksum_validation=when,
    )
    session = boto3.session.Session(region_name=config.region)
    try:  # endpoint_url=None lets boto3 read AWS_ENDPOINT_URL(_S3) from the environment itself
        return session.client("s3", endpoint_url=config.endpoint_url, config=botocore_config)
    except ValueError as exc:  # botocore: "Invalid endpoint: minio:9000"
        raise StorageError(
            f"S3 endpoint: {exc}; set storage.endpoint_url / AWS_ENDPOINT_URL to a full URL "
            "such as http://localhost:9000"
        ) from exc


def transfer_config(config: StorageConfig) -> TransferConfig:
    """Multipart thresholds and per-part download retries (s3transfer's own retry loop)."""
    if config.multipart_threshold_mb < 1 or config.multipart_chunk_mb < 1:
        raise StorageError("params.yaml: storage.multipart_threshold_mb/chunk_mb must be >= 1")
    return TransferConfig(
        multipart_threshold=config.multipart_threshold_mb * MB,
        multipart_chunksize=config.multipart_chunk_mb * MB,
        max_concurrency=max(1, config.max_concurrency),
        num_download_attempts=config.max_attempts,
    )


def check_bucket(client: Any, bucket: str, action: str) -> None:
    """Fail with one clear line if ``bucket`` is missing or unreachable, before any transfer."""
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) in {"404", "NoSuchBucket", "NotFound"}:
            raise StorageError(
                f"{action} s3://{bucket}: bucket does not exist at {endpoint(client)}; create it "
                "(aws s3 mb / the minio-init service) or fix storage.*_uri"
            ) from exc
        raise explain(exc, client, action=action, bucket=bucket) from exc
    except BotoCoreError as exc:
        raise explain(exc, client, action=action, bucket=bucket) from exc


def explain(exc: BaseException, client: Any, *, action: str, bucket: str, key: str = "") -> StorageError:
    """Translate a boto3/botocore failure into one line naming the object and the fix."""
    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    head = f"{action} {where}"
    cause = _root(exc)
    if isinstance(cause, NoCredentialsError | PartialCredentialsError):
        return StorageError(
            f"{head}: no AWS credentials found; export AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE); never put them in params.yaml"
        )
    if isinstance(cause, EndpointConnectionError | ConnectionClosedError):
        return StorageError(
            f"{head}: cannot reach the S3 endpoint {endpoint(client)}; start the server or fix "
            "storage.endpoint_url / AWS_ENDPOINT_URL"
        )
    if isinstance(cause, ClientError):
        code = _code(cause)
        message = cause.response.get("Error", {}).get("Message", "")
        if code == "NoSuchBucket":
            return StorageError(f"{head}: bucket {bucket!r} does not exist; create it first")
        if code in _BAD_CREDENTIALS:
            return StorageError(
                f"{head}: the server rejected the AWS credentials ({code}); check "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
            )
        if code in _DENIED:
            return StorageError(
                f"{head}: access denied; give these credentials s3:GetObject/PutObject/ListBucket on {bucket!r}"
            )
        if code in _MISSING_KEY:
            return StorageError(f"{head}: no such object; check the URI (push it first)")
        return StorageError(f"{head}: {code or 'error'} {message}".rstrip())
    if isinstance(exc, RetriesExceededError | Boto3RetriesExceededError):
        return StorageError(
            f"{head}: transfer interrupted on every attempt ({exc.last_exception!r}); nothing "
            "partial was kept, check the network/endpoint and run it again"
        )
    return StorageError(f"{head}: {type(cause).__name__}: {cause}")


def endpoint(client: Any) -> str:
    """The endpoint the client talks to, for error messages."""
    return str(getattr(client.meta, "endpoint_url", "") or "the default AWS endpoint")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _root(exc: BaseException) -> BaseException:
    """The botocore exception inside boto3's wrappers (S3UploadFailedError, RetriesExceeded)."""
    seen = exc
    for _ in range(5):
        if isinstance(seen, BotoCoreError | ClientError):
            return seen
        nxt = getattr(seen, "last_exception", None) or seen.__cause__ or seen.__context__
        if nxt is None:
            break
        seen = nxt
    return seen if isinstance(seen, BotoCoreError | ClientError) else exc
