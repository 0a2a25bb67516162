"""scripts/relabel_diagnostics.py on hand-made features whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from relabel_diagnostics import diagnose, main

DIM = 8


def world() -> dict[str, np.ndarray]:
    """Person 0 as ids 0 (video a) and 1 (video b): the one true merge; persons 1 and 2 as
    ids 2 and 3; id 2 holds one image of person 2 (a move is right) and id 3 one junk-like
    image of person 1 far from every centroid (a filter is right)."""
    rng = np.random.default_rng(0)
    axis = {0: 0, 1: 3, 2: 6}
    rows, labels, truth, video = [], [], [], []
    for pid, person, vid, n in [(0, 0, "a", 6), (1, 0, "b", 6), (2, 1, "a", 6), (3, 2, "b", 6)]:
        for _ in range(n):
            x = np.zeros(DIM, np.float32)
            x[axis[person]] = 1.0
            rows.append(x + 0.03 * rng.standard_normal(DIM).astype(np.float32))
            labels.append(pid), truth.append(person), video.append(vid)
    odd = np.zeros(DIM, np.float32)
    odd[axis[2]] = 1.0
    rows.append(odd), labels.append(2), truth.append(2), video.append("a")  # belongs to id 3
    junk = np.zeros(DIM, np.float32)
    junk[1] = 1.0
    rows.append(junk), labels.append(3), truth.append(1), video.append("b")
    return {"feats": np.stack(rows), "labels": np.array(labels), "truth": np.array(truth), "video": np.array(video)}


def test_diagnose_scores_filters_moves_and_merges_against_the_truth():
    report = diagnose(world())
    assert report["ids"] == 4 and report["true_duplicate_ids"] == 1
    assert report["purity"] == pytest.approx(24 / 26)
    fixed = report["filter"]["tau_0.5"]
    assert fixed["filtered"] == 2 and fixed["wrong_among_filtered"] == 1.0  # both planted
    assert fixed["purity_kept"] == 1.0
    move = report["move"]["margin_0.1"]
    assert move["moved"] >= 1 and move["right"] == 1.0
    merge = report["merge"]["tau_0.95"]
    assert merge["cross_video_edges"] == 2  # ids 0 <-> 1, both directions
    assert merge["cross_video_precision"] == 1.0 and merge["precision"] == 1.0


def test_cli_reads_a_feature_file_and_writes_the_report(tmp_path, capsys):
    features, out = tmp_path / "f.npz", tmp_path / "r.json"
    np.savez(features, **world())
    assert main(["--features", str(features), "--out", str(out)]) == 0
    assert '"true_duplicate_ids": 1' in out.read_text()
