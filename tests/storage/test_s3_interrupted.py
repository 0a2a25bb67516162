"""Interrupted transfers: nothing partial is ever kept, a retry completes.

Downloads go through :class:`FlakyProxy`, a loopback proxy that cuts the connection in the
middle of a response body, as a dropped link or a dying server would.
"""

from __future__ import annotations

import dataclasses
import os
import random
from urllib.parse import urlparse

import pytest
from flaky_proxy import FlakyProxy

from dynamix.storage.client import StorageError
from dynamix.storage.s3 import download_file, upload_file

MiB = 1024 * 1024


class Stop(Exception):
    """Raised from a progress callback: the user or the scheduler stops the transfer."""


def stop_after(limit: int):
    seen = 0

    def callback(n: int) -> None:
        nonlocal seen
        seen += n
        if seen > limit:
            raise Stop(f"stopped after {seen} bytes")

    return callback


@pytest.fixture
def big_object(tmp_path, bucket, storage):
    data = random.Random(1).randbytes(11 * MiB)
    (tmp_path / "src.bin").write_bytes(data)
    upload_file(tmp_path / "src.bin", f"s3://{bucket}/big.bin", config=storage)
    return f"s3://{bucket}/big.bin", data


@pytest.fixture
def proxy(moto_endpoint):
    url = urlparse(moto_endpoint)
    p = FlakyProxy(url.hostname, url.port)
    yield p
    p.close()


def test_dropped_connection_mid_body_is_retried(tmp_path, big_object, storage, proxy):
    uri, data = big_object
    proxy.arm(3 * MiB)  # one cut, then the link is fine again
    config = dataclasses.replace(storage, endpoint_url=proxy.endpoint)
    out = download_file(uri, tmp_path / "dl" / "big.bin", config=config)
    assert proxy.cuts == 1
    assert out.read_bytes() == data


def test_server_dies_mid_download_then_retry_completes(tmp_path, big_object, storage, proxy):
    uri, data = big_object
    dest = tmp_path / "dl" / "big.bin"
    dest.parent.mkdir()
    config = dataclasses.replace(storage, endpoint_url=proxy.endpoint)
    proxy.arm(3 * MiB, stay_down=True)
    with pytest.raises(StorageError) as exc:
        download_file(uri, dest, config=config)
    assert proxy.cuts == 1
    assert str(exc.value).startswith(f"download {uri}: ")
    assert "\n" not in str(exc.value)
    assert os.listdir(dest.parent) == []  # no partial file, under any name

    proxy.restore()  # the server is back: the same call now completes
    assert download_file(uri, dest, config=config).read_bytes() == data
    assert os.listdir(dest.parent) == ["big.bin"]


def test_stopped_download_keeps_nothing_and_old_file_survives(tmp_path, big_object, storage):
    uri, data = big_object
    dest = tmp_path / "dl" / "big.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"previous version")
    with pytest.raises(Stop):
        download_file(uri, dest, config=storage, callback=stop_after(4 * MiB))
    assert os.listdir(dest.parent) == ["big.bin"]
    assert dest.read_bytes() == b"previous version"
    assert download_file(uri, dest, config=storage).read_bytes() == data


def test_stopped_multipart_upload_leaves_no_object(tmp_path, s3, bucket, storage):
    src = tmp_path / "big.bin"
    data = random.Random(2).randbytes(11 * MiB)
    src.write_bytes(data)
    uri = f"s3://{bucket}/ck/big.bin"
    with pytest.raises(Stop):
        upload_file(src, uri, config=storage, callback=stop_after(6 * MiB))
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)  # no object under the key
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)  # the upload was aborted

    upload_file(src, uri, config=storage)
    assert download_file(uri, tmp_path / "back.bin", config=storage).read_bytes() == data
