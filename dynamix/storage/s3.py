"""Verified S3 transfers of files and directories (checkpoints, dataset snapshots, weights).

End to end, every object carries the sha256 of its bytes in its metadata (computed before
the upload); a download lands in a temporary file beside the target, renamed into place only
once size and sha256 match: no partial or corrupt file ever sits at the final path. On the
wire the server verifies each part's ``storage.checksum_algorithm`` checksum, and s3transfer
aborts an interrupted multipart upload, so no partial object ever appears under the key.

A directory is uploaded file by file, then a manifest (``_dynamix_manifest.json``: relative
path, size, sha256) is written last: a prefix without one is an incomplete push and is never
downloaded. A directory download is staged in a sibling folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import RetriesExceededError, S3DownloadFailedError, S3UploadFailedError

from dynamix.config import StorageConfig
from dynamix.io import atomic_path
from dynamix.storage.client import (
    StorageError,
    check_bucket,
    explain,
    make_client,
    transfer_config,
)

log = logging.getLogger(__name__)

MANIFEST = "_dynamix_manifest.json"
SHA_KEY = "sha256"
# botocore's errors, boto3's wrappers of them, and s3transfer's own (its retry loop gave up)
_TRANSFER_ERRORS = (
    BotoCoreError,
    ClientError,
    Boto3Error,
    RetriesExceededError,
    S3DownloadFailedError,
    S3UploadFailedError,
)
Callback = Callable[[int], None]


@dataclass(frozen=True)
class S3Uri:
    """``s3://bucket/key``; ``key`` may be a prefix (a "directory") or empty."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Uri:
        return S3Uri(self.bucket, f"{self.key.rstrip('/')}/{name}" if self.key else name)


def parse_s3_uri(uri: str) -> S3Uri:
    """Split ``s3://bucket/some/key`` into bucket and key (trailing ``/`` dropped)."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise StorageError(f"{uri!r}: not an S3 URI; expected s3://bucket/key")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or "/" in bucket:
        raise StorageError(f"{uri!r}: no bucket name; expected s3://bucket/key")
    return S3Uri(bucket, key.rstrip("/"))


def sha256_file(path: str | os.PathLike[str], chunk: int = 4 * 1024 * 1024) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def upload_file(
    path: str | os.PathLike[str],
    uri: str,
    *,
    config: StorageConfig | None = None,
    client: Any = None,
    callback: Callback | None = None,
) -> dict[str, Any]:
    """Upload one file (multipart above the threshold); returns ``{uri, size, sha256}``."""
    config = config or StorageConfig()
    src = Path(path)
    if not src.is_file():
        raise StorageError(f"{src}: no such file to upload")
    loc = _object_uri(uri)
    client = client or make_client(config)
    check_bucket(client, loc.bucket, "upload to")
    sha = sha256_file(src)
    extra: dict[str, Any] = {"Metadata": {SHA_KEY: sha}}
    if config.checksum_algorithm:
        extra["ChecksumAlgorithm"] = config.checksum_algorithm
    try:
        client.upload_file(
            str(src),
            loc.bucket,
            loc.key,
            ExtraArgs=extra,
            Config=transfer_config(config),
            Callback=callback,
        )
    except _TRANSFER_ERRORS as exc:
        raise explain(exc, client, action="upload to", bucket=loc.bucket, key=loc.key) from exc
    size = src.stat().st_size
    log.info("uploaded %s -> %s (%d bytes, sha256 %s)", src, loc, size, sha[:12])
    return {"uri": str(loc), "size": size, SHA_KEY: sha}


def download_file(
    uri: str,
    path: str | os.PathLike[str],
    *,
    config: StorageConfig | None = None,
    client: Any = None,
    callback: Callback | None = None,
    expected_sha256: str | None = None,
) -> Path:
    """Download one object to ``path``, atomically, after checking its size and sha256.

    ``expected_sha256`` (from a directory manifest) must agree with the object's metadata;
    an object without a sha256 (not pushed by dynamix) is checked by size only, with a warning.
    """
    config = config or StorageConfig()
    loc = _object_uri(uri)
    client = client or make_client(config)
    head = _head(client, loc)
    size = int(head["ContentLength"])
    stored = head.get("Metadata", {}).get(SHA_KEY)
    if expected_sha256 and stored and expected_sha256 != stored:
        raise StorageError(
            f"download {loc}: its sha256 metadata disagrees with the manifest (the object was "
            "replaced after the push); push the directory again"
        )
    want = expected_sha256 or stored
    extra = {"ChecksumMode": "ENABLED"} if config.checksum_algorithm else None
    target = Path(path)
    with atomic_path(target) as tmp:
        try:
            client.download_file(
                loc.bucket,
                loc.key,
                str(tmp),
                ExtraArgs=extra,
                Config=transfer_config(config),
                Callback=callback,
            )
        except _TRANSFER_ERRORS as exc:
            raise explain(exc, client, action="download", bucket=loc.bucket, key=loc.key) from exc
        got_size = tmp.stat().st_size
        if got_size != size:
            raise StorageError(f"download {loc}: got {got_size} bytes, expected {size}; nothing was kept, run it again")
        if want is None:
            log.warning("%s has no sha256 metadata (not pushed by dynamix): size checked only", loc)
        elif (got := sha256_file(tmp)) != want:
            raise StorageError(
                f"download {loc}: checksum mismatch (sha256 {got[:12]}… != {want[:12]}…); the "
                "object is corrupt or was replaced: nothing was kept, push it again"
            )
    log.info("downloaded %s -> %s (%d bytes)", loc, target, size)
    return target


def upload_dir(
    local_dir: str | os.PathLike[str],
    uri: str,
    *,
    config: StorageConfig | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Upload every file under ``local_dir``, then the manifest that marks the push complete."""
    config = config or StorageConfig()
    root = Path(local_dir)
    if not root.is_dir():
        raise StorageError(f"{root}: no such directory to upload")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    if not files:
        raise StorageError(f"{root}: directory is empty; nothing to upload")
    base = parse_s3_uri(uri)
    client = client or make_client(config)
    check_bucket(client, base.bucket, "upload to")
    manifest_loc = base.child(MANIFEST)
    try:  # mark the prefix incomplete while its files are being replaced
        client.delete_object(Bucket=base.bucket, Key=manifest_loc.key)
    except _TRANSFER_ERRORS as exc:
        raise explain(exc, client, action="upload to", bucket=base.bucket, key=base.key) from exc
    entries = []
    for f in files:
        rel = f.relative_to(root).as_posix()
        info = upload_file(f, str(base.child(rel)), config=config, client=client)
        entries.append({"path": rel, "size": info["size"], SHA_KEY: info[SHA_KEY]})
    manifest = {"files": entries}
    body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    try:
        client.put_object(
            Bucket=base.bucket,
            Key=manifest_loc.key,
            Body=body,
            Metadata={SHA_KEY: hashlib.sha256(body).hexdigest()},
            ContentType="application/json",
        )
    except _TRANSFER_ERRORS as exc:
        raise explain(exc, client, action="upload to", bucket=base.bucket, key=base.key) from exc
    log.info("uploaded %d files from %s -> %s", len(entries), root, base)
    return manifest


def download_dir(
    uri: str,
    local_dir: str | os.PathLike[str],
    *,
    config: StorageConfig | None = None,
    client: Any = None,
    overwrite: bool = False,
) -> Path:
    """Download a directory pushed by :func:`upload_dir`, into place only once complete."""
    config = config or StorageConfig()
    base = parse_s3_uri(uri)
    target = Path(local_dir)
    if target.exists() and not overwrite and any(target.iterdir()):
        raise StorageError(f"{target}: exists and is not empty; pass --overwrite to replace it")
    client = client or make_client(config)
    manifest = read_manifest(client, base)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        for entry in manifest["files"]:
            rel = Path(entry["path"])
            if rel.is_absolute() or ".." in rel.parts:
                raise StorageError(f"{base.child(MANIFEST)}: unsafe path {entry['path']!r}")
            download_file(
                str(base.child(entry["path"])),
                stage / rel,
                config=config,
                client=client,
                expected_sha256=entry[SHA_KEY],
            )
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(stage, target)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    log.info("downloaded %d files %s -> %s", len(manifest["files"]), base, target)
    return target


def is_dir_upload(client: Any, uri: str) -> bool:
    """True when ``uri`` is a prefix holding a complete :func:`upload_dir` push."""
    base = parse_s3_uri(uri)
    try:
        client.head_object(Bucket=base.bucket, Key=base.child(MANIFEST).key)
    except ClientError:
        return False  # a missing bucket or object is reported by the download itself
    except _TRANSFER_ERRORS as exc:
        raise explain(exc, client, action="download", bucket=base.bucket, key=base.key) from exc
    return True


def read_manifest(client: Any, base: S3Uri) -> dict[str, Any]:
    """The manifest of a directory push; its absence means the push never completed."""
    loc = base.child(MANIFEST)
    try:
        body = client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            check_bucket(client, loc.bucket, "download")
            raise StorageError(
                f"download {base}: no {MANIFEST}, so this is not a complete directory push "
                "(missing, or interrupted); push it again with dynamix s3 push"
            ) from exc
        raise explain(exc, client, action="download", bucket=loc.bucket, key=loc.key) from exc
    except _TRANSFER_ERRORS as exc:
        raise explain(exc, client, action="download", bucket=loc.bucket, key=loc.key) from exc
    try:
        manifest = json.loads(body)
        if not isinstance(manifest.get("files"), list):
            raise ValueError("no file list")
    except (ValueError, AttributeError) as exc:
        raise StorageError(f"{loc}: not a valid dynamix manifest; push it again") from exc
    return manifest


def _object_uri(uri: str) -> S3Uri:
    loc = parse_s3_uri(uri)
    if not loc.key:
        raise StorageError(f"{uri!r}: no object key; expected s3://bucket/key")
    return loc


def _head(client: Any, loc: S3Uri) -> dict[str, Any]:
    """HEAD the object; on 404, tell a missing bucket from a missing key."""
    try:
        return client.head_object(Bucket=loc.bucket, Key=loc.key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            check_bucket(client, loc.bucket, "download")
        raise explain(exc, client, action="download", bucket=loc.bucket, key=loc.key) from exc
    except _TRANSFER_ERRORS as exc:
        raise explain(exc, client, action="download", bucket=loc.bucket, key=loc.key) from exc
