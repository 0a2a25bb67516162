"""A real S3 protocol server on loopback (moto in server mode) and fake AWS credentials.

One moto server serves the whole session; every test gets its own bucket, and the AWS_*
variables point boto3, DVC (s3fs) and MLflow at the server with throwaway keys. The
instance-metadata lookup is switched off so a missing-credentials test never leaves
the machine.
"""

from __future__ import annotations

import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer

from dynamix.config import StorageConfig


@pytest.fixture(scope="session")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint, monkeypatch, tmp_path):
    """Fake credentials for the moto server; nothing from the user's ~/.aws is read."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return moto_endpoint


@pytest.fixture
def s3(aws_env):
    """A plain boto3 client on the moto server, for arranging and inspecting buckets."""
    return boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")


@pytest.fixture
def bucket(s3):
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def storage(aws_env):
    """Small parts (5 MiB, the S3 minimum) so an 11 MiB file goes up and down in 3 parts."""
    return StorageConfig(
        endpoint_url=aws_env,
        region="us-east-1",
        max_attempts=2,
        multipart_threshold_mb=5,
        multipart_chunk_mb=5,
        max_concurrency=2,
    )
