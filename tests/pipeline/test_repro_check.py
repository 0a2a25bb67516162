"""The CI reproducibility job (scripts/repro_check.py) on the session's tiny DVC repo: it
passes against the committed reference, and fails, naming the metric, when a reference
metric or a rerun's relabeling statistic drifts beyond its tolerance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import repro_check
from repro_check import REFERENCE, flatten, main, tolerance
from tiny_pipeline import sh


@pytest.fixture
def repo(tiny_dvc_repo) -> Path:
    return tiny_dvc_repo.repo.root


def test_every_reference_metric_but_best_step_is_gated():
    ref = flatten(json.loads(REFERENCE.read_text()))
    numeric = {k for k, v in ref.items() if repro_check.is_number(v)}
    assert {k for k in numeric if tolerance(k) is None} == {"best_step"}
    assert tolerance("targets.market-syn.rank1") == 0.05 and tolerance("step") == 0.0


def test_an_unperturbed_run_matches_the_committed_reference(repo, capsys):
    assert main(["--reuse", str(repo)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "| Path" in out and "| targets.market-syn.rank1" in out  # dvc metrics diff --md
    assert "reproducibility check passed" in out
    status = sh(repo, "dvc", "status").stdout  # the run's own metrics are back in place
    assert status.strip() == "Data and pipelines are up to date.", status


def test_a_metric_drifted_beyond_tolerance_fails_and_is_named(repo, tmp_path, capsys):
    ref = json.loads(REFERENCE.read_text())
    ref["targets"]["market-syn"]["rank1"] += 0.1  # beyond 0.05
    ref["targets"]["night-syn"]["mAP"] -= 0.03  # beyond 0.02
    ref["targets"]["night-syn"]["rank5"] += 0.04  # within 0.05: not a drift
    perturbed = tmp_path / "reference.json"
    perturbed.write_text(json.dumps(ref))

    assert main(["--reuse", str(repo), "--reference", str(perturbed)]) == 1
    out, err = capsys.readouterr()
    drifts = [line for line in err.splitlines() if "drift:" in line]
    assert len(drifts) == 2, err
    assert "targets.market-syn.rank1" in drifts[0] and "beyond tolerance 0.05" in drifts[0]
    assert "targets.night-syn.mAP" in drifts[1] and "beyond tolerance 0.02" in drifts[1]
    rank1 = next(row for row in out.splitlines() if "| targets.market-syn.rank1 " in row)
    assert "| -0.1 " in rank1, rank1  # the readable diff: workspace minus reference


def test_a_rerun_that_differs_fails_and_names_the_statistic(repo, tmp_path, capsys):
    other = tmp_path / "run_b"  # what the rerun check reads of a second run
    for rel in ("metrics/train.json", "runs/train/log.jsonl"):
        (other / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repo / rel, other / rel)
    log = other / "runs/train/log.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    relabel = [e for e in events if e["event"] == "relabel"]
    for e in relabel:
        e["seconds"] += 1.0  # wall clock: never compared
    write_log(log, events)
    assert main(["--reuse", str(repo), "--reuse", str(other)]) == 0
    assert "agree within 1e-06" in capsys.readouterr().out

    relabel[1]["images_relabeled"] += 1
    write_log(log, events)
    assert main(["--reuse", str(repo), "--reuse", str(other)]) == 1
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "rerun differs" in line]
    assert "relabel.1.images_relabeled" in line


def write_log(path: Path, events: list[dict]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
