"""The repo's real dvc.yaml, run by the real ``dvc repro`` on the tiny world: every stage
(Great Expectations gate, training, MLflow tracking on a sqlite store, promotion) runs once;
a rerun with unchanged inputs is a DVC no-op and logs nothing more to MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from tiny_pipeline import repro, sh

from dynamix.io import file_sha256

REPO = Path(__file__).resolve().parents[2]
STAGES = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])


@pytest.fixture(scope="module")
def client(tiny_dvc_repo) -> MlflowClient:
    return MlflowClient(tracking_uri=tiny_dvc_repo.repo.store)


def runs(client: MlflowClient) -> list:
    experiments = client.search_experiments()
    return client.search_runs([e.experiment_id for e in experiments])


def test_the_first_repro_runs_every_stage(tiny_dvc_repo, client):
    repo, output = tiny_dvc_repo.repo, tiny_dvc_repo.output
    print(f"first dvc repro: {tiny_dvc_repo.seconds:.0f} s")
    assert STAGES == ["prepare", "validate", "baseline", "train", "track", "promote"]
    for stage in STAGES:
        assert f"Running stage '{stage}'" in output, output
    lock = yaml.safe_load(repo.path("dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)

    assert repo.json("metrics/validation.json")["success"] is True
    train = repo.json("metrics/train.json")
    assert train["step"] == 6 and train["relabel_rounds"] == 3  # the pinned tiny recipe
    assert set(train["targets"]) == {"market-syn", "night-syn"}
    for metrics in train["targets"].values():
        assert 0.0 <= metrics["mAP"] <= 1.0 and 0.0 <= metrics["rank1"] <= 1.0
    assert [e["step"] for e in repo.events("relabel")] == [2, 4, 6]
    for name in ("steps.csv", "eval.csv", "relabel.csv"):
        assert repo.path(f"reports/train/{name}").is_file(), name

    promotion = repo.json("metrics/promotion.json")
    tracking = repo.json("metrics/tracking.json")
    assert isinstance(promotion["promoted"], bool)
    assert promotion["reason"].startswith("accepted" if promotion["promoted"] else "rejected")
    assert promotion["run_id"] == tracking["run_id"] and promotion["version"] == 1
    assert tracking["best_sha256"] == file_sha256(repo.path("runs/train/best.pt"))  # promote checked it

    (run,) = runs(client)  # the one MLflow run, in the repo's own sqlite store
    assert run.info.run_id == tracking["run_id"]
    assert tracking["tracking_uri"] == repo.store
    data_md5 = yaml.safe_load(repo.path("data.dvc").read_text())["outs"][0]["md5"]
    assert run.data.tags["dvc.data_md5"] == data_md5  # data.dvc, the repo's layout
    assert run.data.tags["dynamix.preset"] == "tiny"
    assert run.data.params["train.iters"] == "6"
    (version,) = client.search_model_versions("name='dynamix-reid'")
    assert version.run_id == run.info.run_id and str(version.version) == "1"
    assert version.tags["promotion"] == ("accepted" if promotion["promoted"] else "rejected")
    aliases = {k: str(v) for k, v in client.get_registered_model("dynamix-reid").aliases.items()}
    assert aliases == ({"champion": "1"} if promotion["promoted"] else {})


def test_a_rerun_with_unchanged_inputs_is_a_noop(tiny_dvc_repo, client):
    repo = tiny_dvc_repo.repo
    before = {
        rel: repo.path(rel).read_bytes()
        for rel in (
            "dvc.lock",
            "metrics/train.json",
            "metrics/tracking.json",
            "metrics/promotion.json",
        )
    }
    output = repro(repo)
    assert "Running stage" not in output, output
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in output, output
    assert "Data and pipelines are up to date." in output
    status = sh(repo.root, "dvc", "status").stdout
    assert status.strip() == "Data and pipelines are up to date.", status
    assert {rel: repo.path(rel).read_bytes() for rel in before} == before
    assert len(runs(client)) == 1
    assert len(client.search_model_versions("name='dynamix-reid'")) == 1
