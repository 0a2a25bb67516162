"""dynamix.evaluation.targets: the one per-target loop, on hand-made features and images.

Known answers from a 2-query × 4-gallery target small enough to rank by hand; the baseline
and the promotion gate through the same loop; the single metric and loss key lists.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dynamix.config import PROMOTION_METRICS, EvaluationConfig, load_params
from dynamix.data.manifest import make_manifest, manifest_path, write_manifest
from dynamix.errors import DynamixError
from dynamix.evaluation import evaluate_features
from dynamix.evaluation.targets import (
    METRIC_KEYS,
    REPORT_KEYS,
    evaluate_encoder,
    plot_ranked,
    select_targets,
    target_splits,
)

REPO = Path(__file__).resolve().parents[1]

# query q0 (pid 1) and q1 (pid 2), both camera 0; g0 shares q0's pid and camera (excluded
# for q0, a plain wrong match for q1). Ranked by cosine: q0 → g1, g2 (hit at 2), g3;
# q1 → g3, g2, g1 (hit at 3), g0.
FEATURES = {
    "q0": [1.0, 0.0],
    "q1": [0.0, 1.0],
    "g0": [1.0, 0.0],
    "g1": [1.0, 0.1],
    "g2": [1.0, 0.5],
    "g3": [0.0, 1.0],
}
QUERY = pd.DataFrame({"path": ["q0", "q1"], "pid": [1, 2], "camid": [0, 0]})
GALLERY = pd.DataFrame({"path": ["g0", "g1", "g2", "g3"], "pid": [1, 2, 1, 3], "camid": [0, 1, 1, 1]})


class Embed:
    """Hand-made features by path; remembers every call (one per query and gallery list)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, paths: list[str]) -> np.ndarray:
        self.calls.append(list(paths))
        return np.asarray([FEATURES[p] for p in paths], dtype=np.float32)  # (N, 2)


def cfg(metric: str = "cosine", max_rank: int = 50) -> EvaluationConfig:
    return EvaluationConfig(max_rank=max_rank, metric=metric, block_size=512)


def test_known_answer_on_a_hand_ranked_target():
    embed = Embed()
    report = evaluate_encoder(embed, {"t": (QUERY, GALLERY)}, cfg(), ranked_queries=2)
    assert embed.calls == [["q0", "q1"], ["g0", "g1", "g2", "g3"]]
    got = report["targets"]["t"]
    assert tuple(got) == REPORT_KEYS  # every key, in display order
    assert got["rank1"] == 0.0 and got["rank5"] == got["rank10"] == 1.0
    assert got["mAP"] == pytest.approx((1 / 2 + 1 / 3) / 2)  # one hit each, at 2 and at 3
    assert got["mINP"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert got["num_valid_query"] == 2
    assert report["mean_mAP"] == pytest.approx(got["mAP"])
    ranked = report["ranked"]["t"]
    assert ranked["rows"] == [0, 1]
    assert ranked["indices"] == [[1, 2, 3, -1], [3, 2, 1, 0]]  # g0 never listed for q0


def test_the_metric_and_max_rank_settings_are_honoured():
    splits = {"t": (QUERY, GALLERY)}
    cos = evaluate_encoder(Embed(), splits, cfg("cosine"), ranked_queries=1)
    euc = evaluate_encoder(Embed(), splits, cfg("euclidean", max_rank=5), ranked_queries=1)
    assert "rank10" not in euc["targets"]["t"] and "rank5" in euc["targets"]["t"]
    # unit-norm features: the same order, but the distances are the metric's own
    assert cos["ranked"]["t"]["indices"] == euc["ranked"]["t"]["indices"]
    sims = np.asarray([1 / math.sqrt(1.01), 1 / math.sqrt(1.25), 0.0])  # q0 vs g1, g2, g3
    np.testing.assert_allclose(cos["ranked"]["t"]["distances"][0][:3], 1 - sims, atol=1e-6)
    np.testing.assert_allclose(euc["ranked"]["t"]["distances"][0][:3], np.sqrt(2 - 2 * sims), atol=1e-6)


def test_no_ranked_queries_means_empty_records_and_extra_keys_on_request():
    report = evaluate_encoder(Embed(), {"t": (QUERY, GALLERY)}, cfg(), keys=(*REPORT_KEYS, "mAP_market_kit"))
    assert report["ranked"]["t"] == {"rows": [], "indices": [], "distances": []}
    assert "mAP_market_kit" in report["targets"]["t"]


def test_one_metric_list_and_one_loss_list_everywhere():
    from dynamix.train import curves
    from flows import pipeline_report, plots

    assert PROMOTION_METRICS == METRIC_KEYS == REPORT_KEYS[:-1]
    assert set(plots.PLOTTED_METRICS) <= set(METRIC_KEYS)
    assert plots.LOSS_KEYS is curves.LOSS_KEYS and "loss_id" in plots.LOSS_KEYS
    assert curves.STEP_KEYS == (*curves.LOSS_KEYS, "lr")
    report = evaluate_encoder(Embed(), {"t": (QUERY, GALLERY)}, cfg())
    (row, mean) = pipeline_report.metrics_table(load_params(REPO / "params.yaml"), report)
    assert list(row) == ["target", *REPORT_KEYS, "gate"] and mean["target"] == "mean"


# ---- target manifests and the baseline, on a handful of solid-colour images ---------------
COLOURS = {1: (200, 30, 30), 2: (30, 200, 30), 3: (30, 30, 200)}


def _world(root: Path) -> Path:
    """Two targets, each: 3 queries (cam 0) and 6 gallery images (cam 1) of pids 1-3."""
    manifests = root / "manifests"
    for name, shade in (("market-syn", 0), ("night-syn", 60)):
        rows = []
        for split, cams, copies in (("query", 0, 1), ("gallery", 1, 2)):
            for pid, rgb in COLOURS.items():
                for i in range(copies):
                    path = root / name / f"{split}_{pid}_{i}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    colour = tuple(max(c - shade + 17 * i, 0) for c in rgb)
                    Image.new("RGB", (16, 32), colour).save(path)
                    rows.append((str(path), pid, cams, split))
        df = pd.DataFrame(rows, columns=["path", "pid", "camid", "split"])
        df = df.assign(domain=name, source_kind="multi_camera")
        write_manifest(make_manifest(df), manifests / f"{name}.parquet")
    return manifests


def _params(manifests: Path, *extra: str):
    return load_params(REPO / "params.yaml", [f"data.manifests_dir={manifests}", *extra])


def test_target_splits_read_each_manifest_through_manifest_path(tmp_path):
    params = _params(_world(tmp_path))
    splits = target_splits(params)
    assert list(splits) == [s.name for s in params.data.targets] == ["market-syn", "night-syn"]
    for name, (query, gallery) in splits.items():
        assert manifest_path(params, name) == tmp_path / "manifests" / f"{name}.parquet"
        assert manifest_path(params.data, name) == manifest_path(params, name)
        assert (len(query), len(gallery)) == (3, 6) and set(query["split"]) == {"query"}
    assert list(select_targets(splits, ["night-syn"])) == ["night-syn"]
    with pytest.raises(DynamixError, match=r"unknown target\(s\) mars"):
        select_targets(splits, ["mars"])
    with pytest.raises(DynamixError, match="manifest not found; run `dynamix prepare`"):
        target_splits(_params(tmp_path / "elsewhere"))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_baseline_numbers_and_ranked_list_follow_evaluation_metric(tmp_path, monkeypatch, metric):
    import dynamix.evaluation.targets as targets
    from dynamix.baseline import describe, evaluate_targets

    params = _params(_world(tmp_path), f"evaluation.metric={metric}")
    drawn: dict[str, dict] = {}

    def spy(query, gallery, ranked, out_path):
        drawn[Path(out_path).name] = ranked
        return plot_ranked(query, gallery, ranked, out_path)

    monkeypatch.setattr(targets, "plot_ranked", spy)
    got = evaluate_targets(params, plots_dir=str(tmp_path / "plots"))
    b = params.baseline
    for name, (query, gallery) in target_splits(params).items():
        qf = describe(query["path"].tolist(), b.stripes, b.bins)
        gf = describe(gallery["path"].tolist(), b.stripes, b.bins)
        ids = [query["pid"], gallery["pid"], query["camid"], gallery["camid"]]
        direct = evaluate_features(
            qf,
            gf,
            *(s.to_numpy() for s in ids),
            max_rank=params.evaluation.max_rank,
            metric=metric,
            block_size=params.evaluation.block_size,
        ).as_dict()
        assert got[name] == direct  # every key, mAP_market_kit too, the same numbers
        assert got[name]["rank1"] == 1.0  # solid colours: the floor is trivially perfect
        ranked = drawn[f"baseline_ranks_{name}.png"]
        last = ranked["indices"][0][-1]  # the farthest listed match: well away from 0
        sim = float(qf[ranked["rows"][0]] @ gf[last])  # descriptors are unit-norm
        want = 1 - sim if metric == "cosine" else math.sqrt(2 - 2 * sim)
        assert ranked["distances"][0][-1] == pytest.approx(want, abs=1e-5)
        assert (tmp_path / "plots" / f"baseline_ranks_{name}.png").stat().st_size > 1000


def test_config_takes_the_metric_list_without_loading_pandas_or_torch():
    import subprocess
    import sys

    code = "import sys, dynamix.config; print(sorted({'pandas', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # `dynamix --help` and config loading stay instant
