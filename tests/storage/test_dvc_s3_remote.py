"""DVC push/pull round trip through an S3 remote on the moto server (real dvc + dvc-s3)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def _run(cwd, *args: str) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_dvc_push_pull_round_trip(tmp_path, s3, bucket, aws_env):
    repo = tmp_path / "repo"
    repo.mkdir()
    dvc = (sys.executable, "-m", "dvc")
    _run(repo, "git", "init", "-q")
    _run(repo, *dvc, "init", "-q")
    data = repo / "data" / "raw"
    (data / "market-syn").mkdir(parents=True)
    files = {
        "market-syn/0001_c1s1_000001_00.jpg": os.urandom(2048),
        "market-syn/0002_c2s1_000001_00.jpg": os.urandom(4096),
        "world.json": b'{"preset": "tiny"}',
    }
    for rel, payload in files.items():
        (data / rel).write_bytes(payload)
    _run(repo, *dvc, "add", "-q", "data/raw")
    _run(repo, *dvc, "remote", "add", "-d", "storage", f"s3://{bucket}/dvc")
    _run(repo, *dvc, "remote", "modify", "storage", "endpointurl", aws_env)
    _run(repo, *dvc, "push", "-q")

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="dvc/")["Contents"]]
    assert len(keys) == len(files) + 1  # one object per file plus the directory listing
    assert all(k.startswith("dvc/files/md5/") for k in keys)

    shutil.rmtree(data)
    shutil.rmtree(repo / ".dvc" / "cache")
    _run(repo, *dvc, "pull", "-q")
    for rel, payload in files.items():
        assert (data / rel).read_bytes() == payload
