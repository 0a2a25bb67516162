"""Training curves as small CSV tables, for ``dvc plots`` and for anyone with a spreadsheet.

``log.jsonl`` holds every event of a run; DVC plots want one flat table per plot. This
module writes three tables from the log (atomically): ``steps.csv`` (losses, lr and
throughput every ``every`` steps), ``eval.csv`` (one row per target per evaluation) and
``relabel.csv`` (one row per relabeling window). ``dvc plots diff`` then compares runs.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from dynamix.evaluation.targets import METRIC_KEYS
from dynamix.io import atomic_path

#: The losses a training step logs (``loss_<part>`` for every part the trainer sums; a
#: part that is switched off is simply absent); the CSV curves and the PNG plots use these.
LOSS_KEYS = ("loss", "loss_centroid", "loss_id", "loss_triplet", "loss_consistency")
STEP_KEYS = (*LOSS_KEYS, "lr")
#: One row per relabeling window. The precisions are measured against the
#: synthetic ground truth, for reporting only: share of the filtered images that were
#: mislabelled, of the moved images that went to their true person, of the merge edges
#: that joined one person (empty where nothing was done or no truth exists). Then the
#: thresholds the window applied, and 1 where the collapse guard rejected its merge.
RELABEL_KEYS = (
    "images_judged",
    "images_filtered",
    "images_relabeled",
    "ids_merged",
    "ids_remaining",
    "filter_precision",
    "reassign_precision",
    "merge_precision",
    "purity_before",
    "purity",
    "fragmentation",
    "ari",
    "filter_threshold",
    "merge_threshold",
    "merge_rejected",
)


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(buf.getvalue())
    return path


def read_log(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_curves(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], every: int = 10) -> list[Path]:
    """Write ``steps.csv``, ``eval.csv`` and ``relabel.csv`` of ``run_dir`` into ``out_dir``."""
    events = read_log(run_dir)
    out = Path(out_dir)
    steps = [e for e in events if e["event"] == "step"]
    keys = [k for k in STEP_KEYS if any(k in e for e in steps)]
    step_rows = [
        [e["step"], *(e.get(k) for k in keys)] for e in steps if e["step"] % max(every, 1) == 0 or e is steps[-1]
    ]
    eval_rows = []
    for e in (e for e in events if e["event"] == "eval"):
        targets = sorted({k.split("/", 1)[0] for k in e if "/" in k})
        for t in targets:
            eval_rows.append([e["step"], t, *(e.get(f"{t}/{k}") for k in METRIC_KEYS)])
    relabel_rows = [[e["step"], *(e.get(k) for k in RELABEL_KEYS)] for e in events if e["event"] == "relabel"]
    return [
        _write_csv(out / "steps.csv", ["step", *keys], step_rows),
        _write_csv(out / "eval.csv", ["step", "target", *METRIC_KEYS], eval_rows),
        _write_csv(out / "relabel.csv", ["step", *RELABEL_KEYS], relabel_rows),
    ]
