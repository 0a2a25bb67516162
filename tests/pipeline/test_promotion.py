"""The promotion gate: pure decisions with known answers, then the real MLflow registry."""

from __future__ import annotations

import json
import math

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dynamix.cli import main as cli_main
from dynamix.config import ConfigError, PromotionConfig, load_params
from dynamix.errors import DynamixError
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


BASE = metrics(0.3, 0.2, 0.2, 0.1)  # a colour baseline every model in these tests beats


def sha(tag: str) -> str:
    """A stand-in weights hash: the registry tests log the same tiny weights for every run."""
    return (tag * 64)[:64]


def promote(params, run_id, values, weights, **kwargs):
    return register_and_promote(params, run_id, values, weights_sha256=sha(weights), baseline=BASE, **kwargs)


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


def test_every_gated_metric_must_beat_the_baseline_by_the_margin():
    base = metrics(0.55, 0.45, 0.35, 0.3)
    d = decide(metrics(0.6, 0.46), None, CFG, targets=TARGETS, baseline=base)
    assert d.promote
    assert d.summary == "accepted: every target clears its thresholds and beats the baseline (first champion)"
    # equal is not beating; a threshold failure comes first and is the metric's only reason
    d = decide(metrics(0.55, 0.44, n_rank1=0.31), None, CFG, targets=TARGETS, baseline=base)
    assert d.reasons == (
        "market-syn mAP 0.44 < 0.45",
        "market-syn rank1 0.55 does not beat baseline 0.55",
        "night-syn rank1 0.31 does not beat baseline 0.35",
    )
    # close numbers print with enough digits to tell them apart
    d = decide(metrics(0.6, 0.4503), None, CFG, targets=TARGETS, baseline=metrics(0.5, 0.4507, 0.3, 0.3))
    assert d.reasons == ("market-syn mAP 0.450 does not beat baseline 0.451",)
    margin = PromotionConfig(thresholds=CFG.thresholds, baseline_margin=0.05)
    d = decide(metrics(0.6, 0.46), None, margin, targets=TARGETS, baseline=base)
    assert d.reasons == (  # 0.60 = 0.55 + 0.05 is not more
        "market-syn rank1 0.60 does not beat baseline 0.55 by more than 0.05",
        "market-syn mAP 0.46 does not beat baseline 0.45 by more than 0.05",
    )
    assert decide(metrics(0.61, 0.51), None, margin, targets=TARGETS, baseline=base).promote
    trailing = PromotionConfig(thresholds=CFG.thresholds, baseline_margin=-0.1)
    assert decide(metrics(0.6, 0.46), None, trailing, targets=TARGETS, baseline=metrics(0.6, 0.5)).promote
    d = decide(metrics(0.6, 0.46), None, trailing, targets=TARGETS, baseline=metrics(0.6, 0.6))
    assert d.reasons == ("market-syn mAP 0.46 trails baseline 0.60 by 0.1 or more",)
    # a baseline without a gated target or metric is a reason, never a pass
    d = decide(metrics(0.6, 0.5), None, CFG, targets=TARGETS, baseline={"market-syn": BASE["market-syn"]})
    assert d.reasons == ("night-syn rank1: no baseline value to beat", "night-syn mAP: no baseline value to beat")


def test_reasons_list_thresholds_then_baseline_then_champion():
    champion = metrics(0.9, 0.9, 0.9, 0.9)
    d = decide(metrics(0.6, 0.4, 0.6, 0.5), champion, CFG, targets=TARGETS, champion_version="1", baseline=BASE)
    assert [r.split(" ", 2)[2].split(" ")[1] for r in d.reasons] == ["<", "regresses", "regresses", "regresses"]
    base = metrics(0.65, 0.2, 0.2, 0.1)
    d = decide(metrics(0.6, 0.4, 0.6, 0.5), champion, CFG, targets=TARGETS, champion_version="1", baseline=base)
    assert d.reasons[:2] == ("market-syn mAP 0.40 < 0.45", "market-syn rank1 0.60 does not beat baseline 0.65")


def test_threshold_config_is_checked_at_load(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("promotion:\n  thresholds:\n    default: {rank1: 0.1, mAP: 1e-2}\n")
    assert load_params(path).promotion.minimums("any") == {"rank1": 0.1, "mAP": 0.01}
    with pytest.raises(ConfigError, match=r"unknown metric 'promotion\.thresholds\.x\.rankl'"):
        load_params(path, ["promotion.thresholds={x: {rankl: 0.1}}"])
    with pytest.raises(ConfigError, match=r"'promotion\.thresholds\.x\.mAP' must be a number"):
        load_params(path, ["promotion.thresholds={x: {mAP: high}}"])
    # a key naming no target would be silently unused: one line naming it and the targets
    with pytest.raises(ConfigError) as info:
        load_params(path, ["promotion.thresholds={market_syn: {mAP: 0.1}}"])
    message = str(info.value)
    assert "'promotion.thresholds.market_syn' names no target (known: default, market-syn, night-syn)" in message
    assert "\n" not in message
    only_market = "data.targets=[{name: market-syn, format: market1501, root: x}]"
    with pytest.raises(ConfigError, match=r"'promotion\.thresholds\.night-syn' names no target"):
        load_params(path, [only_market, "promotion.thresholds={night-syn: {mAP: 0.1}}"])
    assert load_params(path, [only_market, "promotion.thresholds={market-syn: {mAP: 0.1}}"])
    with pytest.raises(ConfigError, match=r"promotion\.baseline_margin"):
        load_params(path, ["promotion.baseline_margin=1.5"])
    assert load_params(path, ["promotion.baseline_margin=-0.2"]).promotion.baseline_margin == -0.2


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

    first = promote(params, candidate(params, trained, "a"), metrics(0.6, 0.5), "a")
    assert first["promoted"] and first["version"] == 1 and champion() == "1"
    assert first["reason"] == "accepted: every target clears its thresholds and beats the baseline (first champion)"
    v1 = client.get_model_version(name, "1")
    assert v1.tags["promotion"] == "accepted" and v1.tags["weights_sha256"] == sha("a")
    gated = {t: {"rank1": v["rank1"], "mAP": v["mAP"]} for t, v in BASE.items()}
    assert json.loads(v1.tags["promotion_baseline"]) == gated
    assert first["weights_sha256"] == sha("a") and first["baseline"]["night-syn"]["mAP"] == 0.1

    # below a threshold: registered, tagged with the reason, the champion untouched
    run_b = candidate(params, trained, "b")
    low = promote(params, run_b, metrics(0.6, 0.41), "b")
    assert not low["promoted"] and low["version"] == 2 and low["champion_version"] == 1
    v2 = client.get_model_version(name, "2")
    assert v2.run_id == run_b and v2.tags["promotion"] == "rejected"
    assert v2.tags["promotion_reason"] == "rejected: market-syn mAP 0.41 < 0.45"
    assert float(v2.tags["market-syn/mAP"]) == 0.41  # metrics kept on the version
    assert client.get_run(run_b).data.tags["promotion_reason"] == v2.tags["promotion_reason"]
    assert champion() == "1"

    # better on every target: the alias moves
    better = promote(params, candidate(params, trained, "c"), metrics(0.7, 0.6), "c")
    assert better["promoted"] and better["champion_version"] == 3 and champion() == "3"

    # above every threshold but worse than the champion beyond the margin: rejected
    worse = promote(params, candidate(params, trained, "d"), metrics(0.7, 0.55), "d")
    assert not worse["promoted"] and champion() == "3"
    assert worse["reasons"] == ["market-syn mAP 0.55 regresses champion v3 0.60 by more than 0.01"]

    # a retry or rerun of a rejected run, even claiming perfect metrics: same version, no alias
    again = promote(params, run_b, metrics(1.0, 1.0, 1.0, 1.0), "b")
    assert again["version"] == 2 and not again["promoted"] and champion() == "3"
    assert len(client.search_model_versions(f"name='{name}'")) == 4
    # the run's version holds other weights than those judged now: refused, nothing changes
    with pytest.raises(DynamixError, match=f"v2 with weights {sha('b')[:12]}, but the model judged now has weights"):
        promote(params, run_b, metrics(1.0, 1.0, 1.0, 1.0), "e")
    assert champion() == "3" and len(client.search_model_versions(f"name='{name}'")) == 4


def test_rejected_weights_stay_rejected_under_any_run_until_an_override(tracked_run, trained):
    """The issue's bypass: the same weights in a new MLflow run, with looser thresholds."""
    strict = tracked_run.params(
        "tracking.registered_model=reid-weights", "promotion.thresholds={default: {rank1: 0.5, mAP: 0.45}}"
    )
    loose = tracked_run.params("tracking.registered_model=reid-weights", "promotion.thresholds={default: {mAP: 0.1}}")
    configure(strict)
    client, name = MlflowClient(), "reid-weights"
    first = promote(strict, candidate(strict, trained, "w1"), metrics(0.6, 0.41), "w")
    assert not first["promoted"] and first["reasons"] == ["market-syn mAP 0.41 < 0.45"]

    run_2 = candidate(loose, trained, "w2")
    again = promote(loose, run_2, metrics(0.6, 0.41), "w")  # would clear the loose gate
    assert not again["promoted"] and again["version"] == 2
    assert again["reasons"] == [
        f"weights {sha('w')[:12]} were rejected before as v1 (market-syn mAP 0.41 < 0.45); "
        "pass --override-reason to judge them again"
    ]
    assert client.get_model_version(name, "2").tags["weights_sha256"] == sha("w")
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias(name, "champion")
    # other weights under the loose gate are judged on their own numbers
    assert promote(loose, candidate(loose, trained, "x"), metrics(0.6, 0.3), "x")["promoted"]

    # an explicit override judges them again under the current gate, and is logged
    why = "thresholds were set for the default world; reviewed by hand"
    with pytest.raises(DynamixError, match="give the reason"):
        promote(loose, run_2, metrics(0.6, 0.41), "w", override_reason="  ")
    forced = promote(loose, run_2, metrics(0.6, 0.41), "w", override_reason=why)
    assert forced["promoted"] and forced["version"] == 2 and forced["override_reason"] == why
    v2 = client.get_model_version(name, "2")
    assert v2.tags["promotion_override_reason"] == why and v2.tags["promotion"] == "accepted"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    # the weights' rejection as v1 still stands for any run that comes without an override
    third = promote(loose, candidate(loose, trained, "w3"), metrics(0.6, 0.41), "w")
    assert not third["promoted"] and "were rejected before as v1" in third["reason"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"


def test_a_model_that_does_not_beat_the_baseline_is_rejected(tracked_run, trained):
    params = tracked_run.params("tracking.registered_model=reid-base", "promotion.thresholds={default: {mAP: 0.1}}")
    strong = metrics(0.7, 0.55, 0.6, 0.5)
    result = register_and_promote(
        params, candidate(params, trained, "b"), metrics(0.6, 0.5), weights_sha256=sha("b"), baseline=strong
    )
    assert not result["promoted"]
    assert result["reasons"] == [
        "market-syn mAP 0.50 does not beat baseline 0.55",
        "night-syn mAP 0.50 does not beat baseline 0.50",
    ]
    assert result["baseline"] == {"market-syn": {"mAP": 0.55}, "night-syn": {"mAP": 0.5}}


@pytest.fixture(scope="module")
def baseline_file(tracked_run, tmp_path_factory):
    """``dynamix baseline`` on the tracked run's world: the file the CLI gate reads."""
    out = tmp_path_factory.mktemp("baseline") / "baseline.json"
    argv = ["baseline", "--params", str(tracked_run.params_file), "--out", str(out), "--plots-dir", str(out.parent)]
    assert cli_main([*argv, *(a for s in tracked_run.overrides for a in ("--set", s))]) == 0
    return out


def test_cli_track_then_promote_strict_exits_3_on_rejection(tracked_run, trained, baseline_file, tmp_path, capsys):
    sets = [
        *tracked_run.overrides,
        "tracking.registered_model=reid-cli",
        "tracking.ranked_list_queries=0",
        f"promotion.baseline={baseline_file}",
    ]
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
    weights, first = result["weights_sha256"], result["reason"].removeprefix("rejected: ")
    assert len(weights) == 64 and result["baseline_source"] == str(baseline_file)
    # the thresholds loosened afterwards: the rejected version stays rejected (exit 0 unstrict)
    assert cli_main(argv) == 0
    assert json.loads(promotion.read_text())["promoted"] is False
    configure(load_params(tracked_run.params_file, sets))
    client = MlflowClient()
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("reid-cli", "champion")

    # the same best.pt in a new MLflow run, a gate it would pass: rejected for its weights
    open_gate = ["--set", "promotion.thresholds={default: {mAP: 0.0}}", "--set", "promotion.baseline_margin=-1"]
    retracked = candidate(load_params(tracked_run.params_file, sets), trained, "retracked")
    again = ["promote", *common, "--run-id", retracked, "--out", str(promotion), *open_gate]
    assert cli_main([*again, "--strict"]) == 3
    result = json.loads(promotion.read_text())
    assert result["version"] == 2 and result["weights_sha256"] == weights
    assert result["reasons"] == [
        f"weights {weights[:12]} were rejected before as v1 ({first}); pass --override-reason to judge them again"
    ]
    # only an explicit override, logged, lets the current gate judge them again
    capsys.readouterr()
    assert cli_main([*again, "--strict", "--override-reason", "reviewed: tiny world"]) == 0
    assert "(override: reviewed: tiny world)" in capsys.readouterr().out
    result = json.loads(promotion.read_text())
    assert result["promoted"] and result["override_reason"] == "reviewed: tiny world"
    assert client.get_model_version("reid-cli", "2").tags["promotion_override_reason"] == "reviewed: tiny world"
    assert str(client.get_model_version_by_alias("reid-cli", "champion").version) == "2"


def test_cli_promote_refuses_a_baseline_of_other_data(tracked_run, trained, baseline_file, tmp_path, capsys):
    """A missing, unversioned or other-data baseline: exit 2, one line, nothing registered."""
    from dynamix.baseline import data_version

    sets = [*tracked_run.overrides, "tracking.registered_model=reid-stale"]
    params = load_params(tracked_run.params_file, sets)
    run_id = candidate(params, trained, "stale")
    saved = json.loads(baseline_file.read_text())
    assert saved["data_version"] == data_version(params)  # what `dynamix baseline` recorded
    digest = saved["data_version"]["targets"]["night-syn"]
    other = {**saved, "data_version": {**saved["data_version"], "targets": {**saved["data_version"]["targets"]}}}
    other["data_version"]["targets"]["night-syn"] = "0" * 64
    unversioned = {k: v for k, v in saved.items() if k != "data_version"}
    cases = {
        "other.json": (other, f"(other night-syn data (000000000000 vs {digest[:12]} now)); refusing to compare"),
        "old.json": (unversioned, "(no data version recorded (written before versions were recorded))"),
        "missing.json": (None, "missing.json: not found; the gate needs the baseline"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(json.dumps(content))
        argv = ["promote", "--params", str(tracked_run.params_file), "--run-id", run_id]
        argv += [*(a for s in sets for a in ("--set", s)), "--set", f"promotion.baseline={path}"]
        argv += ["--out", str(tmp_path / "promotion.json")]
        capsys.readouterr()
        assert cli_main(argv) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
        assert "run `dynamix baseline`" in err
    configure(params)
    assert MlflowClient().search_model_versions("name='reid-stale'") == []
    assert not (tmp_path / "promotion.json").exists()


def test_both_gate_paths_judge_candidate_evaluation_of_best_pt(tracked_run, trained, baseline_file, tmp_path):
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
        f"promotion.baseline={baseline_file}",
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
    result = json.loads(out.read_text())
    judged = result["metrics"]  # what the version was registered with
    assert judged == {t: {k: pytest.approx(v[k]) for k in METRIC_KEYS} for t, v in fresh["targets"].items()}
    # bound to the weights scored: the online encoder's, not the momentum copy's
    assert result["weights_sha256"] == fresh["weights_sha256"] != recorded["weights_sha256"]
    baseline = json.loads(baseline_file.read_text())
    assert fresh["data_version"] == recorded["data_version"] == baseline["data_version"]
    # thresholds at 0 (an untrained model clears them): the baseline of this world still gates
    trailing = {t for t, v in fresh["targets"].items() if v["mAP"] <= baseline[t]["mAP"]}
    assert trailing, "the tiny world's colour baseline beats a 4-step model"
    assert {r.split(" ")[0] for r in result["reasons"]} == trailing and not result["promoted"]
    assert all(" mAP " in r and "does not beat baseline" in r for r in result["reasons"])


def test_weights_hash_is_of_the_weights_not_the_file(tracked_run, tmp_path):
    """Re-saving the same weights (another step, no optimizer) keeps the hash; any changed
    number, dtype or encoder changes it."""
    import hashlib

    import torch

    from dynamix.infer.checkpoint import read_checkpoint
    from flows.promotion import checkpoint_weights_sha256

    best = tracked_run.run_dir / "best.pt"
    momentum = checkpoint_weights_sha256(best, "momentum")
    assert momentum != checkpoint_weights_sha256(best, "online")
    state = read_checkpoint(best)
    resaved = tmp_path / "resaved.pt"
    torch.save({**state, "step": 999, "optimizer": {}}, resaved)
    assert hashlib.sha256(resaved.read_bytes()).digest() != hashlib.sha256(best.read_bytes()).digest()
    assert checkpoint_weights_sha256(resaved, "momentum") == momentum
    nudged = {k: v.clone() for k, v in state["momentum"].items()}
    key = next(k for k, v in nudged.items() if v.is_floating_point())
    nudged[key].view(-1)[0] += 1e-6
    torch.save({**state, "momentum": nudged}, tmp_path / "nudged.pt")
    assert checkpoint_weights_sha256(tmp_path / "nudged.pt", "momentum") != momentum
    halved = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state["momentum"].items()}
    torch.save({**state, "momentum": halved}, tmp_path / "bf16.pt")
    assert checkpoint_weights_sha256(tmp_path / "bf16.pt", "momentum") != momentum


def test_two_concurrent_promotions_have_one_first_champion_and_end_on_the_better(tracked_run, trained, monkeypatch):
    """Two promotions at once on one sqlite store (threads: ``flock`` excludes them as it
    excludes processes). Each is slowed between reading the champion and moving the alias,
    so without the promotion lock both would see "no champion" and both be "first"."""
    import threading
    import time

    from flows import promotion

    params = tracked_run.params(
        "tracking.registered_model=reid-race", "promotion.thresholds={default: {rank1: 0.5, mAP: 0.45}}"
    )
    runs = {"worse": candidate(params, trained, "worse"), "better": candidate(params, trained, "better")}
    numbers = {"worse": metrics(0.6, 0.5), "better": metrics(0.7, 0.6)}
    real_decide = promotion.decide

    def slow_decide(*args, **kwargs):
        time.sleep(0.5)  # the window two unserialised promotions would race through
        return real_decide(*args, **kwargs)

    monkeypatch.setattr(promotion, "decide", slow_decide)
    start, results, errors = threading.Barrier(2), {}, []

    def run(name: str) -> None:
        try:
            start.wait()
            results[name] = promote(params, runs[name], numbers[name], name[0])
        except Exception as exc:  # reported below: a thread's exception is lost otherwise
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and set(results) == {"worse", "better"}
    firsts = [name for name, r in results.items() if r["reason"].endswith("(first champion)")]
    assert len(firsts) == 1, {name: r["reason"] for name, r in results.items()}
    configure(params)
    champion = MlflowClient().get_model_version_by_alias("reid-race", "champion")
    assert champion.run_id == runs["better"]


def test_a_run_whose_model_came_from_another_checkpoint_is_refused(tracked_run, trained, tmp_path):
    params = tracked_run.params("tracking.registered_model=reid-bound", "promotion.thresholds={default: {mAP: 0.1}}")
    run_id = candidate(params, trained, "bound")  # logged from the tracked run's best.pt
    retrained = tmp_path / "best.pt"
    retrained.write_bytes((tracked_run.run_dir / "best.pt").read_bytes() + b"\0")
    with pytest.raises(DynamixError, match=f"MLflow run {run_id} logged its model from another best.pt"):
        promote(params, run_id, metrics(0.6, 0.5), "r", checkpoint=retrained)
    configure(params)
    assert MlflowClient().search_model_versions("name='reid-bound'") == []
    assert promote(params, run_id, metrics(0.6, 0.5), "r", checkpoint=tracked_run.run_dir / "best.pt")["promoted"]
