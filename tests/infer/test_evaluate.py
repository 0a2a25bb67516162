"""evaluate_checkpoint reproduces the trainer's own evaluation; `dynamix evaluate` writes it."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from dynamix.cli import main as cli_main
from dynamix.errors import DynamixError
from dynamix.infer import evaluate_checkpoint
from dynamix.train.state import load_checkpoint

KEYS = {"rank1", "rank5", "rank10", "mAP", "mINP", "num_valid_query"}


def test_equals_the_trainers_last_eval(tiny_run):
    state = load_checkpoint(tiny_run.checkpoint)
    expected = state["last_eval"]  # written by Trainer.evaluate() during the run
    got = evaluate_checkpoint(tiny_run.params(), tiny_run.checkpoint)
    assert got["checkpoint"] == str(tiny_run.checkpoint)
    assert got["step"] == expected["step"] == 2 and got["encoder"] == "momentum"
    assert got["targets"].keys() == expected["targets"].keys() == {"market-syn", "night-syn"}
    for name, metrics in expected["targets"].items():
        assert set(got["targets"][name]) == set(metrics) == KEYS
        for key, value in metrics.items():
            assert got["targets"][name][key] == pytest.approx(value, abs=1e-6), (name, key)
    assert got["mean_mAP"] == pytest.approx(expected["mean_mAP"], abs=1e-6)
    assert 0 < got["mean_mAP"] < 1


def _no_feature_pass(*args, **kwargs):
    raise AssertionError("a feature pass ran although the recorded evaluation holds")


def test_recorded_evaluation_is_reused_without_a_feature_pass(tiny_run, monkeypatch):
    import dynamix.train.features

    extracted = evaluate_checkpoint(tiny_run.params(), tiny_run.checkpoint)
    assert extracted["source"] == "extracted"
    with monkeypatch.context() as m:
        m.setattr(dynamix.train.features, "extract_features", _no_feature_pass)
        got = evaluate_checkpoint(tiny_run.params(), tiny_run.checkpoint, reuse_recorded=True)
    assert got["source"] == "recorded" and got["step"] == extracted["step"] == 2
    for name, metrics in extracted["targets"].items():
        for key, value in metrics.items():
            assert got["targets"][name][key] == pytest.approx(value, abs=1e-6), (name, key)
    assert got["mean_mAP"] == pytest.approx(extracted["mean_mAP"], abs=1e-6)


@pytest.mark.parametrize("change", ["metric", "encoder", "gallery row dropped"])
def test_a_stale_record_means_a_fresh_feature_pass(tiny_run, tmp_path, change):
    import shutil

    import pandas as pd

    extra, encoder = [], "momentum"
    if change == "metric":
        extra = ["evaluation.metric=euclidean"]
    elif change == "encoder":
        encoder = "online"
    else:  # the same targets, one gallery image fewer: the recorded numbers do not hold
        manifests = tmp_path / "manifests"
        shutil.copytree(tiny_run.manifest("market-syn").parent, manifests)
        df = pd.read_parquet(manifests / "market-syn.parquet")
        drop = df.index[df["split"] == "gallery"][0]
        df.drop(index=drop).to_parquet(manifests / "market-syn.parquet")
        extra = [f"data.manifests_dir={manifests}"]
    params = tiny_run.params(*extra)
    got = evaluate_checkpoint(params, tiny_run.checkpoint, encoder, reuse_recorded=True)
    assert got["source"] == "extracted"
    assert got == {**evaluate_checkpoint(params, tiny_run.checkpoint, encoder)}


def test_online_encoder_and_a_target_subset(tiny_run):
    got = evaluate_checkpoint(tiny_run.params(), tiny_run.checkpoint, "online", ["night-syn"])
    assert got["encoder"] == "online" and list(got["targets"]) == ["night-syn"]
    assert got["mean_mAP"] == got["targets"]["night-syn"]["mAP"]
    with pytest.raises(DynamixError, match=r"unknown target.*mars.*market-syn, night-syn"):
        evaluate_checkpoint(tiny_run.params(), tiny_run.checkpoint, targets=["mars"])


def test_cli_writes_json_and_ranked_lists(tiny_run, tmp_path, capsys):
    out, plots = tmp_path / "metrics" / "eval.json", tmp_path / "plots"
    argv = [
        "evaluate",
        "--params",
        str(tiny_run.params_file),
        "--checkpoint",
        str(tiny_run.out_dir / "best.pt"),
        "--out",
        str(out),
        "--plots-dir",
        str(plots),
        *(a for s in tiny_run.overrides for a in ("--set", s)),
    ]
    assert cli_main(argv) == 0
    written = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == written
    assert written["step"] == 2 and set(written["targets"]["market-syn"]) == KEYS
    for name in ("market-syn", "night-syn"):
        with Image.open(plots / f"ranks_{name}.png") as img:
            assert img.width > 300 and img.height > 150


def test_cli_unknown_target_exits_2(tiny_run, capsys):
    argv = [
        "evaluate",
        "--params",
        str(tiny_run.params_file),
        "--checkpoint",
        str(tiny_run.checkpoint),
        "--target",
        "mars",
        *(a for s in tiny_run.overrides for a in ("--set", s)),
    ]
    assert cli_main(argv) == 2
    assert "unknown target(s) mars" in capsys.readouterr().err
