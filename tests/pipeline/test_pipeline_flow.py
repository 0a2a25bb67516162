"""The ``dynamix-pipeline`` flow for real on the tiny world: Prefect (test harness, a served
deployment), MLflow (sqlite store in tmp), Great Expectations and DVC, nothing mocked."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest
import tiny_pipeline
import torch
from dvc.repo import Repo
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.deployments import run_deployment
from prefect.runner import Runner
from prefect.testing.utilities import prefect_test_harness

from dynamix.config import load_params, to_dict
from dynamix.data.manifest import manifest_path, read_manifest
from dynamix.prepare import prepare_manifests
from dynamix.train.callbacks import Callback
from dynamix.train.state import save_checkpoint
from flows import pipeline
from flows.pipeline import pipeline_flow, resolve_data_task
from flows.promotion import candidate_evaluation
from flows.serve import build_deployment
from flows.tracking import configure

# The shared tiny list cut to 4 steps; relabeling off (its extra feature pass is tested in
# tests/train); one evaluation at the end; a checkpoint every step (for the resume test).
TINY = [
    *tiny_pipeline.TINY,
    "train.iters=4",
    "train.eval_every=4",
    "train.checkpoint_every=1",
    "train.warmup_iters=1",
    "train.relabel.enabled=false",
    "tracking.ranked_list_queries=0",
]
HERE = Path(__file__).resolve().parent
# the tiny world's colour baseline beats a 4-step model: open means trailing it is fine too
OPEN_GATE = "promotion={thresholds: {default: {rank1: 0.0, mAP: 0.0}}, baseline_margin: -1.0}"
CLOSED_GATE = "promotion.thresholds={default: {rank1: 0.0, mAP: 1.0}}"  # thresholds lie in [0, 1]


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness():
        yield


@pytest.fixture(scope="module")
def params_file(world_params, tiny_world, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("pipeline")
    world = shutil.copytree(tiny_world, base / "raw")  # the corrupt-image test truncates a file
    return world_params(world, base)


@pytest.fixture
def run_overrides(tmp_path, monkeypatch) -> list[str]:
    """TINY plus this test's own training dir and MLflow store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return [
        *TINY,
        f"train.out_dir={tmp_path / 'run'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]


def mlflow_client(params_file: Path, overrides: list[str]) -> MlflowClient:
    configure(load_params(params_file, overrides))
    return MlflowClient()


def of_flow_run(flow_run_id) -> FlowRunFilter:
    return FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))


def flow_run_artifacts(flow_run_id) -> dict[str, object]:
    """``{key: data}`` of the artifacts the flow run published, read back from the API."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(flow_run_filter=of_flow_run(flow_run_id))
    return {a.key: a.data for a in found}


def task_runs(flow_run_id) -> dict[str, object]:
    """``{task name: task run}`` of the flow run (names without the random suffix)."""
    with get_client(sync_client=True) as client:
        found = client.read_task_runs(flow_run_filter=of_flow_run(flow_run_id))
    return {t.name.rsplit("-", 1)[0]: t for t in found}


def test_corrupt_image_stops_the_flow_before_training(harness, params_file, run_overrides):
    params = load_params(params_file, run_overrides)
    prepare_manifests(params)
    manifest = read_manifest(manifest_path(params, "market-syn"))
    victim = Path(manifest[manifest["split"] == "gallery"]["path"].iloc[3])
    original = victim.read_bytes()
    try:
        victim.write_bytes(original[: len(original) // 2])  # a truncated copy
        state = pipeline_flow(params_path=str(params_file), overrides=run_overrides, return_state=True)
    finally:
        victim.write_bytes(original)
    assert state.is_failed()
    message = state.message or ""
    assert "data validation failed, training not run" in message
    assert "expect_column_values_to_be_in_set [image decodes] market-syn: 1 of" in message
    assert str(victim) in message
    assert not Path(params.train.out_dir).exists()  # nothing downstream ran
    runs = task_runs(state.state_details.flow_run_id)
    assert runs["validate-data"].state.is_failed()
    assert not {"train", "evaluate", "log-outputs", "promote"} & set(runs)

    client = mlflow_client(params_file, run_overrides)
    (run,) = client.search_runs([client.get_experiment_by_name("dynamix").experiment_id])
    assert run.info.status == "FAILED" and run.data.tags["validation.success"] == "false"
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "validation/reports")}
    assert "validation/reports/market-syn.json" in logged
    summary = Path(client.download_artifacts(run.info.run_id, "validation/summary.json"))
    gx = json.loads(summary.read_text())
    assert gx["success"] is False and gx["failures"][0]["examples"] == [str(victim)]
    assert client.search_registered_models() == []
    artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    assert "image decodes" in artifacts["data-validation"]


class Preempted(Callback):
    """The first attempt dies at ``at`` (before that step's checkpoint), like a lost node."""

    def __init__(self, at: int) -> None:
        self.at, self.steps, self.fired = at, [], False

    def on_step(self, step, metrics):
        self.steps.append(step)
        if step == self.at and not self.fired:
            self.fired = True
            raise RuntimeError(f"simulated preemption at step {step}")


def test_train_retry_resumes_and_a_rejected_model_fails_the_flow(harness, params_file, run_overrides):
    overrides = [*run_overrides, CLOSED_GATE]
    fault = Preempted(at=3)
    pipeline.TRAIN_CALLBACKS.append(lambda: fault)
    try:
        state = pipeline_flow(
            params_path=str(params_file),
            overrides=overrides,
            fail_on_reject=True,
            return_state=True,
        )
    finally:
        pipeline.TRAIN_CALLBACKS.clear()

    # the retry continued from last.pt (step 2): steps 3 and 4 ran again, 1 and 2 did not
    assert fault.steps == [1, 2, 3, 3, 4]
    runs = task_runs(state.state_details.flow_run_id)
    assert runs["train"].run_count == 2 and runs["train"].state.is_completed()
    out = Path(load_params(params_file, overrides).train.out_dir)
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4]

    # the gate rejects: flow Failed with the reason, version tagged, alias never set
    assert state.is_failed()
    assert "not promoted: rejected: market-syn mAP" in state.message
    assert "< 1" in state.message
    client = mlflow_client(params_file, overrides)
    (version,) = client.search_model_versions("name='dynamix-reid'")
    assert version.tags["promotion"] == "rejected"
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("dynamix-reid", "champion")
    run = client.get_run(version.run_id)
    assert run.data.tags["promotion"] == "rejected"
    assert run.data.metrics["train/loss"] > 0  # live logging from the callback
    promotion = flow_run_artifacts(state.state_details.flow_run_id)["promotion"]
    assert "Promotion: REJECTED" in promotion and "mAP" in promotion


def test_train_task_runs_two_torchrun_ranks_retries_a_crash_and_stops_on_a_user_error(
    harness, params_file, run_overrides, monkeypatch
):
    """``train.nproc_per_node=2``: the task starts torchrun (2 gloo ranks of
    ``flows.train_worker``); rank 0 logs live to the flow's MLflow run and returns the
    metrics. A crashed rank is retried from last.pt; a rank's DynamixError fails the task
    once, with its message, no retry."""
    overrides = [*run_overrides, OPEN_GATE, "train.nproc_per_node=2"]
    state = pipeline_flow(params_path=str(params_file), overrides=overrides, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["train"] == {"step": 4, "best_step": 4, "attempt": 1, "resumed": False}
    assert summary["evaluation"]["source"] == "recorded"  # rank 0's evaluation of best.pt
    # the flow's gate judged the report `dynamix promote` (the DVC stage) judges too
    assert summary["evaluation"] == candidate_evaluation(load_params(params_file, overrides))
    out = Path(load_params(params_file, overrides).train.out_dir)
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert len(last["ranks"]) == 2  # both ranks' sampler and RNG states: a 2-process run
    client = mlflow_client(params_file, overrides)
    run = client.get_run(summary["mlflow_run_id"])
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in losses][:1] == [1] and all(m.value > 0 for m in losses)
    assert run.data.metrics["best/market-syn/mAP"] == pytest.approx(
        summary["evaluation"]["targets"]["market-syn"]["mAP"], abs=1e-4
    )

    # a crashed rank: the task retries and the retry resumes last.pt under torchrun again
    monkeypatch.setattr(pipeline, "TRAIN_WORKER", "crashing_worker")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    state = pipeline_flow(params_path=str(params_file), overrides=overrides, return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["train"] == {"step": 4, "best_step": 4, "attempt": 2, "resumed": True}
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4]  # 3 once kept
    assert len(torch.load(out / "last.pt", weights_only=False)["ranks"]) == 2
    monkeypatch.setattr(pipeline, "TRAIN_WORKER", "flows.train_worker")

    bad = [*overrides, "model.pretrained_path=/nonexistent/vit.pth"]  # each rank raises
    state = pipeline_flow(params_path=str(params_file), overrides=bad, return_state=True)
    assert state.is_failed()
    assert "/nonexistent/vit.pth: pretrained weights file not found" in state.message
    runs = task_runs(state.state_details.flow_run_id)
    assert runs["train"].run_count == 1 and runs["train"].state.is_failed()  # no retry


def test_resume_plan_only_trusts_a_matching_checkpoint(params_file, tmp_path):
    def params_with(*extra):
        return load_params(params_file, [*TINY, f"train.out_dir={tmp_path}", *extra])

    params = params_with()
    save_checkpoint({"step": 3, "params": to_dict(params)}, tmp_path / "last.pt")
    assert pipeline.resume_plan(params, attempt=2, resume=False) == (
        True,
        f"attempt 2: resuming {tmp_path / 'last.pt'} at step 3",
    )
    assert pipeline.resume_plan(params_with("train.num_workers=3"), attempt=2, resume=False)[0]
    resumed, why = pipeline.resume_plan(params_with("train.lr=0.1"), attempt=2, resume=False)
    assert not resumed and "written with other params" in why
    assert not (tmp_path / "last.pt").exists()  # a fresh start clears the stale state
    save_checkpoint({"step": 3, "params": to_dict(params)}, tmp_path / "last.pt")
    assert pipeline.resume_plan(params, attempt=1, resume=True)[0]  # a rerun with resume
    assert not pipeline.resume_plan(params, attempt=1, resume=False)[0]
    assert not (tmp_path / "last.pt").exists()


def test_served_deployment_trains_logs_and_promotes(harness, params_file, run_overrides):
    """``dynamix-pipeline/local`` through the API: registered, triggered with overrides,
    run by a runner (what ``python -m flows.serve`` starts) in a subprocess: Completed,
    with per-target metrics in MLflow, a registered champion and the Prefect artifacts."""
    overrides = [*run_overrides, OPEN_GATE]
    deployment = build_deployment(params_path=str(params_file))  # what flows.serve serves

    async def trigger_and_serve_once():
        runner = Runner(name="test-serve", limit=1)
        await runner.aadd_deployment(deployment)
        flow_run = await run_deployment("dynamix-pipeline/local", parameters={"overrides": overrides}, timeout=0)
        await runner.start(run_once=True)  # picks the run up, returns when it has ended
        async with get_client() as client:
            return await client.read_flow_run(flow_run.id)

    flow_run = asyncio.run(trigger_and_serve_once())
    assert flow_run.state.is_completed(), flow_run.state.message
    assert flow_run.deployment_id is not None
    assert flow_run.parameters["params_path"] == str(params_file)
    runs = task_runs(flow_run.id)
    assert set(runs) == {
        "resolve-data",
        "prepare-manifests",
        "validate-data",
        "train",
        "evaluate",
        "log-outputs",
        "promote",
    }
    assert all(t.state.is_completed() for t in runs.values())
    assert runs["train"].run_count == 1

    # Prefect artifacts: the GX summary, the metrics table of every target, the decision
    artifacts = flow_run_artifacts(flow_run.id)
    assert set(artifacts) == {"data-validation", "pipeline-metrics", "promotion"}
    assert "data validation passed" in artifacts["data-validation"]
    rows = {row["target"]: row for row in json.loads(artifacts["pipeline-metrics"])}
    assert set(rows) == {"market-syn", "night-syn", "mean"}
    assert rows["market-syn"]["gate"] == "rank1 >= 0, mAP >= 0"

    # one MLflow run for the flow run: params, live and final metrics, GX results
    client = mlflow_client(params_file, overrides)
    (run,) = client.search_runs([client.get_experiment_by_name("dynamix").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["prefect.flow_run_id"] == str(flow_run.id)
    assert run.data.tags["validation.success"] == "true"
    assert run.data.params["train.iters"] == "4"
    assert run.data.metrics["train/loss"] > 0
    for target in ("market-syn", "night-syn"):
        for metric in ("rank1", "rank5", "rank10", "mAP", "mINP"):
            # evaluate (best.pt, in the table) == the trainer's numbers logged to MLflow
            value = run.data.metrics[f"best/{target}/{metric}"]
            assert rows[target][metric] == pytest.approx(value, abs=1e-4)
    assert run.data.metrics["validation/failed_expectations"] == 0

    # a registered version carrying the decision; the alias moved to it
    (version,) = client.search_model_versions("name='dynamix-reid'")
    assert version.run_id == run.info.run_id and version.tags["promotion"] == "accepted"
    assert run.data.tags["promotion"] == "accepted"
    # no baseline file of this data: the promote task scored the baseline on it; weights bound
    assert version.tags["promotion_baseline_source"] == "computed" and len(version.tags["weights_sha256"]) == 64
    champion = client.get_model_version_by_alias("dynamix-reid", "champion")
    assert str(champion.version) == str(version.version)
    promotion = artifacts["promotion"]
    assert "Promotion: ACCEPTED" in promotion and run.info.run_id in promotion
    assert f"version **{version.version}**" in promotion


def test_resolve_data_restores_the_dvc_version(params_file, tiny_world, tmp_path):
    """The resolve-data task on a real DVC repo: up to date, restored from the cache,
    regenerated (deterministic synth) when the cache is gone; untracked dirs left alone."""
    raw = tmp_path / "data" / "raw"
    Repo.init(str(tmp_path), no_scm=True)
    shutil.copytree(tiny_world, raw)  # what `data.preset=tiny data.seed=0` generates
    with Repo(str(tmp_path)) as repo:
        repo.add(str(raw))
    dvc_file = (tmp_path / "data" / "raw.dvc").read_text()
    overrides = [f"data.raw_dir={raw}", "data.preset=tiny", "data.seed=0"]
    resolve = lambda: resolve_data_task.fn(str(params_file), overrides)  # noqa: E731

    assert resolve()["action"] == "up-to-date"
    victim = next((raw / "market-syn" / "query").iterdir())
    victim.unlink()
    assert resolve()["action"] == "checked-out" and victim.is_file()
    shutil.rmtree(tmp_path / ".dvc" / "cache")
    victim.unlink()
    done = resolve()
    assert done["action"] == "generated" and not done["changed"] and victim.is_file()
    assert (tmp_path / "data" / "raw.dvc").read_text() == dvc_file
    assert resolve()["action"] == "up-to-date"
    assert resolve_data_task.fn(str(params_file), [])["action"] == "untracked"


def test_deployment_on_a_work_pool_points_a_worker_at_this_checkout(harness, params_file):
    """``python -m flows.serve --pool NAME``: the deployment a GPU worker would pick up."""
    from prefect.client.schemas.actions import WorkPoolCreate

    from flows.serve import deploy_to_pool, main

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="gpu-test", type="process"))
    deployment_id = deploy_to_pool("gpu-test", "gpu", str(params_file), ["train.device=cuda"])
    main(["--pool", "gpu-test", "--name", "gpu-2", "--set", "train.iters=9"])  # the CLI path
    with get_client(sync_client=True) as client:
        first = client.read_deployment(deployment_id)
        second = client.read_deployment_by_name("dynamix-pipeline/gpu-2")
    repo = str(Path(pipeline.__file__).resolve().parents[1])
    for deployment in (first, second):
        assert deployment.work_pool_name == "gpu-test"
        assert deployment.entrypoint == "flows/pipeline.py:pipeline_flow"
        assert any(repo in json.dumps(step) for step in deployment.pull_steps or [])
    assert first.parameters["overrides"] == ["train.device=cuda"]
    assert first.parameters["params_path"] == str(params_file)
    assert second.parameters["overrides"] == ["train.iters=9"]
