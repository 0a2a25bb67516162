"""MLflow tracking on a real sqlite store: what one tiny training run leaves in MLflow."""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from dynamix.config import flatten
from dynamix.train.state import load_checkpoint
from flows.run_outputs import load_trained_model, read_events
from flows.tracking import (
    configure,
    log_run_from_dir,
    log_validation_results,
    start_pipeline_run,
    tracking_uri,
)

# MLflow's own use of SQLAlchemy, not ours
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


@pytest.fixture(scope="module")
def client(tracked_run) -> MlflowClient:
    configure(tracked_run.params())
    return MlflowClient()


def artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    """Every artifact file of the run, recursively."""
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def test_configure_resolves_the_store(tmp_path, monkeypatch, tracked_run):
    monkeypatch.chdir(tmp_path)
    params = tracked_run.params("tracking.uri=sqlite:///sub/m.db", "tracking.experiment=other")
    assert tracking_uri(params) == f"sqlite:///{tmp_path}/sub/m.db"  # absolute: four slashes
    experiment_id = configure(params)
    experiment = MlflowClient().get_experiment(experiment_id)
    assert experiment.artifact_location == (tmp_path / "sub" / "mlartifacts").as_uri()
    assert configure(params) == experiment_id  # get, not create, the second time
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/env.db")
    assert tracking_uri(params) == f"sqlite:///{tmp_path}/env.db"  # the environment wins
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    configure(tracked_run.params())
    assert "MLFLOW_TRACKING_URI" not in os.environ  # configure leaves the environment alone


def test_run_holds_every_param_and_the_comparison_tags(client, tracked_run):
    run = client.get_run(tracked_run.run_id)
    flat = flatten(tracked_run.params())
    assert set(run.data.params) == set(flat)
    assert run.data.params["train.iters"] == "4"
    assert run.data.params["data.targets.1.name"] == "night-syn"
    tags = run.data.tags
    assert tags["dynamix.preset"] == "tiny"  # from world.json
    assert tags["dynamix.protocol"] == "D+M+C->market-syn,night-syn"
    assert tags["dynamix.single_camera"] == "lupnl-syn"
    assert tags["dvc.data_md5"] == "untracked"  # a tmp world, not data.dvc's data/raw
    assert tags["git.commit"] == tags["mlflow.source.git.commit"]
    assert len(tags["git.commit"]) == 40 or tags["git.commit"] == "unknown"
    assert tags["test"] == "tracked_run" and run.info.status == "FINISHED"
    assert tags["variant"] == "dynamix" and tags["seed"] == "0"
    assert run.info.run_name == "tiny"  # a name given by the caller wins over the default


def test_runs_are_named_by_protocol_variant_and_seed(tmp_path, monkeypatch, tracked_run):
    from flows.run_info import variant

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = f"tracking.uri=sqlite:///{tmp_path / 'm.db'}"
    params = tracked_run.params(store, "train.relabel.enabled=false", "train.seed=3")
    with start_pipeline_run(params) as run:
        pass
    client = MlflowClient()
    logged = client.get_run(run.info.run_id)
    assert logged.info.run_name == "duke+msmt+cuhk→market+night · no_relabeling · seed 3"
    assert logged.data.tags["variant"] == "no_relabeling" and logged.data.tags["seed"] == "3"
    tags = client.get_experiment(run.info.experiment_id).tags
    note = tags["mlflow.note.content"]
    assert tags["mlflow.experimentKind"] == "custom_model_development"  # the UI's training view
    assert "evaluated on the unseen target domains market-syn, night-syn" in note
    assert "`validation/reports/data_docs/`" in note
    client.set_experiment_tag(run.info.experiment_id, "mlflow.note.content", "written in the UI")
    assert configure(params) == run.info.experiment_id
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.note.content"] == (
        "written in the UI"
    )  # a description a user wrote is kept
    off = {
        "train.sampler.single_camera=false": "multi_camera_only",
        "train.loss.centroid=false": "no_centroids",
        "train.sampler.matching=false": "random_mixing",
    }
    for override, name in off.items():
        assert variant(tracked_run.params(override)) == name
    both = tracked_run.params(*off)
    assert variant(both) == "multi_camera_only+no_centroids+random_mixing"
    configure(tracked_run.params())  # the module's store again, for the tests after this one


def test_live_metrics_per_step_relabel_round_and_evaluation(client, tracked_run):
    run_id = tracked_run.run_id
    steps = [e for e in read_events(tracked_run.run_dir) if e["event"] == "step"]
    assert history(client, run_id, "train/loss") == [(e["step"], e["loss"]) for e in steps]
    assert [s for s, _ in history(client, run_id, "train/lr")] == [1, 2, 3, 4]
    # a relabeling window at step 2 and the closing one at the last step: their counts and
    # precisions as metrics, their records as artifacts; a precision with nothing to measure
    # (NaN, written as null in log.jsonl) is no point on a curve
    windows = [e for e in read_events(tracked_run.run_dir) if e["event"] == "relabel"]
    assert [w["step"] for w in windows] == [2, 4]
    for key in ("images_judged", "images_filtered", "images_relabeled", "ids_merged", "ids_remaining", "purity"):
        assert history(client, run_id, f"relabel/{key}") == [(w["step"], pytest.approx(w[key])) for w in windows]
    for key in ("filter_precision", "reassign_precision", "merge_precision"):
        measured = [(w["step"], pytest.approx(w[key])) for w in windows if w[key] is not None]
        assert history(client, run_id, f"relabel/{key}") == measured
    for number, window in enumerate(windows, 1):
        path = client.download_artifacts(run_id, f"relabel/round_{number:02d}_step_{window['step']}.json")
        record = json.loads(Path(path).read_text())
        assert record["step"] == window["step"] and record["images_judged"] == window["images_judged"]
        assert record["ids_remaining"] == window["ids_remaining"]
    # every target at both evaluations, under the same names in every run
    for target in ("market-syn", "night-syn"):
        for metric in ("rank1", "rank5", "rank10", "mAP", "mINP"):
            values = history(client, run_id, f"{target}/{metric}")
            assert [s for s, _ in values] == [2, 4]
            assert all(0 <= v <= 1 for _, v in values)
    assert [s for s, _ in history(client, run_id, "mean_mAP")] == [2, 4]


def test_outputs_checkpoints_plots_and_summary_metrics(client, tracked_run):
    run = client.get_run(tracked_run.run_id)
    files = artifacts(client, tracked_run.run_id)
    assert {"checkpoints/best.pt", "checkpoints/last.pt", "train/metrics.json"} <= files
    assert {"plots/loss.png", "plots/eval.png", "plots/relabel.png"} <= files
    assert {"plots/ranked_market-syn.png", "plots/ranked_night-syn.png"} <= files
    best = client.download_artifacts(tracked_run.run_id, "checkpoints/best.pt")
    assert load_checkpoint(best)["step"] == load_checkpoint(tracked_run.run_dir / "best.pt")["step"]
    summary = json.loads((tracked_run.run_dir / "metrics.json").read_text())
    m = run.data.metrics
    for when in ("before", "after"):
        purity = summary["label_quality"][when]["purity"]
        assert m[f"label_quality/{when}/purity"] == pytest.approx(purity)
    assert m["relabel/rounds"] == summary["relabel_rounds"] == 2
    # best/ metrics are those of the logged model: best.pt's own evaluation
    best_eval = load_checkpoint(tracked_run.run_dir / "best.pt")["last_eval"]["targets"]
    for target, values in best_eval.items():
        assert m[f"best/{target}/mAP"] == pytest.approx(values["mAP"])
    assert tracked_run.outputs["metrics"]["market-syn"]["mAP"] == pytest.approx(best_eval["market-syn"]["mAP"])


def test_ranked_lists_are_drawn_from_the_recorded_evaluation(tracked_run, tmp_path, monkeypatch):
    from dataclasses import replace

    import dynamix.train.features
    from flows.run_outputs import write_ranked_lists

    trained, params = load_trained_model(tracked_run.run_dir), tracked_run.params()
    queries = params.tracking.ranked_list_queries
    assert {len(r["rows"]) for r in trained.last_eval["ranked"].values()} == {queries}
    # no record (a checkpoint from before records existed): one feature pass per target
    fresh = write_ranked_lists(replace(trained, last_eval={}), params, tmp_path / "a", queries)

    def no_feature_pass(*args, **kwargs):
        raise AssertionError("feature pass although best.pt recorded its top matches")

    with monkeypatch.context() as m:
        m.setattr(dynamix.train.features, "extract_features", no_feature_pass)
        recorded = write_ranked_lists(trained, params, tmp_path / "b", queries)
    assert [p.name for p in recorded] == [p.name for p in fresh] == ["ranked_market-syn.png", "ranked_night-syn.png"]
    for a, b in zip(fresh, recorded, strict=True):
        assert a.read_bytes() == b.read_bytes()  # the same picture either way


def test_logged_model_loads_and_embeds_its_input_example(client, tracked_run):
    model_uri = tracked_run.outputs["model_uri"]
    assert client.get_run(tracked_run.run_id).data.tags["dynamix.model_uri"] == model_uri
    info = mlflow.models.get_model_info(model_uri)
    assert info.signature is not None and info.signature.inputs.inputs[0].shape == (-1, 3, 64, 32)
    example = mlflow.models.Model.load(model_uri).load_input_example()
    assert isinstance(example, np.ndarray) and example.shape == (2, 3, 64, 32)
    loaded = mlflow.pytorch.load_model(model_uri)
    x = torch.from_numpy(np.asarray(example, dtype=np.float32))
    out = loaded(x)
    assert out.shape == (2, 192) and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    # the very encoder that was evaluated (momentum weights of best.pt), at any batch size
    with torch.no_grad():
        expected = load_trained_model(tracked_run.run_dir).model(x)
    assert torch.allclose(out, expected, atol=1e-5)
    assert loaded(torch.cat([x, x, x[:1]])).shape == (5, 192)


def test_replaying_the_log_equals_live_logging(client, tracked_run):
    params = tracked_run.params()
    with start_pipeline_run(params, run_name="replay") as run:
        assert log_run_from_dir(tracked_run.run_dir, params) == len(read_events(tracked_run.run_dir))
    live = client.get_run(tracked_run.run_id).data.metrics
    replayed = client.get_run(run.info.run_id).data.metrics
    keys = [k for k in live if k.startswith(("train/", "relabel/", "market-syn/", "mean_mAP"))]
    keys = [k for k in keys if k not in ("relabel/rounds", "relabel/images_kept")]  # post-hoc
    assert keys and [k for k in keys if k not in replayed] == []
    for key in keys:
        a = history(client, tracked_run.run_id, key)
        b = history(client, run.info.run_id, key)
        assert [s for s, _ in a] == [s for s, _ in b], key
        assert all(math.isclose(x, y, rel_tol=1e-9) for (_, x), (_, y) in zip(a, b, strict=True)), key
    assert "relabel/round_01_step_2.json" in artifacts(client, run.info.run_id)


def test_failing_validation_results_are_kept_as_artifacts(client, tracked_run):
    from flows.validation import validate_data

    # the tiny world has 46 market-syn train images: expecting 47 must fail the gate
    params = tracked_run.params("validation.expected_counts.tiny.market-syn.train=47", "validation.decode_sample=5")
    summary = validate_data(params)
    assert not summary["success"]
    with start_pipeline_run(params, run_name="bad-data") as run:
        link = log_validation_results(params, summary)
    run_id = run.info.run_id
    files = artifacts(client, run_id)
    assert "validation/summary.json" in files and "validation/reports/market-syn.json" in files
    docs = "validation/reports/data_docs/index.html"  # GX Data Docs, with their scripts
    assert docs in files and client.get_run(run_id).data.tags["validation.data_docs"] == docs
    assert "validation/reports/data_docs/static/vendor/jquery@3.7.1/jquery.min.js" in files
    assert link.endswith(f"#/experiments/{run.info.experiment_id}/runs/{run_id}/artifacts/{docs}")
    kept = json.loads(Path(client.download_artifacts(run_id, "validation/summary.json")).read_text())
    (failure,) = kept["failures"]
    assert failure["dataset"] == "market-syn" and failure["observed_value"] == 46
    assert client.get_run(run_id).data.tags["validation.success"] == "false"
    assert client.get_run(run_id).data.metrics["validation/failed_expectations"] == 1


def test_a_worker_thread_logs_into_the_run_by_id_without_ending_it(client, tracked_run):
    params = tracked_run.params()  # Prefect tasks run in threads; MLflow's active run does not
    summary = {"success": True, "failures": [], "datasets": {}}
    with start_pipeline_run(params, run_name="threads") as run:
        run_id = run.info.run_id
        with ThreadPoolExecutor(1) as pool:
            pool.submit(log_validation_results, params, summary, run_id=run_id).result()
        assert client.get_run(run_id).info.status == "RUNNING"
        assert mlflow.active_run().info.run_id == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    assert client.get_run(run_id).data.tags["validation.success"] == "true"
