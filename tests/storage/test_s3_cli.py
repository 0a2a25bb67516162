"""``dynamix s3 push|pull`` end to end on the moto server, through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path

from dynamix.cli import main

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, endpoint: str, bucket: str) -> int:
    return main(
        [
            *args,
            "--params",
            str(REPO / "params.yaml"),
            "--set",
            f"storage.endpoint_url={endpoint}",
            "--set",
            f"storage.checkpoints_uri=s3://{bucket}/runs",
            "--set",
            f"storage.snapshots_uri=s3://{bucket}/snapshots",
        ]
    )


def test_push_pull_directory_by_name(tmp_path, s3, bucket, aws_env, capsys):
    run = tmp_path / "train"
    (run / "sub").mkdir(parents=True)
    (run / "last.pt").write_bytes(b"weights" * 100)
    (run / "sub" / "metrics.json").write_text('{"mAP": 0.1}')
    assert _cli("s3", "push", str(run), endpoint=aws_env, bucket=bucket) == 0
    assert f"-> s3://{bucket}/runs/train" in capsys.readouterr().out
    assert _cli("s3", "pull", "train", str(tmp_path / "back"), endpoint=aws_env, bucket=bucket) == 0
    assert (tmp_path / "back" / "last.pt").read_bytes() == b"weights" * 100
    assert (tmp_path / "back" / "sub" / "metrics.json").read_text() == '{"mAP": 0.1}'


def test_push_pull_single_snapshot_file(tmp_path, bucket, aws_env):
    (tmp_path / "world.tar").write_bytes(b"snapshot bytes")
    args = dict(endpoint=aws_env, bucket=bucket)
    assert _cli("s3", "push", str(tmp_path / "world.tar"), "--kind", "snapshots", **args) == 0
    uri = f"s3://{bucket}/snapshots/world.tar"
    assert _cli("s3", "pull", uri, str(tmp_path / "w.tar"), **args) == 0
    assert (tmp_path / "w.tar").read_bytes() == b"snapshot bytes"
    assert _cli("s3", "pull", uri, str(tmp_path / "w.tar"), **args) == 2  # exists: no overwrite


def test_missing_bucket_exits_2_with_one_line(tmp_path, aws_env, capsys):
    (tmp_path / "f.pt").write_bytes(b"1")
    code = _cli("s3", "push", str(tmp_path / "f.pt"), endpoint=aws_env, bucket="no-such-bkt")
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("dynamix s3: error: upload to s3://no-such-bkt: bucket does not exist")
    assert "\n" not in err


def test_pull_without_credentials_exits_2_with_one_line(tmp_path, bucket, aws_env, monkeypatch, capsys):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code = _cli("s3", "pull", "train", str(tmp_path / "t"), endpoint=aws_env, bucket=bucket)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"dynamix s3: error: download s3://{bucket}/runs/train: no AWS credentials")
    assert "\n" not in err


def test_endpoint_without_scheme_is_explained(tmp_path, bucket, aws_env, capsys):
    code = _cli("s3", "pull", "train", str(tmp_path / "t"), endpoint="minio:9000", bucket=bucket)
    assert code == 2
    assert "storage.endpoint_url / AWS_ENDPOINT_URL to a full URL" in capsys.readouterr().err
