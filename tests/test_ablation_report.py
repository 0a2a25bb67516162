"""scripts/ablation.py's report from finished runs: schema, mean ± std, missing runs left out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from ablation import main


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
    argv = ["--report-only", "--seeds", "0", "1", "--out-dir", str(runs),
            "--report", str(report_path)]  # fmt: skip
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
