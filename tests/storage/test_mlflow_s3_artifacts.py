"""MLflow run artifacts stored in S3 (moto server), with a real sqlite tracking store."""

from __future__ import annotations

import os


def test_mlflow_logs_artifacts_to_s3(tmp_path, s3, bucket, aws_env, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", aws_env)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("dynamix-s3", artifact_location=f"s3://{bucket}/mlflow/exp")
    run = client.create_run(exp)
    payload = os.urandom(3000)
    (tmp_path / "metrics.json").write_text('{"mAP": 0.12}')
    (tmp_path / "best.pt").write_bytes(payload)
    client.log_artifact(run.info.run_id, str(tmp_path / "metrics.json"))
    client.log_artifact(run.info.run_id, str(tmp_path / "best.pt"), artifact_path="checkpoints")
    client.set_terminated(run.info.run_id)

    assert run.info.artifact_uri == f"s3://{bucket}/mlflow/exp/{run.info.run_id}/artifacts"
    prefix = f"mlflow/exp/{run.info.run_id}/artifacts/"
    body = s3.get_object(Bucket=bucket, Key=prefix + "checkpoints/best.pt")["Body"].read()
    assert body == payload
    assert s3.get_object(Bucket=bucket, Key=prefix + "metrics.json")["Body"].read() == (b'{"mAP": 0.12}')
    back = client.download_artifacts(run.info.run_id, "checkpoints/best.pt", str(tmp_path / "dl"))
    assert open(back, "rb").read() == payload
