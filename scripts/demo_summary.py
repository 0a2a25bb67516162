"""The demo's last words: one row per target, the baseline beside it, the promotion decision.

``bash scripts/run.sh demo`` ends with this instead of ``dvc metrics show --md``, whose one
row per metrics file runs to ~200 columns. It reads the files the pipeline just wrote:

    python scripts/demo_summary.py [--train metrics/train.json] [--baseline metrics/baseline.json]
                                   [--promotion metrics/promotion.json]

A missing baseline or promotion file leaves its column or line out (``-`` / no line), so the
summary also works after a partial ``dvc repro``; a missing train file is an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = (("Rank-1", "rank1"), ("mAP", "mAP"), ("mINP", "mINP"))
BASELINE_HEADER = "baseline mAP"


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _mean(column: tuple[float | None, ...]) -> float | None:
    numbers = [value for value in column if value is not None]
    return sum(numbers) / len(column) if len(numbers) == len(column) else None


def summary_table(
    train: dict[str, Any],
    baseline: dict[str, Any] | None = None,
    promotion: dict[str, Any] | None = None,
) -> str:
    """The per-target table (and the decision line) as plain text, aligned for a terminal.

    ``train`` is ``metrics/train.json`` (``{"targets": {name: {rank1, mAP, mINP, ...}}}``),
    ``baseline`` is ``metrics/baseline.json`` (``{name: {mAP, ...}}``) and ``promotion`` is
    ``metrics/promotion.json`` (``{model, version, reason, ...}``).
    """
    baseline = baseline or {}
    header = ["target", *(title for title, _ in COLUMNS), BASELINE_HEADER]
    values = []  # one row of numbers (None: not there) per target
    for target, metrics in train["targets"].items():
        base = baseline.get(target, {}).get("mAP")
        values.append((target, [*(metrics.get(key) for _, key in COLUMNS), base]))
    if len(values) > 1:  # the unweighted mean over targets, as train.json's mean_mAP
        columns = zip(*(numbers for _, numbers in values), strict=True)
        values.append(("mean", [_mean(column) for column in columns]))
    rows = [[name, *(_cell(v) for v in numbers)] for name, numbers in values]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    if train.get("selected_by"):
        score = train.get("best_selection_score")
        value = "" if score is None else f" {score:.3f}"
        lines.append(
            f"best.pt: step {train.get('best_step')}, chosen by {train['selected_by']}{value} (not the targets)"
        )
    if promotion:
        name, version = promotion.get("model", "model"), promotion.get("version", "?")
        lines.append(f"promotion of {name} v{version}: {promotion.get('reason', '')}")
    return "\n".join(lines)


def _load(path: Path, required: bool) -> dict[str, Any] | None:
    if path.is_file():
        return json.loads(path.read_text())
    if required:
        raise FileNotFoundError(f"{path} not found: has `dvc repro` run the train stage?")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=Path("metrics/train.json"))
    parser.add_argument("--baseline", type=Path, default=Path("metrics/baseline.json"))
    parser.add_argument("--promotion", type=Path, default=Path("metrics/promotion.json"))
    args = parser.parse_args(argv)
    try:
        train = _load(args.train, required=True)
    except FileNotFoundError as err:
        print(f"demo_summary: {err}", file=sys.stderr)
        return 1
    assert train is not None
    baseline = _load(args.baseline, required=False)
    promotion = _load(args.promotion, required=False)
    print(summary_table(train, baseline, promotion))
    return 0


if __name__ == "__main__":
    sys.exit(main())
