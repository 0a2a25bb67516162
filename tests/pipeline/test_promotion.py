"""The promotion gate: pure decisions with known answers, then the real MLflow registry."""

from __future__ import annotations

import json
import math

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dynamix.cli import main as cli_main
from dynamix.config import ConfigError, PromotionConfig, load_params
from flows.promotion import decide, register_and_promote
from flows.run_outputs import load_trained_model
from flows.tracking import configure, log_reid_model, start_pipeline_run

CFG = PromotionConfig(
    thresholds={"default": {"rank1": 0.5, "mAP": 0.45}, "night-syn": {"rank1": 0.3, "mAP": 0.25}},
    max_regression=0.01,
)
TARGETS = ["market-syn", "night-syn"]
# MLflow's own use of SQLAlchemy, not ours
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def metrics(m_rank1, m_map, n_rank1=0.6, n_map=0.5):
    return {
        "market-syn": {"rank1": m_rank1, "mAP": m_map, "rank5": 0.9},
        "night-syn": {"rank1": n_rank1, "mAP": n_map},
    }


# ---- decide: pure, known answers ---------------------------------------------------------
def test_a_model_clearing_every_threshold_is_accepted():
    d = decide(metrics(0.6, 0.5), None, CFG, targets=TARGETS)
    assert d.promote and d.reasons == ()
    assert d.summary == "accepted: every target clears its thresholds (first champion)"


def test_each_failed_threshold_is_one_readable_reason():
    d = decide(metrics(0.6, 0.41, n_rank1=0.29), None, CFG, targets=TARGETS)
    assert not d.promote
    assert d.reasons == ("market-syn mAP 0.41 < 0.45", "night-syn rank1 0.29 < 0.3")
    assert d.summary == "rejected: market-syn mAP 0.41 < 0.45; night-syn rank1 0.29 < 0.3"


def test_a_value_just_below_its_threshold_never_prints_as_equal():
    d = decide(metrics(0.6, 0.4499), None, CFG, targets=TARGETS)
    assert d.reasons == ("market-syn mAP 0.4499 < 0.45",)
    assert decide(metrics(0.6, 0.45), None, CFG, targets=TARGETS).promote  # >= passes


def test_missing_targets_and_metrics_are_reasons():
    m = {"market-syn": {"rank1": 0.6, "mAP": math.nan}}
    d = decide(m, None, CFG, targets=TARGETS)
    assert d.reasons == ("market-syn mAP missing", "night-syn: no metrics")
    # without an explicit target list, targets named in the thresholds are still required
    assert decide(m, None, CFG).reasons == d.reasons


def test_regression_against_the_champion_beyond_the_margin_rejects():
    champion = metrics(0.7, 0.57)
    within = decide(metrics(0.7, 0.56), champion, CFG, targets=TARGETS, champion_version="3")
    assert within.promote  # 0.01 below: inside the margin
    assert within.summary.endswith("none regresses against champion v3")
    d = decide(metrics(0.7, 0.50), champion, CFG, targets=TARGETS, champion_version="3")
    assert d.reasons == ("market-syn mAP 0.50 regresses champion v3 0.57 by more than 0.01",)
    # the shown numbers always differ by more than the margin (not "0.56 ... 0.57")
    d = decide(metrics(0.7, 0.5595), champion, CFG, targets=TARGETS, champion_version="3")
    assert d.reasons == ("market-syn mAP 0.559 regresses champion v3 0.570 by more than 0.01",)
    # a target the champion was never measured on is not compared; ungated metrics neither
    d = decide(metrics(0.7, 0.5), {"market-syn": {"rank5": 1.0}}, CFG, targets=TARGETS)
    assert d.promote


def test_threshold_config_is_checked_at_load(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("promotion:\n  thresholds:\n    default: {rank1: 0.1, mAP: 1e-2}\n")
    assert load_params(path).promotion.minimums("any") == {"rank1": 0.1, "mAP": 0.01}
    with pytest.raises(ConfigError, match=r"unknown metric 'promotion\.thresholds\.x\.rankl'"):
        load_params(path, ["promotion.thresholds={x: {rankl: 0.1}}"])
    with pytest.raises(ConfigError, match=r"'promotion\.thresholds\.x\.mAP' must be a number"):
        load_params(path, ["promotion.thresholds={x: {mAP: high}}"])


# ---- the registry ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tracked_run):
    return load_trained_model(tracked_run.run_dir)


def candidate(params, trained, name: str) -> str:
    """A pipeline run with a logged model (the tiny run's weights; metrics come separately)."""
    with start_pipeline_run(params, run_name=name) as run:
        log_reid_model(trained, params)
    return run.info.run_id


def test_gate_promotes_better_models_only_and_never_a_rejected_one(tracked_run, trained):
    params = tracked_run.params(
        "tracking.registered_model=reid-gate",
        "promotion.thresholds={default: {rank1: 0.5, mAP: 0.45}}",
    )
    configure(params)
    client, name = MlflowClient(), "reid-gate"

    def champion() -> str:
        return str(client.get_model_version_by_alias(name, "champion").version)

    first = register_and_promote(params, candidate(params, trained, "a"), metrics(0.6, 0.5))
    assert first["promoted"] and first["version"] == 1 and champion() == "1"
    assert client.get_model_version(name, "1").tags["promotion"] == "accepted"

    # below a threshold: registered, tagged with the reason, the champion untouched
    run_b = candidate(params, trained, "b")
    low = register_and_promote(params, run_b, metrics(0.6, 0.41))
    assert not low["promoted"] and low["version"] == 2 and low["champion_version"] == 1
    v2 = client.get_model_version(name, "2")
    assert v2.run_id == run_b and v2.tags["promotion"] == "rejected"
    assert v2.tags["promotion_reason"] == "rejected: market-syn mAP 0.41 < 0.45"
    assert float(v2.tags["market-syn/mAP"]) == 0.41  # metrics kept on the version
    assert client.get_run(run_b).data.tags["promotion_reason"] == v2.tags["promotion_reason"]
    assert champion() == "1"

    # better on every target: the alias moves
    better = register_and_promote(params, candidate(params, trained, "c"), metrics(0.7, 0.6))
    assert better["promoted"] and better["champion_version"] == 3 and champion() == "3"

    # above every threshold but worse than the champion beyond the margin: rejected
    worse = register_and_promote(params, candidate(params, trained, "d"), metrics(0.7, 0.55))
    assert not worse["promoted"] and champion() == "3"
    assert worse["reasons"] == ["market-syn mAP 0.55 regresses champion v3 0.60 by more than 0.01"]

    # a retry or rerun of a rejected run, even claiming perfect metrics: same version, no alias
    again = register_and_promote(params, run_b, metrics(1.0, 1.0, 1.0, 1.0))
    assert again["version"] == 2 and not again["promoted"] and champion() == "3"
    assert len(client.search_model_versions(f"name='{name}'")) == 4


def test_cli_track_then_promote_strict_exits_3_on_rejection(tracked_run, tmp_path, capsys):
    sets = [*tracked_run.overrides, "tracking.registered_model=reid-cli", "tracking.ranked_list_queries=0"]
    common = ["--params", str(tracked_run.params_file), *(a for s in sets for a in ("--set", s))]
    tracking, promotion = tmp_path / "tracking.json", tmp_path / "promotion.json"
    assert cli_main(["track", *common, "--out", str(tracking)]) == 0
    record = json.loads(tracking.read_text())
    assert record["checkpoint"] == "best.pt" and record["model_uri"].startswith("models:/")

    closed = ["--set", "promotion.thresholds={default: {rank1: 0.0, mAP: 1.0}}"]
    argv = ["promote", *common, "--tracking-file", str(tracking), "--out", str(promotion)]
    capsys.readouterr()
    assert cli_main([*argv, *closed, "--strict"]) == 3
    err = capsys.readouterr().err
    result = json.loads(promotion.read_text())
    market = record["metrics"]["market-syn"]["mAP"]
    assert result["version"] == 1 and not result["promoted"]
    assert result["reasons"][0] == f"market-syn mAP {market:.2f} < 1"
    assert err.strip() == f"dynamix promote: {result['reason']}"
    # the thresholds loosened afterwards: the rejected version stays rejected (exit 0 unstrict)
    assert cli_main(argv) == 0
    assert json.loads(promotion.read_text())["promoted"] is False
    with pytest.raises(MlflowException):
        configure(load_params(tracked_run.params_file, sets))
        MlflowClient().get_model_version_by_alias("reid-cli", "champion")


def test_both_gate_paths_judge_candidate_evaluation_of_best_pt(tracked_run, trained, tmp_path):
    """`dynamix promote` (the DVC stage) judges :func:`candidate_evaluation`, the report the
    flow's evaluate task returns: best.pt's recorded evaluation while it holds, else a fresh
    one; never numbers read back from the MLflow run."""
    from dynamix.evaluation.targets import METRIC_KEYS
    from dynamix.train.state import load_checkpoint
    from flows.promotion import candidate_evaluation

    recorded = candidate_evaluation(tracked_run.params())
    best = load_checkpoint(tracked_run.run_dir / "best.pt")["last_eval"]
    assert recorded["source"] == "recorded" and recorded["step"] == best["step"]
    assert recorded["targets"] == best["targets"]

    # another eval encoder: the record no longer holds, the gate scores best.pt afresh
    sets = [
        *tracked_run.overrides,
        "train.eval_model=online",
        "tracking.registered_model=reid-paths",
        "promotion.thresholds={default: {mAP: 0.0}}",
    ]
    params = load_params(tracked_run.params_file, sets)
    fresh = candidate_evaluation(params)
    assert fresh["source"] == "extracted" and fresh["encoder"] == "online"
    assert fresh["targets"] != recorded["targets"]
    out = tmp_path / "promotion.json"
    run_id = candidate(params, trained, "paths")
    argv = ["promote", "--params", str(tracked_run.params_file), "--out", str(out)]
    argv += ["--run-id", run_id, *(a for s in sets for a in ("--set", s))]
    assert cli_main(argv) == 0
    judged = json.loads(out.read_text())["metrics"]  # what the version was registered with
    assert judged == {t: {k: pytest.approx(v[k]) for k in METRIC_KEYS} for t, v in fresh["targets"].items()}
