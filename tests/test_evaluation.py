"""Tests of dynamix.evaluation against a plain reference written here, independently.

The reference ranks each query with a stable argsort (the documented tie order: distance,
then gallery index), drops same-pid-same-camera items and computes CMC, AP (mean precision
at the hits, = torchreid/fast-reid), mINP and the Market kit's trapezoid AP in a loop.
"""

from __future__ import annotations

import argparse
import io
import json
import math
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dynamix.errors import DynamixError
from dynamix.evaluation import (
    EvaluationInputError,
    RankResult,
    evaluate_features,
    evaluate_rank,
    pairwise_distance,
    plot_ranked_list,
    topk_from_distmat,
    topk_gallery,
)
from dynamix.evaluation import cli as eval_cli
from dynamix.evaluation.features import prepare_features
from dynamix.evaluation.ranking import order_codes, survivor_keys
from dynamix.evaluation.visualize import BLUE, GREEN, RED, RankedListLayout

TOL = 1e-6


# --------------------------------------------------------------------------- reference
def reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Per-query loop: stable argsort, drop same pid & camera, score the kept list."""
    cmcs, aps, inps, kits = [], [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        hits = (g_pids[order][keep] == q_pids[i]).astype(np.float64)
        if hits.sum() == 0:
            continue
        cum = np.cumsum(hits)
        cmc = np.minimum(cum, 1.0)
        if len(cmc) < max_rank:  # clamp: the curve stays at its last value
            cmc = np.concatenate([cmc, np.full(max_rank - len(cmc), cmc[-1])])
        cmcs.append(cmc[:max_rank])
        precision = cum / np.arange(1, len(hits) + 1)
        aps.append((precision * hits).sum() / hits.sum())
        last = np.flatnonzero(hits)[-1]
        inps.append(cum[last] / (last + 1))
        # Official Market-1501 kit (compute_AP.m): trapezoid between successive precisions.
        ap, old_recall, old_precision, found = 0.0, 0.0, 1.0, 0
        for j, h in enumerate(hits):
            found += int(h)
            recall, prec = found / hits.sum(), found / (j + 1)
            ap += (recall - old_recall) * (old_precision + prec) / 2
            old_recall, old_precision = recall, prec
            if found == hits.sum():
                break
        kits.append(ap)
    if not aps:
        return {"num_valid_query": 0}
    return {
        "cmc": np.mean(cmcs, axis=0),
        "mAP": float(np.mean(aps)),
        "mINP": float(np.mean(inps)),
        "mAP_market_kit": float(np.mean(kits)),
        "num_valid_query": len(aps),
    }


def assert_matches(result: RankResult, ref: dict) -> None:
    assert result.num_valid_query == ref["num_valid_query"]
    np.testing.assert_allclose(result.cmc, ref["cmc"], atol=TOL, rtol=0)
    for key in ("mAP", "mINP", "mAP_market_kit"):
        assert getattr(result, key) == pytest.approx(ref[key], abs=TOL), key


def random_case(seed, num_q, num_g, num_ids, num_cams, dtype=np.float32, structured=True):
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(0, num_ids, num_q)
    g_pids = rng.integers(0, num_ids, num_g)
    q_cams = rng.integers(0, num_cams, num_q)
    g_cams = rng.integers(0, num_cams, num_g)
    dist = rng.random((num_q, num_g))
    if structured:  # positives tend to rank high, like a trained model
        dist -= 0.5 * (q_pids[:, None] == g_pids[None, :]) * rng.random((num_q, num_g))
    return dist.astype(dtype), q_pids, g_pids, q_cams, g_cams


# --------------------------------------------------------------------------- evaluate_rank
CASES = [
    # seed, Q, G, ids, cams, dtype, structured
    (0, 30, 200, 10, 3, np.float32, True),
    (1, 50, 400, 40, 6, np.float32, True),
    (2, 17, 50, 5, 2, np.float64, True),
    (3, 64, 1000, 100, 8, np.float32, False),
    (4, 9, 7, 3, 2, np.float32, True),
    (5, 40, 300, 300, 15, np.float64, True),
    (6, 100, 120, 2, 2, np.float32, False),
    (7, 1, 1000, 20, 4, np.float32, True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"seed{c[0]}")
@pytest.mark.parametrize("block_size", [None, 1, 7])
def test_matches_reference_on_random_inputs(case, block_size):
    seed, q, g, ids, cams, dtype, structured = case
    args = random_case(seed, q, g, ids, cams, dtype, structured)
    result = evaluate_rank(*args, block_size=block_size)
    assert_matches(result, reference(*args))
    assert result.cmc.shape == (50,)


def test_matches_reference_on_many_small_random_inputs():
    rng = np.random.default_rng(123)
    for seed in range(60):
        q, g = rng.integers(1, 40), rng.integers(1, 120)
        ids, cams = rng.integers(1, 12), rng.integers(1, 5)
        dtype = np.float32 if seed % 2 else np.float64
        args = random_case(seed, q, g, ids, cams, dtype, structured=bool(seed % 3))
        ref = reference(*args, max_rank=10)
        if ref["num_valid_query"] == 0:
            with pytest.raises(EvaluationInputError, match="no valid query"):
                evaluate_rank(*args, max_rank=10)
            continue
        assert_matches(evaluate_rank(*args, max_rank=10, block_size=int(rng.integers(1, 9))), ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ties_follow_stable_order(dtype):
    # Distances rounded to one decimal: almost every positive ties with negatives.
    dist, qp, gp, qc, gc = random_case(11, 40, 300, 12, 4, np.float64)
    dist = np.round(dist, 1).astype(dtype)
    assert_matches(evaluate_rank(dist, qp, gp, qc, gc, block_size=6), reference(dist, qp, gp, qc, gc))


def test_tie_order_is_gallery_index():
    # One query, two gallery items at the same distance: the lower index ranks first.
    qp, qc = np.array([1]), np.array([0])
    dist = np.array([[0.5, 0.5]], dtype=np.float32)
    neg_first = evaluate_rank(dist, qp, np.array([2, 1]), qc, np.array([1, 1]))
    pos_first = evaluate_rank(dist, qp, np.array([1, 2]), qc, np.array([1, 1]))
    assert neg_first.mAP == pytest.approx(0.5) and neg_first.rank(1) == 0.0
    assert pos_first.mAP == pytest.approx(1.0) and pos_first.rank(1) == 1.0


def test_all_equal_distances_rank_by_index():
    dist = np.zeros((1, 6), dtype=np.float32)
    gp = np.array([5, 1, 5, 1, 1, 5])  # positives (pid 1) at indices 1, 3, 4
    r = evaluate_rank(dist, np.array([1]), gp, np.array([0]), np.ones(6, int))
    assert r.mAP == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 3)
    assert r.mINP == pytest.approx(3 / 5)


def test_negative_zero_ties_with_positive_zero():
    # -0.0 == +0.0, so index order decides, as in a stable argsort.
    dist = np.array([[0.0, -0.0, 1.0]], dtype=np.float32)
    gp, gc = np.array([2, 1, 1]), np.array([1, 1, 1])
    args = (dist, np.array([1]), gp, np.array([0]), gc)
    assert_matches(evaluate_rank(*args), reference(*args))
    assert evaluate_rank(*args).rank(1) == 0.0


def test_infinite_distances_are_ranked_last():
    dist = np.array([[np.inf, 0.3, 0.1, np.inf]], dtype=np.float32)
    gp, gc = np.array([1, 2, 3, 1]), np.array([1, 1, 1, 1])
    args = (dist, np.array([1]), gp, np.array([0]), gc)
    assert_matches(evaluate_rank(*args), reference(*args))


def test_hand_computed_case():
    # Ranked list: pos, neg, pos, neg  →  AP = (1/1 + 2/3) / 2, mINP = 2/3,
    # kit AP = ((1 + 1)/2 + (1/2 + 2/3)/2) / 2.
    dist = np.array([[0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    r = evaluate_rank(dist, np.array([7]), np.array([7, 3, 7, 3]), np.array([0]), np.ones(4, int))
    assert r.mAP == pytest.approx((1 + 2 / 3) / 2, abs=1e-12)
    assert r.mINP == pytest.approx(2 / 3, abs=1e-12)
    assert r.mAP_market_kit == pytest.approx((1 + (1 / 2 + 2 / 3) / 2) / 2, abs=1e-12)
    assert r.num_valid_query == 1
    assert r.cmc[:3].tolist() == [1.0, 1.0, 1.0]


def test_hand_computed_two_queries():
    # q0: neg, pos → AP 1/2, rank1 0. q1: pos first → AP 1. Means over 2 queries.
    dist = np.array([[0.1, 0.2, 0.9], [0.9, 0.8, 0.1]], dtype=np.float64)
    gp, gc = np.array([9, 1, 2]), np.array([0, 0, 0])
    r = evaluate_rank(dist, np.array([1, 2]), gp, np.array([1, 1]), gc, max_rank=3)
    assert r.cmc.tolist() == [0.5, 1.0, 1.0]
    assert r.mAP == pytest.approx(0.75)
    assert r.mINP == pytest.approx(0.75)
    assert r.mAP_market_kit == pytest.approx((0.25 + 1.0) / 2)
    assert r.as_dict() == {
        "rank1": 0.5,
        "mAP": pytest.approx(0.75),
        "mINP": pytest.approx(0.75),
        "mAP_market_kit": pytest.approx(0.625),
        "num_valid_query": 2,
    }


def test_same_camera_items_are_dropped_not_counted():
    # Gallery: same pid & same camera at the top (dropped), then neg, then pos.
    dist = np.array([[0.0, 0.1, 0.2]], dtype=np.float32)
    r = evaluate_rank(dist, np.array([1]), np.array([1, 4, 1]), np.array([0]), np.array([0, 0, 1]))
    assert r.mAP == pytest.approx(0.5)  # the positive is 2nd of the 2 kept items
    assert r.rank(1) == 0.0 and r.rank(2) == 1.0


def test_queries_without_valid_match_are_skipped_and_counted():
    dist = np.array([[0.1, 0.2], [0.3, 0.4], [0.2, 0.1]], dtype=np.float32)
    gp, gc = np.array([1, 2]), np.array([0, 1])
    qp, qc = np.array([1, 5, 1]), np.array([1, 0, 0])  # q1: unknown pid; q2: same cam only
    r = evaluate_rank(dist, qp, gp, qc, gc)
    assert r.num_valid_query == 1 and r.num_query == 3
    assert r.mAP == 1.0


def test_query_with_only_same_camera_positives_is_skipped():
    dist, qp, gp, qc, gc = random_case(3, 20, 100, 10, 3)
    gp, gc, qp, qc = gp.copy(), gc.copy(), qp.copy(), qc.copy()
    qp[0], qc[0] = 99, 2
    gp[:3], gc[:3] = 99, 2  # pid 99 only on the query's camera
    r = evaluate_rank(dist, qp, gp, qc, gc)
    ref = reference(dist, qp, gp, qc, gc)
    assert_matches(r, ref)
    assert r.num_valid_query == reference(dist[1:], qp[1:], gp, qc[1:], gc)["num_valid_query"]


def test_pid_zero_distractors_are_negatives():
    dist, qp, gp, qc, gc = random_case(21, 30, 300, 10, 4)
    qp, gp = qp + 1, gp.copy() + 1
    gp[::3] = 0  # a third of the gallery are distractors (pid 0)
    dist[:, ::3] -= 0.3  # ... and they sit high in the ranking
    r = evaluate_rank(dist, qp, gp, qc, gc)
    assert_matches(r, reference(dist, qp, gp, qc, gc))
    no_distractors = evaluate_rank(dist[:, gp > 0], qp, gp[gp > 0], qc, gc[gp > 0])
    assert r.mAP < no_distractors.mAP


@pytest.mark.parametrize("num_g", [1, 3, 12])
def test_gallery_shorter_than_max_rank_is_clamped(num_g):
    dist, qp, gp, qc, gc = random_case(5, 10, num_g, 2, 3)
    ref = reference(dist, qp, gp, qc, gc, max_rank=50)
    if ref["num_valid_query"] == 0:
        pytest.skip("no valid query drawn")
    r = evaluate_rank(dist, qp, gp, qc, gc, max_rank=50)
    assert_matches(r, ref)
    assert r.cmc.shape == (50,) and np.all(np.diff(r.cmc) >= 0) and r.cmc[-1] == 1.0


def test_cmc_truncated_at_max_rank_and_as_dict_keys():
    args = random_case(1, 20, 200, 40, 6)
    r = evaluate_rank(*args, max_rank=5)
    assert r.cmc.shape == (5,)
    assert set(r.as_dict()) == {
        "rank1",
        "rank5",
        "mAP",
        "mINP",
        "mAP_market_kit",
        "num_valid_query",
    }
    d = evaluate_rank(*args).as_dict()
    assert set(d) == {
        "rank1",
        "rank5",
        "rank10",
        "mAP",
        "mINP",
        "mAP_market_kit",
        "num_valid_query",
    }
    assert all(isinstance(d[k], float) and 0 <= d[k] <= 1 for k in d if k != "num_valid_query")
    assert isinstance(d["num_valid_query"], int)
    assert d["mAP_market_kit"] <= d["mAP"]


def test_accepts_torch_tensors_and_does_not_modify_inputs():
    args = random_case(2, 15, 80, 6, 3)
    copies = [a.copy() for a in args]
    r_np = evaluate_rank(*args)
    r_t = evaluate_rank(*(torch.from_numpy(a) for a in args))
    assert r_np.mAP == r_t.mAP
    for a, c in zip(args, copies, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_and_dense_survivor_paths_match_reference(dtype):
    # Structured rows keep few survivors (compaction path); unstructured rows with many
    # positives keep most of the row (whole-block path). Both must match the reference.
    sparse = random_case(31, 12, 400, 30, 4, dtype, structured=True)
    dense = random_case(32, 12, 400, 2, 4, dtype, structured=False)
    for args in (sparse, dense):
        assert_matches(evaluate_rank(*args, block_size=4), reference(*args))
    dist = torch.from_numpy(dense[0][:4])
    thr = torch.full((4,), 0.99, dtype=dist.dtype)
    none = torch.zeros(0, dtype=dist.dtype)
    keys, row_start, _, _ = survivor_keys(dist, thr, none, none, col_bits=9)
    assert len(keys) == dist.numel() and row_start.tolist() == [0, 400, 800, 1200]
    keys, _, _, _ = survivor_keys(dist, thr * 0.01, none, none, col_bits=9)
    assert 0 < len(keys) < dist.numel() // 2


def test_order_codes_preserve_order_and_equality():
    vals = np.array([-np.inf, -2.5, -1e-30, -0.0, 0.0, 1e-30, 1.0, 1.0, 3e38, np.inf], np.float32)
    codes = order_codes(torch.from_numpy(vals)).numpy()
    assert np.all(np.diff(codes)[[0, 1, 2, 4, 5, 7, 8]] > 0)
    assert codes[3] == codes[4] and codes[6] == codes[7]
    assert codes.min() >= 0 and codes.max() < 2**32


def test_torch_thread_setting_is_restored():
    before = torch.get_num_threads()
    evaluate_rank(*random_case(0, 10, 50, 5, 3))
    evaluate_features(*feature_case(0))
    assert torch.get_num_threads() == before


def test_float64_holding_float32_values_is_narrowed_exactly():
    from dynamix.evaluation.inputs import narrow_if_exact

    dist32, qp, gp, qc, gc = random_case(12, 30, 200, 10, 3, np.float32)
    dist32 = np.round(dist32, 2)  # with ties
    up = dist32.astype(np.float64)
    assert narrow_if_exact(up).dtype == np.float32
    not_exact = up + 1e-12
    assert narrow_if_exact(not_exact).dtype == np.float64
    assert_matches(evaluate_rank(up, qp, gp, qc, gc), reference(up, qp, gp, qc, gc))
    assert_matches(evaluate_rank(not_exact, qp, gp, qc, gc), reference(not_exact, qp, gp, qc, gc))


@pytest.mark.filterwarnings("error")
def test_read_only_inputs_work_without_warnings():
    # pandas' .to_numpy() and np.load(mmap_mode="r") hand out read-only arrays.
    args = random_case(3, 12, 60, 5, 3)
    feats = feature_case(3)
    for a in (*args, *feats):
        a.flags.writeable = False
    assert_matches(evaluate_rank(*args), reference(*args))
    evaluate_features(*feats)
    topk_from_distmat(args[0], 3, q_pids=args[1], g_pids=args[2], q_camids=args[3], g_camids=args[4])


# --------------------------------------------------------------------------- errors
def test_shape_mismatches_name_the_array():
    dist, qp, gp, qc, gc = random_case(0, 10, 20, 5, 2)
    with pytest.raises(EvaluationInputError, match=r"q_pids has 9 entries but distmat 10×20"):
        evaluate_rank(dist, qp[:9], gp, qc, gc)
    with pytest.raises(EvaluationInputError, match=r"g_camids has 19 entries"):
        evaluate_rank(dist, qp, gp, qc, gc[:19])
    with pytest.raises(EvaluationInputError, match="must be 2-D"):
        evaluate_rank(dist[0], qp, gp, qc, gc)
    with pytest.raises(EvaluationInputError, match="integers"):
        evaluate_rank(dist, qp.astype(float), gp, qc, gc)
    with pytest.raises(EvaluationInputError, match="max_rank"):
        evaluate_rank(dist, qp, gp, qc, gc, max_rank=0)


def test_errors_are_one_line_dynamix_errors():
    dist, qp, gp, qc, gc = random_case(0, 10, 20, 5, 2)
    with pytest.raises(DynamixError) as info:
        evaluate_rank(dist, qp, gp[:3], qc, gc)
    assert "\n" not in str(info.value)


def test_zero_valid_queries_raise():
    dist, qp, gp, qc, gc = random_case(0, 10, 20, 5, 1)  # one camera: no positives
    with pytest.raises(EvaluationInputError, match="no valid query"):
        evaluate_rank(dist, qp, gp, qc, gc)


def test_nan_distances_raise():
    dist, qp, gp, qc, gc = random_case(0, 10, 20, 5, 2)
    dist[3, 4] = np.nan
    with pytest.raises(EvaluationInputError, match="1 NaN"):
        evaluate_rank(dist, qp, gp, qc, gc)


def test_feature_errors():
    rng = np.random.default_rng(0)
    qf, gf = rng.random((4, 8), dtype=np.float32), rng.random((6, 8), dtype=np.float32)
    ids = (np.zeros(4, int), np.zeros(6, int), np.zeros(4, int), np.ones(6, int))
    with pytest.raises(EvaluationInputError, match="dimension 8 but g_feats has 5"):
        evaluate_features(qf, gf[:, :5], *ids)
    with pytest.raises(EvaluationInputError, match="g_pids has 6 entries but features 4×5"):
        evaluate_features(qf, gf[:5], *ids)
    with pytest.raises(EvaluationInputError, match="metric"):
        evaluate_features(qf, gf, *ids, metric="hamming")
    bad = qf.copy()
    bad[0, 0] = np.inf
    with pytest.raises(EvaluationInputError, match="q_feats contains NaN or infinite"):
        evaluate_features(bad, gf, *ids)


# --------------------------------------------------------------------------- features
def feature_case(seed, num_q=60, num_g=250, dim=16, num_ids=20, num_cams=4):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((num_ids, dim))
    qp, gp = rng.integers(0, num_ids, num_q), rng.integers(0, num_ids, num_g)
    qf = (centers[qp] + rng.standard_normal((num_q, dim))).astype(np.float32)
    gf = (centers[gp] + rng.standard_normal((num_g, dim))).astype(np.float32)
    return qf, gf, qp, gp, rng.integers(0, num_cams, num_q), rng.integers(0, num_cams, num_g)


def explicit_distmat(qf, gf, metric, normalize=True):
    dev = torch.device("cpu")
    q = prepare_features(torch.from_numpy(qf), dev, metric, normalize)
    g = prepare_features(torch.from_numpy(gf), dev, metric, normalize)
    return pairwise_distance(q, g, metric).numpy()


@pytest.mark.parametrize("metric,normalize", [("cosine", True), ("euclidean", True), ("euclidean", False)])
@pytest.mark.parametrize("block_size", [None, 1, 7, 64, 1000])
def test_features_equal_explicit_distmat(metric, normalize, block_size):
    qf, gf, *ids = feature_case(4)
    dist = explicit_distmat(qf, gf, metric, normalize)
    expected = evaluate_rank(dist, *ids)
    got = evaluate_features(qf, gf, *ids, metric=metric, normalize=normalize, block_size=block_size)
    assert got.num_valid_query == expected.num_valid_query
    np.testing.assert_allclose(got.cmc, expected.cmc, atol=TOL, rtol=0)
    assert got.mAP == pytest.approx(expected.mAP, abs=TOL)
    assert got.mINP == pytest.approx(expected.mINP, abs=TOL)
    assert got.mAP_market_kit == pytest.approx(expected.mAP_market_kit, abs=TOL)
    assert_matches(got, reference(dist, *ids))


def test_cosine_distance_is_one_minus_cosine_similarity():
    qf, gf, *_ = feature_case(1, num_q=5, num_g=9)
    dist = explicit_distmat(qf, gf, "cosine")
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    np.testing.assert_allclose(dist, 1 - qn @ gn.T, atol=1e-5)
    assert dist.dtype == np.float32


def test_features_accept_torch_and_scale_invariance():
    qf, gf, *ids = feature_case(2)
    r1 = evaluate_features(qf, gf, *ids)
    r2 = evaluate_features(torch.from_numpy(qf) * 3.0, torch.from_numpy(gf), *ids)
    assert r1.mAP == pytest.approx(r2.mAP, abs=TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pure_torch_branches_match_reference(monkeypatch, dtype):
    # The GPU runs the torch branches of the ranking code; exercise them here on the CPU.
    import dynamix.evaluation.ranking as ranking

    monkeypatch.setattr(ranking, "NUMPY_ON_CPU", False)
    for args in (
        random_case(41, 20, 300, 10, 4, dtype, structured=True),
        random_case(42, 20, 300, 2, 4, dtype, structured=False),
    ):
        tied = (np.round(args[0], 1), *args[1:])
        for a in (args, tied):
            assert_matches(evaluate_rank(*a, block_size=6), reference(*a))
    qf, gf, *ids = feature_case(5)
    dist = explicit_distmat(qf, gf, "cosine")
    assert_matches(evaluate_features(qf, gf, *ids, block_size=9), reference(dist, *ids))
    kw = dict(zip(("q_pids", "g_pids", "q_camids", "g_camids"), ids, strict=True))
    top = topk_from_distmat(np.round(dist, 1).astype(dtype), 6, **kw)
    np.testing.assert_array_equal(top.indices, reference_topk(np.round(dist, 1), 6, *ids))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_features_on_cuda_equal_cpu():
    qf, gf, *ids = feature_case(3, num_q=300, num_g=2000, dim=64)
    cpu = evaluate_features(qf, gf, *ids)
    gpu = evaluate_features(qf, gf, *ids, device="cuda", block_size=100)
    assert gpu.mAP == pytest.approx(cpu.mAP, abs=1e-5)
    np.testing.assert_allclose(gpu.cmc, cpu.cmc, atol=1e-5)


# --------------------------------------------------------------------------- top-k
def reference_topk(dist, k, qp, gp, qc, gc):
    out = np.full((len(dist), k), -1)
    for i, row in enumerate(dist):
        order = np.argsort(row, kind="stable")
        order = order[~((gp[order] == qp[i]) & (gc[order] == qc[i]))][:k]
        out[i, : len(order)] = order
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_from_distmat_matches_stable_argsort_with_exclusion(dtype):
    dist, qp, gp, qc, gc = random_case(8, 20, 60, 6, 3, dtype)
    dist = np.round(dist, 1)  # many ties
    top = topk_from_distmat(dist, 10, q_pids=qp, g_pids=gp, q_camids=qc, g_camids=gc, block_size=3)
    np.testing.assert_array_equal(top.indices, reference_topk(dist, 10, qp, gp, qc, gc))
    np.testing.assert_array_equal(top.distances, np.take_along_axis(dist, top.indices, 1))
    raw = topk_from_distmat(dist, 5)
    np.testing.assert_array_equal(raw.indices, np.argsort(dist, axis=1, kind="stable")[:, :5])


def test_topk_pads_when_fewer_than_k_remain():
    dist = np.array([[0.3, 0.1, 0.2]], dtype=np.float32)
    top = topk_from_distmat(dist, 5, q_pids=[1], g_pids=[1, 1, 2], q_camids=[0], g_camids=[0, 1, 1])
    assert top.indices.tolist() == [[1, 2, -1, -1, -1]]
    assert top.distances[0, 2:].tolist() == [math.inf] * 3


def test_topk_gallery_matches_distmat_path():
    qf, gf, *ids = feature_case(6)
    dist = explicit_distmat(qf, gf, "cosine")
    kw = dict(q_pids=ids[0], g_pids=ids[1], q_camids=ids[2], g_camids=ids[3])
    top_f = topk_gallery(qf, gf, 8, block_size=13, **kw)
    top_d = topk_from_distmat(dist, 8, **kw)
    np.testing.assert_array_equal(top_f.indices, top_d.indices)
    np.testing.assert_array_equal(top_f.indices, reference_topk(dist, 8, *ids))


# --------------------------------------------------------------------------- CLI
def run_cli(argv):
    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out = io.StringIO()
    with redirect_stdout(out):
        rc = args.func(args)
    return rc, out.getvalue()


def test_cli_prints_metrics_json(tmp_path: Path):
    dist, qp, gp, qc, gc = random_case(9, 30, 200, 10, 3)
    path = tmp_path / "dm.npz"
    np.savez(path, distmat=dist, q_pids=qp, g_pids=gp, q_camids=qc, g_camids=gc)
    rc, stdout = run_cli(["evaluate-distmat", str(path), "--max-rank", "20"])
    assert rc == 0
    metrics = json.loads(stdout)
    expected = evaluate_rank(dist, qp, gp, qc, gc, max_rank=20).as_dict()
    assert metrics == pytest.approx(expected)
    ref = reference(dist, qp, gp, qc, gc, max_rank=20)
    assert metrics["mAP"] == pytest.approx(ref["mAP"], abs=TOL)


def test_cli_missing_keys_and_file(tmp_path: Path):
    path = tmp_path / "partial.npz"
    np.savez(path, distmat=np.zeros((2, 2)), q_pids=np.zeros(2, int))
    with pytest.raises(DynamixError, match=r"partial\.npz: missing key\(s\) g_pids, q_camids, g_camids"):
        run_cli(["evaluate-distmat", str(path)])
    with pytest.raises(DynamixError, match=r"nope\.npz: no such file"):
        run_cli(["evaluate-distmat", str(tmp_path / "nope.npz")])
    bad = tmp_path / "bad.npz"
    np.savez(
        bad,
        distmat=np.zeros((2, 2)),
        q_pids=np.zeros(3, int),
        g_pids=np.zeros(2, int),
        q_camids=np.zeros(2, int),
        g_camids=np.zeros(2, int),
    )
    with pytest.raises(DynamixError, match=r"bad\.npz: q_pids has 3 entries"):
        run_cli(["evaluate-distmat", str(bad)])


def test_dynamix_main_reports_errors_on_one_line(tmp_path: Path, capsys):
    from dynamix.cli import main

    path = tmp_path / "partial.npz"
    np.savez(path, distmat=np.zeros((2, 2)))
    assert main(["evaluate-distmat", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dynamix evaluate-distmat: error:") and "\n" not in err
    assert "partial.npz" in err and "q_pids" in err


# --------------------------------------------------------------------------- picture
def make_images(root: Path, n: int, prefix: str) -> list[str]:
    paths = []
    for i in range(n):
        p = root / f"{prefix}{i}.png"
        Image.new("RGB", (32, 64), (128, 128, 128)).save(p)  # neutral grey: borders stand out
        paths.append(str(p))
    return paths


def test_ranked_list_png_layout_and_border_colours(tmp_path: Path):
    # Query i has pid i on camera 0; gallery item j has pid j % 3 on camera 1, and the
    # distance order of query i is the gallery index order: matches are known exactly.
    qp, qc = np.arange(3), np.zeros(3, int)
    gp, gc = np.arange(12) % 3, np.ones(12, int)
    dist = np.tile(np.linspace(0.1, 0.9, 12, dtype=np.float32), (3, 1))
    out = plot_ranked_list(
        make_images(tmp_path, 3, "q"),
        make_images(tmp_path, 12, "g"),
        dist,
        qp,
        gp,
        qc,
        gc,
        tmp_path / "sub" / "ranks.png",
        topk=4,
        num_queries=2,
    )
    layout = RankedListLayout(topk=4, num_rows=2)
    with Image.open(out) as img:
        img.load()
        assert img.format == "PNG" and img.size == layout.size
        rgb = img.convert("RGB")
    for row in range(2):
        x, y = layout.tile_origin(row, 0)
        assert rgb.getpixel((x + 1, y + 1)) == BLUE
        for j in range(4):  # gallery j has pid j % 3: a match iff j % 3 == row
            x, y = layout.tile_origin(row, j + 1)
            expected = GREEN if j % 3 == row else RED
            assert rgb.getpixel((x + 1, y + 1)) == expected, (row, j)
            assert rgb.getpixel((x + layout.border + 5, y + layout.border + 5)) == (128, 128, 128)
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left no temp file


def test_ranked_list_from_indices_skips_same_camera_items(tmp_path: Path):
    qp, qc = np.array([1]), np.array([0])
    gp, gc = np.array([1, 1, 2]), np.array([0, 1, 1])
    out = plot_ranked_list(
        make_images(tmp_path, 1, "q"),
        make_images(tmp_path, 3, "g"),
        np.array([[0, 1, 2]]),
        qp,
        gp,
        qc,
        gc,
        tmp_path / "r.png",
        topk=3,
    )
    layout = RankedListLayout(topk=3, num_rows=1)
    rgb = Image.open(out).convert("RGB")
    colours = [rgb.getpixel(tuple(np.add(layout.tile_origin(0, j), 1))) for j in (1, 2, 3)]
    assert colours[:2] == [GREEN, RED]  # item 0 (same pid, same camera) was skipped
    assert colours[2] not in (GREEN, RED)  # nothing left for the 3rd slot


def test_ranked_list_from_topk_with_chosen_queries(tmp_path: Path):
    qf, gf, *ids = feature_case(7, num_q=6, num_g=20)
    top = topk_gallery(qf, gf, 3, q_pids=ids[0], g_pids=ids[1], q_camids=ids[2], g_camids=ids[3])
    out = plot_ranked_list(
        make_images(tmp_path, 6, "q"),
        make_images(tmp_path, 20, "g"),
        top,
        *ids,
        tmp_path / "t.png",
        topk=3,
        query_indices=[5, 2],
    )
    layout = RankedListLayout(topk=3, num_rows=2)
    rgb = Image.open(out).convert("RGB")
    assert rgb.size == layout.size
    for row, q in enumerate([5, 2]):
        for j in range(3):
            g = top.indices[q, j]
            want = GREEN if ids[1][g] == ids[0][q] else RED
            assert rgb.getpixel(tuple(np.add(layout.tile_origin(row, j + 1), 1))) == want


def test_ranked_list_missing_image_is_a_one_line_error(tmp_path: Path):
    dist = np.zeros((1, 1), dtype=np.float32)
    with pytest.raises(DynamixError, match=r"missing\.jpg: cannot read image"):
        plot_ranked_list(
            [str(tmp_path / "missing.jpg")],
            make_images(tmp_path, 1, "g"),
            dist,
            [0],
            [0],
            [0],
            [1],
            tmp_path / "r.png",
            topk=1,
        )
