"""Verified uploads and downloads against a real S3 protocol server (moto, loopback)."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from dynamix.config import StorageConfig
from dynamix.storage.client import StorageError, explain, make_client
from dynamix.storage.s3 import (
    MANIFEST,
    download_dir,
    download_file,
    parse_s3_uri,
    upload_dir,
    upload_file,
)

MiB = 1024 * 1024


def _random_file(path: Path, size: int, seed: int = 0) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def test_parse_s3_uri():
    assert parse_s3_uri("s3://bkt/a/b.pt") == parse_s3_uri("s3://bkt/a/b.pt/")
    uri = parse_s3_uri("s3://bkt/a/b.pt")
    assert (uri.bucket, uri.key, str(uri.child("x"))) == ("bkt", "a/b.pt", "s3://bkt/a/b.pt/x")
    assert parse_s3_uri("s3://bkt").key == ""
    for bad in ("bkt/key", "s3:///key", "/tmp/x"):
        with pytest.raises(StorageError, match="s3://bucket/key"):
            parse_s3_uri(bad)


def test_small_file_round_trip_with_sha256_metadata(tmp_path, s3, bucket, storage):
    data = _random_file(tmp_path / "w.pt", 1000)
    info = upload_file(tmp_path / "w.pt", f"s3://{bucket}/ck/w.pt", config=storage)
    assert info == {"uri": f"s3://{bucket}/ck/w.pt", "size": 1000, "sha256": hashlib.sha256(data).hexdigest()}
    head = s3.head_object(Bucket=bucket, Key="ck/w.pt", ChecksumMode="ENABLED")
    assert head["Metadata"]["sha256"] == info["sha256"]
    assert head["ChecksumSHA256"]  # the server checked the part checksum on arrival
    out = download_file(f"s3://{bucket}/ck/w.pt", tmp_path / "dl" / "w.pt", config=storage)
    assert out.read_bytes() == data
    assert sorted(os.listdir(tmp_path / "dl")) == ["w.pt"]  # no temp file left beside it


def test_multipart_round_trip(tmp_path, s3, bucket, storage):
    data = _random_file(tmp_path / "big.bin", 11 * MiB)
    upload_file(tmp_path / "big.bin", f"s3://{bucket}/big.bin", config=storage)
    etag = s3.head_object(Bucket=bucket, Key="big.bin")["ETag"]
    assert etag.endswith('-3"'), etag  # three parts of 5 + 5 + 1 MiB
    out = download_file(f"s3://{bucket}/big.bin", tmp_path / "back.bin", config=storage)
    assert out.read_bytes() == data


def test_corrupted_object_is_rejected_and_nothing_kept(tmp_path, s3, bucket, storage):
    _random_file(tmp_path / "w.pt", 5000)
    info = upload_file(tmp_path / "w.pt", f"s3://{bucket}/w.pt", config=storage)
    # same key, same claimed sha256, other bytes: what a bit flip at rest looks like
    s3.put_object(Bucket=bucket, Key="w.pt", Body=b"x" * 5000, Metadata={"sha256": info["sha256"]})
    dest = tmp_path / "dl" / "w.pt"
    dest.parent.mkdir()
    with pytest.raises(StorageError, match=r"checksum mismatch .*nothing was kept"):
        download_file(f"s3://{bucket}/w.pt", dest, config=storage)
    assert os.listdir(dest.parent) == []


def test_existing_file_survives_a_failed_download(tmp_path, s3, bucket, storage):
    dest = tmp_path / "w.pt"
    dest.write_bytes(b"previous good checkpoint")
    s3.put_object(Bucket=bucket, Key="w.pt", Body=b"new", Metadata={"sha256": "0" * 64})
    with pytest.raises(StorageError, match="checksum mismatch"):
        download_file(f"s3://{bucket}/w.pt", dest, config=storage)
    assert dest.read_bytes() == b"previous good checkpoint"


def test_missing_bucket_is_one_clear_line(tmp_path, storage):
    (tmp_path / "f").write_bytes(b"1")
    with pytest.raises(StorageError) as up:
        upload_file(tmp_path / "f", "s3://no-such-bucket-x/f", config=storage)
    with pytest.raises(StorageError) as down:
        download_file("s3://no-such-bucket-x/f", tmp_path / "g", config=storage)
    for exc in (up, down):
        msg = str(exc.value)
        assert "s3://no-such-bucket-x: bucket does not exist at http://127.0.0.1:" in msg
        assert "create it" in msg and "\n" not in msg
    assert not (tmp_path / "g").exists()


def test_missing_key_is_one_clear_line(tmp_path, bucket, storage):
    with pytest.raises(StorageError, match=rf"download s3://{bucket}/nope.pt: no such object"):
        download_file(f"s3://{bucket}/nope.pt", tmp_path / "x", config=storage)


def test_missing_credentials_is_one_clear_line(tmp_path, bucket, storage, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (tmp_path / "f").write_bytes(b"1")
    with pytest.raises(StorageError) as exc:
        upload_file(tmp_path / "f", f"s3://{bucket}/f", config=storage)
    msg = str(exc.value)
    assert msg.startswith(f"upload to s3://{bucket}: no AWS credentials found")
    assert "AWS_ACCESS_KEY_ID" in msg and "never put them in params.yaml" in msg


def test_unreachable_endpoint_names_it(tmp_path, aws_env):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = StorageConfig(endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1)
    with pytest.raises(StorageError, match=rf"cannot reach the S3 endpoint .*:{port}"):
        download_file("s3://bkt/x", tmp_path / "x", config=config)


def test_access_denied_and_bad_keys_are_explained(aws_env):
    client = make_client(StorageConfig())

    def err(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")

    denied = explain(err("AccessDenied"), client, action="download", bucket="b", key="k")
    assert str(denied).startswith("download s3://b/k: access denied; give these credentials")
    bad = explain(err("InvalidAccessKeyId"), client, action="download", bucket="b", key="k")
    assert "rejected the AWS credentials (InvalidAccessKeyId)" in str(bad)


def test_bad_retry_mode_names_the_key():
    with pytest.raises(StorageError, match=r"storage\.retry_mode 'often'"):
        make_client(StorageConfig(retry_mode="often"))


def test_directory_round_trip_with_manifest(tmp_path, s3, bucket, storage):
    src = tmp_path / "run"
    files = {"last.pt": 3000, "best.pt": 2000, "logs/log.jsonl": 100}
    data = {rel: _random_file(src / rel, n, seed=i) for i, (rel, n) in enumerate(files.items())}
    manifest = upload_dir(src, f"s3://{bucket}/runs/r1", config=storage)
    assert [e["path"] for e in manifest["files"]] == sorted(files)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {f"runs/r1/{rel}" for rel in files} | {f"runs/r1/{MANIFEST}"}

    out = download_dir(f"s3://{bucket}/runs/r1", tmp_path / "back" / "r1", config=storage)
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == data
    assert os.listdir(tmp_path / "back") == ["r1"]  # the staging folder is gone
    with pytest.raises(StorageError, match="not empty; pass --overwrite"):
        download_dir(f"s3://{bucket}/runs/r1", out, config=storage)
    (out / "stale.txt").write_text("old")
    download_dir(f"s3://{bucket}/runs/r1", out, config=storage, overwrite=True)
    assert not (out / "stale.txt").exists()


def test_directory_without_manifest_is_never_downloaded(tmp_path, s3, bucket, storage):
    """A push interrupted before its manifest leaves files that must not pass as complete."""
    s3.put_object(Bucket=bucket, Key="runs/half/last.pt", Body=b"partial run")
    with pytest.raises(StorageError, match="not a complete directory push"):
        download_dir(f"s3://{bucket}/runs/half", tmp_path / "half", config=storage)
    assert not (tmp_path / "half").exists()
    assert os.listdir(tmp_path) == []


def test_repush_removes_the_manifest_first(tmp_path, s3, bucket, storage):
    src = tmp_path / "run"
    _random_file(src / "a.pt", 10)
    upload_dir(src, f"s3://{bucket}/r", config=storage)
    (src / "a.pt").unlink()  # the second push fails: nothing to upload
    with pytest.raises(StorageError, match="directory is empty"):
        upload_dir(src, f"s3://{bucket}/r", config=storage)
    s3.head_object(Bucket=bucket, Key=f"r/{MANIFEST}")  # a failed check deletes nothing


def test_boto3_is_imported_only_by_the_storage_adapter():
    """The ML core stays free of cloud SDKs: boto3 lives in dynamix/storage alone."""
    core = Path(__file__).resolve().parents[2] / "dynamix"
    offenders = [
        str(p.relative_to(core))
        for p in core.rglob("*.py")
        if "storage" not in p.relative_to(core).parts
        and any(
            line.lstrip().startswith((f"import {m}", f"from {m}"))
            for line in p.read_text().splitlines()
            for m in ("boto3", "botocore", "s3transfer")
        )
    ]
    assert offenders == []
