"""The data path end to end on the tiny synthetic world: synth → loaders → manifests →
baseline evaluation, directly, through the CLI and through the Prefect flow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dynamix.baseline import evaluate_targets
from dynamix.cli import main as cli_main
from dynamix.config import load_params
from dynamix.data.manifest import read_manifest, split_counts
from dynamix.data.registry import load_dataset
from dynamix.errors import DynamixError
from dynamix.prepare import prepare_manifests


@pytest.fixture(scope="module")
def params_file(tiny_world: Path, world_params, tmp_path_factory) -> Path:
    """The repo's params.yaml with every dataset root moved into the shared tiny world."""
    return world_params(tiny_world, tmp_path_factory.mktemp("params"))


def expected_counts(entry: dict) -> dict[str, dict[str, int]]:
    """world.json counts in the shape of ``split_counts`` (gallery ids exclude pid 0)."""
    c = entry
    train_key = "trainval" if "trainval_images" in c else "train"
    out = {"train": {"images": c[f"{train_key}_images"], "ids": c[f"{train_key}_ids"]}}
    if "query_images" in c:
        out["query"] = {"images": c["query_images"], "ids": c["query_ids"]}
        out["gallery"] = {"images": c["gallery_images"], "ids": c["gallery_ids"]}
    return out


@pytest.mark.parametrize(
    ("name", "fmt", "options", "variant"),
    [
        ("market-syn", "market1501", {}, None),
        ("night-syn", "market1501", {}, None),
        ("duke-syn", "dukemtmc", {}, None),
        ("msmt-syn", "msmt17", {"merge_val": True}, None),
        ("cuhk-syn", "cuhk03-np", {"variant": "labeled"}, "labeled"),
        ("cuhk-syn", "cuhk03-np", {"variant": "detected"}, "detected"),
        ("lupnl-syn", "single_camera", {}, None),
    ],
)
def test_loaders_round_trip_the_world_counts(tiny_world, name, fmt, options, variant):
    meta = json.loads((tiny_world / "world.json").read_text())["domains"][name]
    counts = meta["counts"][variant] if variant else meta["counts"]
    df = load_dataset(fmt, tiny_world / name, domain=name, **options)
    got = split_counts(df)
    for split, want in expected_counts(counts).items():
        assert got[split]["images"] == want["images"], (name, split)
        distractors = split == "gallery" and fmt in ("market1501", "dukemtmc")
        part = df[(df["split"] == split) & (df["pid"] != 0)] if distractors else None
        ids = part["pid"].nunique() if part is not None else got[split]["ids"]
        assert ids == want["ids"], (name, split)
    assert got["train"]["cameras"] <= meta["num_cameras"]
    if fmt in ("market1501", "dukemtmc"):
        gallery = df[df["split"] == "gallery"]
        assert int((gallery["pid"] == 0).sum()) == counts["distractor_images"]
        assert not (df[df["split"] != "gallery"]["pid"] == 0).any()


def test_test_identities_never_overlap_training(tiny_world):
    for name, fmt in [("market-syn", "market1501"), ("duke-syn", "dukemtmc")]:
        df = load_dataset(fmt, tiny_world / name, domain=name)
        train = set(df[df["split"] == "train"]["pid"])
        test = set(df[df["split"] != "train"]["pid"]) - {0}
        assert not train & test, name


def test_single_camera_manifest_matches_hidden_ground_truth(tiny_world):
    df = load_dataset("single_camera", tiny_world / "lupnl-syn", domain="lupnl-syn")
    gt = pd.read_parquet(tiny_world / "ground_truth" / "lupnl-syn.parquet")
    rel = df["path"].str.slice(len(str(tiny_world / "lupnl-syn")) + 1)
    merged = pd.DataFrame({"path": rel, "pid": df["pid"]}).merge(gt, on="path", how="outer")
    assert len(merged) == len(df) == len(gt)
    assert (merged["pid"] == merged["pseudo_pid"]).all()
    # every pseudo pid lives in one video: the source really is single-camera
    assert (df.groupby("pid")["video"].nunique() == 1).all()


def test_prepare_writes_every_manifest_and_a_summary(params_file):
    params = load_params(params_file)
    summary = prepare_manifests(params)
    out = Path(params.data.manifests_dir)
    assert set(summary) == {s.name for s in params.data.all_datasets()}
    for spec in params.data.all_datasets():
        df = read_manifest(out / f"{spec.name}.parquet")
        assert split_counts(df) == summary[spec.name]["splits"]
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["lupnl-syn"]["role"] == "single_camera"


def test_baseline_is_a_real_floor_on_the_targets(params_file, tmp_path):
    params = load_params(params_file)
    prepare_manifests(params)
    metrics = evaluate_targets(params, plots_dir=str(tmp_path))
    assert set(metrics) == {"market-syn", "night-syn"}
    for name, m in metrics.items():
        query = read_manifest(Path(params.data.manifests_dir) / f"{name}.parquet")
        n_query = int((query["split"] == "query").sum())
        assert m["num_valid_query"] == n_query  # every synthetic query has a cross-camera match
        assert 0.0 < m["mAP"] <= 1.0 and 0.0 < m["mINP"] <= 1.0
        assert 0.0 < m["rank1"] <= m["rank5"] <= m["rank10"] <= 1.0
        assert (tmp_path / f"baseline_ranks_{name}.png").stat().st_size > 1000


def test_baseline_names_a_corrupt_image(tiny_world_copy, world_params, tmp_path):
    params = load_params(world_params(tiny_world_copy, tmp_path))
    prepare_manifests(params)
    manifest = read_manifest(Path(params.data.manifests_dir) / "night-syn.parquet")
    victim = Path(manifest[manifest["split"] == "query"]["path"].iloc[0])
    victim.write_bytes(b"not a jpeg")
    with pytest.raises(DynamixError, match=f"{victim}: cannot decode image"):
        evaluate_targets(params)


def test_cli_reports_a_bad_params_key_in_one_line(tmp_path, capsys):
    bad = tmp_path / "params.yaml"
    bad.write_text("data:\n  manifest_dir: x\n")
    assert cli_main(["prepare", "--params", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'data.manifest_dir'" in err[0]


def test_cli_baseline_writes_metrics_json(params_file, tmp_path):
    assert cli_main(["prepare", "--params", str(params_file)]) == 0
    out = tmp_path / "metrics.json"
    args = [
        "baseline",
        "--params",
        str(params_file),
        "--out",
        str(out),
        "--plots-dir",
        str(tmp_path),
    ]
    assert cli_main(args) == 0
    metrics = json.loads(out.read_text())
    direct = evaluate_targets(load_params(params_file))
    for name in direct:
        np.testing.assert_allclose(metrics[name]["mAP"], direct[name]["mAP"], rtol=0, atol=1e-12)


def test_prefect_flow_runs_the_same_steps(params_file, tmp_path):
    from prefect.testing.utilities import prefect_test_harness

    from flows.data_flow import data_flow

    out = tmp_path / "flow_metrics.json"
    with prefect_test_harness():
        metrics = data_flow(params_path=str(params_file), metrics_out=str(out))
    saved = json.loads(out.read_text())
    assert set(saved.pop("data_version")["targets"]) == set(metrics)  # what the promotion gate checks
    assert saved == json.loads(json.dumps(metrics))
    direct = evaluate_targets(load_params(params_file))
    assert {k: v["rank1"] for k, v in metrics.items()} == {k: v["rank1"] for k, v in direct.items()}
