"""The demo's closing table: one aligned row per target, the baseline beside it, the decision."""

import json
from pathlib import Path

import pytest
from demo_summary import main, summary_table

TRAIN = {
    "mean_mAP": 0.3,
    "targets": {
        "market-syn": {"rank1": 0.5, "mAP": 0.25, "mINP": 0.125, "rank5": 0.75},
        "night-syn": {"rank1": 0.25, "mAP": 0.35, "mINP": 0.0625, "rank5": 0.5},
    },
}
BASELINE = {"market-syn": {"mAP": 0.0625, "rank1": 0.1}, "night-syn": {"mAP": 0.125}}
PROMOTION = {"model": "dynamix-reid", "version": 3, "reason": "rejected: night-syn mAP 0.35 < 0.4"}


def _rows(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in text.splitlines()[1:]}


def test_one_row_per_target_with_the_baseline_and_a_mean():
    text = summary_table(TRAIN, BASELINE, PROMOTION)
    header, *_ = text.splitlines()
    assert header.split() == ["target", "Rank-1", "mAP", "mINP", "baseline", "mAP"]
    rows = _rows(text)
    assert rows["market-syn"] == ["0.500", "0.250", "0.125", "0.062"]
    assert rows["night-syn"] == ["0.250", "0.350", "0.062", "0.125"]
    assert rows["mean"] == ["0.375", "0.300", "0.094", "0.094"]  # mAP mean = train's mean_mAP
    assert text.splitlines()[-1] == ("promotion of dynamix-reid v3: rejected: night-syn mAP 0.35 < 0.4")


def test_columns_are_aligned_and_compact():
    lines = summary_table(TRAIN, BASELINE).splitlines()
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header
    assert max(len(line) for line in lines) < 80  # the old `dvc metrics show --md`: ~200


def test_missing_baseline_and_promotion_leave_gaps_not_errors():
    text = summary_table({"targets": {"a": TRAIN["targets"]["market-syn"]}})
    assert _rows(text) == {"a": ["0.500", "0.250", "0.125", "-"]}  # one target: no mean row
    assert "promotion" not in text


def test_main_reads_the_metrics_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "train.json").write_text(json.dumps(TRAIN))
    (tmp_path / "baseline.json").write_text(json.dumps(BASELINE))
    args = ["--train", str(tmp_path / "train.json"), "--baseline", str(tmp_path / "baseline.json")]
    assert main([*args, "--promotion", str(tmp_path / "absent.json")]) == 0
    assert _rows(capsys.readouterr().out)["night-syn"][-1] == "0.125"
    assert main(["--train", str(tmp_path / "absent.json")]) == 1


def test_the_selection_line_names_the_split_best_pt_was_chosen_on():
    train = {**TRAIN, "selected_by": "source-holdout mAP", "best_selection_score": 0.5, "best_step": 400}
    text = summary_table(train, BASELINE, PROMOTION)
    assert "best.pt: step 400, chosen by source-holdout mAP 0.500 (not the targets)" in text.splitlines()
    assert "best.pt" not in summary_table(TRAIN)
