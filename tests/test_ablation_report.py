"""scripts/ablation.py's report from finished runs: schema, mean ± std, missing runs left out;
and each run logged to MLflow (a temp sqlite store) for the UI to compare."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ablation import REPO, main, markdown, readme_table

from dynamix.config import load_params, to_dict
from dynamix.errors import DynamixError

# MLflow's own use of SQLAlchemy, not ours
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch) -> str:
    """Every test logs into its own sqlite store, never the repo's mlflow.db."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def fake_run(out: Path, market_map: float, night_map: float, purity=None) -> None:
    targets = {
        "market-syn": {"rank1": market_map + 0.1, "mAP": market_map, "mINP": market_map / 2},
        "night-syn": {"rank1": night_map + 0.1, "mAP": night_map, "mINP": night_map / 2},
    }
    metrics = {"targets": targets, "mean_mAP": (market_map + night_map) / 2}
    if purity is not None:
        metrics["label_quality"] = {"before": {"purity": purity[0]}, "after": {"purity": purity[1]}}
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps(metrics))


def test_report_only_aggregates_finished_runs(tmp_path, capsys):
    runs = tmp_path / "runs"
    fake_run(runs / "multi_camera_only" / "seed0", 0.10, 0.30)
    fake_run(runs / "multi_camera_only" / "seed1", 0.20, 0.30)
    fake_run(runs / "dynamix" / "seed0", 0.30, 0.40, purity=(0.9, 0.95))
    report_path = tmp_path / "reports" / "ablation.json"
    argv = ["--report-only", "--seeds", "0", "1", "--out-dir", str(runs), "--report", str(report_path)]
    assert main(argv) == 0
    report = json.loads(report_path.read_text())
    multi = report["multi_camera_only"]
    assert multi["market-syn"]["mAP"] == {"mean": pytest.approx(0.15), "std": pytest.approx(0.05)}
    assert multi["night-syn"]["mINP"]["mean"] == pytest.approx(0.15)
    assert multi["seeds"] == 2 and multi["mean_mAP_per_seed"] == pytest.approx([0.2, 0.25])
    assert report["dynamix"]["seeds"] == 1  # seed 1 not run: left out, not invented
    assert "no_relabeling" not in report
    assert report["purity"] == {"before": pytest.approx(0.9), "after": pytest.approx(0.95)}
    assert report["settings"]["runs_per_variant"] == {"multi_camera_only": 2, "dynamix": 1}
    table = report_path.with_suffix(".md").read_text()
    assert "| multi-camera only | 0.250 ± 0.050 | 0.150 ± 0.050 |" in table
    assert table.splitlines()[2].endswith("| 0.225 ± 0.025 |")  # mean mAP over targets


def test_report_only_without_runs_fails(tmp_path):
    argv = ["--report-only", "--out-dir", str(tmp_path), "--report", str(tmp_path / "r.json")]
    assert main(argv) == 1
    assert not (tmp_path / "r.json").exists()


def ablation_runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("dynamix-ablation")
    return client.search_runs([experiment.experiment_id], order_by=["tags.variant", "tags.seed"])


def key(run) -> tuple[str, str]:
    return run.data.tags["variant"], run.data.tags["seed"]


def test_each_finished_run_is_logged_to_mlflow_once(tmp_path, store):
    runs = tmp_path / "runs"
    fake_run(runs / "no_relabeling" / "seed0", 0.10, 0.30)
    fake_run(runs / "dynamix" / "seed0", 0.30, 0.40, purity=(0.9, 0.95))
    trained = load_params(REPO / "params.yaml", ["train.lr=0.123"])  # what the trainer saved
    (runs / "dynamix" / "seed0" / "params.json").write_text(json.dumps(to_dict(trained)))
    report = str(tmp_path / "ablation.json")
    argv = ["--report-only", "--seeds", "0", "1", "--out-dir", str(runs), "--report", report]
    assert main(argv) == 0
    first = ablation_runs(store)
    assert [key(r) for r in first] == [("dynamix", "0"), ("no_relabeling", "0")]
    dynamix, no_relabeling = first
    assert dynamix.info.run_name == "duke+msmt+cuhk→market+night · dynamix · seed 0"
    assert dynamix.data.metrics["market-syn/mAP"] == pytest.approx(0.30)
    assert dynamix.data.metrics["night-syn/rank1"] == pytest.approx(0.50)
    assert dynamix.data.metrics["mean_mAP"] == pytest.approx(0.35)
    assert dynamix.data.metrics["label_quality/after/purity"] == pytest.approx(0.95)
    assert no_relabeling.data.params["train.relabel.enabled"] == "false"
    assert dynamix.data.params["train.relabel.enabled"] == "true"
    assert dynamix.data.params["train.lr"] == "0.123"  # the run's params.json, not params.yaml
    assert dynamix.data.tags["dynamix.run_dir"] == str(runs / "dynamix" / "seed0")
    assert dynamix.info.status == "FINISHED"

    fake_run(runs / "dynamix" / "seed1", 0.50, 0.60)  # a seed finished since
    shutil.rmtree(runs / "no_relabeling" / "seed0")
    fake_run(runs / "no_relabeling" / "seed0", 0.20, 0.30)  # and one trained again
    assert main(argv) == 0
    again = ablation_runs(store)
    assert [key(r) for r in again] == [("dynamix", "0"), ("dynamix", "1"), ("no_relabeling", "0")]
    assert again[0].info.run_id == dynamix.info.run_id  # updated, not logged twice
    assert again[2].info.run_id == no_relabeling.info.run_id
    assert again[2].data.metrics["market-syn/mAP"] == pytest.approx(0.2)
    assert again[1].info.run_name.endswith("· dynamix · seed 1")


def test_no_mlflow_logs_nothing(tmp_path, store):
    fake_run(tmp_path / "runs" / "dynamix" / "seed0", 0.30, 0.40)
    report = str(tmp_path / "ablation.json")
    argv = ["--report-only", "--seeds", "0", "--out-dir", str(tmp_path / "runs")]
    argv += ["--report", report, "--no-mlflow"]
    assert main(argv) == 0
    assert not (tmp_path / "store").exists()


def test_the_report_explains_relabeling_with_each_actions_precision(tmp_path):
    runs = tmp_path / "runs"
    windows = [
        {
            "event": "relabel",
            "step": 300,
            "images_judged": 100,
            "images_filtered": 10,
            "images_relabeled": 0,
            "ids_merged": 4,
            "filter_precision": 0.2,
            "reassign_precision": float("nan"),
            "merge_precision": 0.5,
        },
        {
            "event": "relabel",
            "step": 450,
            "images_judged": 100,
            "images_filtered": 30,
            "images_relabeled": 2,
            "ids_merged": 0,
            "filter_precision": 0.6,
            "reassign_precision": 1.0,
            "merge_precision": float("nan"),
        },
    ]
    fake_run(runs / "dynamix" / "seed0", 0.30, 0.40)
    (runs / "dynamix" / "seed0" / "log.jsonl").write_text("\n".join(json.dumps(w) for w in windows) + "\n")
    fake_run(runs / "no_relabeling" / "seed0", 0.30, 0.40)
    report_path = tmp_path / "ablation.json"
    argv = ["--report-only", "--seeds", "0", "--out-dir", str(runs), "--report", str(report_path), "--no-mlflow"]
    assert main(argv) == 0
    relabel = json.loads(report_path.read_text())["dynamix"]["relabel"]
    # pooled over windows, weighted by how many actions each window took
    assert relabel["filter_precision"] == pytest.approx((0.2 * 10 + 0.6 * 30) / 40)
    assert relabel["reassign_precision"] == pytest.approx(1.0) and relabel["merge_precision"] == pytest.approx(0.5)
    assert relabel["images_filtered"] == 40 and relabel["ids_merged"] == 4
    assert "relabel" not in json.loads(report_path.read_text())["no_relabeling"]  # no windows: nothing claimed
    table = report_path.with_suffix(".md").read_text()
    assert "| **full DynaMix** | 200 | 40 | 0.50 | 2 | 1.00 | 4 | 0.50 |" in table


def _relabel_windows(out: Path, filtered: int, precision: float) -> None:
    window = {
        "event": "relabel",
        "images_judged": 100,
        "images_filtered": filtered,
        "images_relabeled": 0,
        "ids_merged": 0,
        "filter_precision": precision,
    }
    (out / "log.jsonl").write_text(json.dumps(window) + "\n")


def test_merging_a_report_over_other_seeds_equals_aggregating_all_runs(tmp_path):
    maps = {0: (0.10, 0.30), 1: (0.25, 0.32), 2: (0.16, 0.41)}
    together, first, later = tmp_path / "all", tmp_path / "first", tmp_path / "later"
    for seed, (market, night) in maps.items():
        for root in (together, first if seed < 2 else later):
            out = root / "dynamix" / f"seed{seed}"
            fake_run(out, market, night, purity=(0.9, 0.9 + seed / 100))
            _relabel_windows(out, filtered=10 * (seed + 1), precision=0.1 * (seed + 1))
    common = ["--report-only", "--no-mlflow", "--variants", "dynamix"]
    assert (
        main([*common, "--seeds", "0", "1", "2", "--out-dir", str(together), "--report", str(tmp_path / "a.json")]) == 0
    )
    assert main([*common, "--seeds", "0", "1", "--out-dir", str(first), "--report", str(tmp_path / "b.json")]) == 0
    argv = [*common, "--seeds", "2", "--out-dir", str(later), "--report", str(tmp_path / "c.json")]
    assert main([*argv, "--merge", str(tmp_path / "b.json")]) == 0
    expected, merged = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "c.json"))
    for target in ("market-syn", "night-syn"):
        for metric in ("rank1", "mAP", "mINP"):
            assert merged["dynamix"][target][metric] == pytest.approx(expected["dynamix"][target][metric])
    assert sorted(merged["dynamix"]["mean_mAP_per_seed"]) == pytest.approx(
        sorted(expected["dynamix"]["mean_mAP_per_seed"])
    )
    assert merged["dynamix"]["relabel"] == pytest.approx(expected["dynamix"]["relabel"], nan_ok=True)
    assert merged["dynamix"]["relabel"]["filter_precision"] == pytest.approx((1 + 4 + 9) / 6 / 10)
    assert merged["purity"] == pytest.approx(expected["purity"])
    assert merged["settings"]["seeds"] == [0, 1, 2] and merged["settings"]["runs_per_variant"] == {"dynamix": 3}
    assert merged["dynamix"]["seed_ids"] == [0, 1, 2]  # in seed order, whichever report held them
    assert merged["dynamix"]["mean_mAP_per_seed"] == pytest.approx([0.2, 0.285, 0.285])
    # the same seed in both reports would be counted twice: refused
    with pytest.raises(DynamixError, match=r"seeds \[2\] are in both"):
        main([*argv, "--merge", str(tmp_path / "c.json")])


def test_readme_table_is_rewritten_between_its_markers(tmp_path):
    fake_run(tmp_path / "runs" / "dynamix" / "seed0", 0.30, 0.40)
    fake_run(tmp_path / "runs" / "no_relabeling" / "seed0", 0.20, 0.30)
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n<!-- ablation:begin -->\n| stale |\n<!-- ablation:end -->\n\nAfter.\n")
    argv = ["--report-only", "--no-mlflow", "--seeds", "0", "--out-dir", str(tmp_path / "runs")]
    assert main([*argv, "--report", str(tmp_path / "r.json"), "--write-tables", str(readme)]) == 0
    text = readme.read_text()
    assert (
        "| stale |" not in text and text.startswith("# Title\n") and text.endswith("<!-- ablation:end -->\n\nAfter.\n")
    )
    assert "| + single-camera data, no relabeling | 1 | 0.250 ± 0.000 | +0.100 (1 of 1) | – |" in text
    assert "| **full DynaMix** (`params.yaml`) | 1 | 0.350 ± 0.000 | – | – |" in text
    doc = tmp_path / "ablation.md"
    doc.write_text("<!-- ablation-full:begin -->\nold\n<!-- ablation-full:end -->\n")
    assert main([*argv, "--report", str(tmp_path / "r.json"), "--write-tables", str(doc)]) == 0
    assert "old" not in doc.read_text() and "| **full DynaMix** | 0.400 ± 0.000 | 0.300 ± 0.000 |" in doc.read_text()
    bare = tmp_path / "bare.md"
    bare.write_text("no markers\n")
    with pytest.raises(DynamixError, match=r"bare\.md: no <!-- ablation:begin -->"):
        main([*argv, "--report", str(tmp_path / "r.json"), "--write-tables", str(bare)])
    assert bare.read_text() == "no markers\n"


def test_the_docs_tables_are_the_committed_reports():
    report = json.loads((REPO / "reports" / "ablation.json").read_text())
    fix = "stale: scripts/ablation.py --report-only --write-tables README.md docs/ablation.md"
    assert readme_table(report) in (REPO / "README.md").read_text(), f"README's ablation table is {fix}"
    assert markdown(report) in (REPO / "docs" / "ablation.md").read_text(), f"docs/ablation.md's tables are {fix}"


def test_each_variant_is_compared_with_dynamix_seed_by_seed(tmp_path):
    runs = tmp_path / "runs"
    for seed, (full, without) in enumerate([(0.30, 0.28), (0.20, 0.21), (0.40, 0.35)]):
        fake_run(runs / "dynamix" / f"seed{seed}", full, full)
        fake_run(runs / "no_merge" / f"seed{seed}", without, without)
    report_path = tmp_path / "r.json"
    argv = [
        "--report-only",
        "--no-mlflow",
        "--seeds",
        "2",
        "0",
        "1",
        "--out-dir",
        str(runs),
        "--report",
        str(report_path),
    ]
    assert main(argv) == 0
    vs = json.loads(report_path.read_text())["no_merge"]["vs_dynamix"]
    assert vs["seeds"] == [2, 0, 1] and vs["diff"] == pytest.approx([0.05, 0.02, -0.01])
    assert vs["mean"] == pytest.approx(0.02) and vs["dynamix_ahead"] == 2
    assert "| relabeling without PID merging | +0.050 / +0.020 / -0.010 | +0.020 | 2 of 3 |" in (
        report_path.with_suffix(".md").read_text()
    )


def test_merging_a_missing_or_foreign_report_fails_in_one_line_and_writes_nothing(tmp_path):
    fake_run(tmp_path / "runs" / "dynamix" / "seed0", 0.30, 0.40)
    report = tmp_path / "r.json"
    argv = [
        "--report-only",
        "--no-mlflow",
        "--seeds",
        "0",
        "--out-dir",
        str(tmp_path / "runs"),
        "--report",
        f"{report}",
    ]
    with pytest.raises(DynamixError, match=r"missing\.json: not a readable ablation report"):
        main([*argv, "--merge", str(tmp_path / "missing.json")])
    (tmp_path / "other.json").write_text('{"dynamix": {}}')
    with pytest.raises(DynamixError, match=r"other\.json: no settings\.seeds"):
        main([*argv, "--merge", str(tmp_path / "other.json")])
    assert not report.exists()
    # checked before any run: runs that would take hours never start for a bad report (the
    # variants not run yet would otherwise fail first, on the params file that is not there)
    runs = [a for a in argv if a != "--report-only"] + ["--params", str(tmp_path / "none.yaml")]
    with pytest.raises(DynamixError, match=r"missing\.json"):
        main([*runs, "--merge", str(tmp_path / "missing.json")])
