"""Evaluation benchmarks: Market-1501-sized distance matrix, MSMT17-sized features.

Inputs are synthetic with identity structure (an id centre + camera bias + noise per
image), so positives rank high as with a trained model; the noise level is chosen so
that mAP lands near published supervised numbers. The baseline is the plain per-query
loop of torchreid's ``eval_market1501`` (argsort every row, then CMC/AP/mINP), with its
Python list comprehension vectorised so that the comparison is with a fair numpy loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from common import Measurement, benchmark, peak_rss_gib, reset_peak_rss, summary, time_best


def argsort_loop(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50) -> dict[str, float]:
    """torchreid-style evaluation: one np.argsort per query (the baseline)."""
    all_cmc, all_ap, all_inp = [], [], []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q])
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        raw_cmc = (g_pids[order] == q_pids[q])[keep].astype(np.int32)
        if not raw_cmc.any():
            continue
        cmc = raw_cmc.cumsum()
        last = np.flatnonzero(raw_cmc)[-1]
        all_inp.append(cmc[last] / (last + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        precision = raw_cmc.cumsum() / np.arange(1, len(raw_cmc) + 1)
        all_ap.append((precision * raw_cmc).sum() / raw_cmc.sum())
    return {
        "rank1": float(np.mean([c[0] for c in all_cmc])),
        "mAP": float(np.mean(all_ap)),
        "mINP": float(np.mean(all_inp)),
        "num_valid_query": len(all_ap),
    }


def torchreid_literal_loop(distmat, q_pids, g_pids, q_camids, g_camids) -> None:
    """The AP step exactly as torchreid's python path writes it (a list comprehension)."""
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q])
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        raw_cmc = (g_pids[order] == q_pids[q])[keep].astype(np.int32)
        tmp_cmc = raw_cmc.cumsum()
        tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
        (np.asarray(tmp_cmc) * raw_cmc).sum()


def identity_ids(rng: np.random.Generator, n: int, num_ids: int, cover: bool) -> np.ndarray:
    """``n`` pids in [0, num_ids); ``cover`` puts every id in at least once."""
    if cover and n >= num_ids:
        return np.concatenate([np.arange(num_ids), rng.integers(0, num_ids, n - num_ids)])
    return rng.integers(0, num_ids, n)


def synthetic_features(
    rng: np.random.Generator,
    pids: np.ndarray,
    camids: np.ndarray,
    centres: np.ndarray,
    cam_bias: np.ndarray,
    sigma: float,
) -> np.ndarray:
    """(N, D) float32: id centre + camera bias + Gaussian noise."""
    feats = rng.standard_normal((len(pids), centres.shape[1]), dtype=np.float32)
    feats *= sigma
    feats += centres[pids]
    feats += cam_bias[camids]
    return feats


def market_case(quick: bool, structured: bool = True) -> tuple[tuple[np.ndarray, ...], dict]:
    """(distmat, q_pids, g_pids, q_camids, g_camids) at Market-1501 size (÷4 if quick)."""
    scale = 4 if quick else 1
    num_q, num_g, num_ids, distractors = 3368 // scale, 15913 // scale, 750 // scale, 2793 // scale
    dim, cams, sigma = 128, 6, 1.3
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((num_ids, dim), dtype=np.float32)
    bias = 0.3 * rng.standard_normal((cams, dim), dtype=np.float32)
    q_pids = identity_ids(rng, num_q, num_ids, cover=True)
    g_pids = identity_ids(rng, num_g - distractors, num_ids, cover=True)
    q_cams, g_cams = rng.integers(0, cams, num_q), rng.integers(0, cams, num_g)
    qf = synthetic_features(rng, q_pids, q_cams, centres, bias, sigma)
    gf = synthetic_features(rng, g_pids, g_cams[: len(g_pids)], centres, bias, sigma)
    gf = np.concatenate([gf, rng.standard_normal((distractors, dim), dtype=np.float32)])
    qf /= np.linalg.norm(qf, axis=1, keepdims=True)
    gf /= np.linalg.norm(gf, axis=1, keepdims=True)
    dist = (1.0 - qf @ gf.T).astype(np.float32)
    if not structured:  # worst case for rank-only evaluation: positives anywhere
        dist = rng.random(dist.shape, dtype=np.float32)
    # pid 0 = distractor, as in Market-1501; real ids start at 1.
    g_pids = np.concatenate([g_pids + 1, np.zeros(distractors, dtype=np.int64)])
    params = {
        "num_query": num_q,
        "num_gallery": num_g,
        "num_ids": num_ids,
        "distractors_pid0": distractors,
        "cameras": cams,
        "dtype": "float32",
        "structure": f"features dim {dim}, noise sigma {sigma}"
        if structured
        else "uniform random distances (worst case)",
    }
    return (dist, q_pids + 1, g_pids, q_cams, g_cams), params


def _market(quick: bool, structured: bool) -> Measurement:
    from dynamix.evaluation import evaluate_rank

    args, params = market_case(quick, structured)
    evaluate_rank(*args)  # warm-up: imports, allocator
    reset_peak_rss()
    best, times, result = time_best(lambda: evaluate_rank(*args), repeats=7)
    peak = peak_rss_gib()
    base, base_times, ref = time_best(lambda: argsort_loop(*args), repeats=3)
    if abs(ref["mAP"] - result.mAP) > 1e-6 or ref["num_valid_query"] != result.num_valid_query:
        raise AssertionError(f"evaluate_rank {result.as_dict()} disagrees with the loop {ref}")
    params.update(
        metrics={k: round(v, 4) for k, v in result.as_dict().items()},
        seconds_runs=summary(times),
        baseline_runs=summary(base_times),
        baseline="per-query np.argsort loop (torchreid eval_market1501, AP vectorised)",
    )
    if not quick and structured:
        n = 200
        dist, qp, gp, qc, gc = args
        sub = (dist[:n], qp[:n], gp, qc[:n], gc)
        t, _, _ = time_best(lambda: torchreid_literal_loop(*sub), repeats=1)
        params["torchreid_literal_seconds_extrapolated"] = round(t * len(dist) / n, 1)
        params["torchreid_literal_note"] = f"list-comprehension AP, timed on {n} queries"
    return Measurement(seconds=best, peak_rss_gib=peak, baseline_seconds=base, params=params)


@benchmark("eval_market", "evaluate_rank on a Market-1501-sized float32 distance matrix")
def eval_market(quick: bool) -> Measurement:
    return _market(quick, structured=True)


@benchmark("eval_market_unstructured", "evaluate_rank on uniform random distances (worst case)")
def eval_market_unstructured(quick: bool) -> Measurement:
    return _market(quick, structured=False)


def msmt_case(quick: bool) -> tuple[tuple[Any, ...], dict]:
    """MSMT17-sized (÷10 if quick) query/gallery features, dim 768, 15 cameras."""
    scale = 10 if quick else 1
    num_q, num_g, num_ids, dim, cams, sigma = (
        11659 // scale,
        82161 // scale,
        3060 // scale,
        768,
        15,
        2.3,
    )
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((num_ids, dim), dtype=np.float32)
    bias = 0.3 * rng.standard_normal((cams, dim), dtype=np.float32)
    q_pids = identity_ids(rng, num_q, num_ids, cover=False)
    g_pids = identity_ids(rng, num_g, num_ids, cover=True)
    q_cams, g_cams = rng.integers(0, cams, num_q), rng.integers(0, cams, num_g)
    qf = synthetic_features(rng, q_pids, q_cams, centres, bias, sigma)
    gf = synthetic_features(rng, g_pids, g_cams, centres, bias, sigma)
    params = {
        "num_query": num_q,
        "num_gallery": num_g,
        "dim": dim,
        "num_ids": num_ids,
        "cameras": cams,
        "metric": "cosine",
        "features": f"float32, noise sigma {sigma}",
    }
    return (qf, gf, q_pids, g_pids, q_cams, g_cams), params


@benchmark("eval_msmt17", "evaluate_features at MSMT17 size (11,659 x 82,161, dim 768)")
def eval_msmt17(quick: bool) -> Measurement:
    import torch

    from dynamix.evaluation import evaluate_features
    from dynamix.evaluation.features import pairwise_distance, prepare_features

    (qf, gf, qp, gp, qc, gc), params = msmt_case(quick)
    reset_peak_rss()
    best, times, result = time_best(lambda: evaluate_features(qf, gf, qp, gp, qc, gc), repeats=2)
    peak = peak_rss_gib()

    # Baseline: dense fp32 distances (one matmul) + the argsort loop, on a subset of the
    # queries, extrapolated linearly (both parts scale with the number of queries).
    n = min(len(qf), 300 if quick else 1500)
    cpu = torch.device("cpu")
    g = prepare_features(torch.from_numpy(gf), cpu, "cosine", True)

    def dense_then_loop() -> dict[str, float]:
        q = prepare_features(torch.from_numpy(qf[:n]), cpu, "cosine", True)
        dist = pairwise_distance(q, g).numpy()
        return argsort_loop(dist, qp[:n], gp, qc[:n], gc)

    sub, _, _ = time_best(dense_then_loop, repeats=1)
    base = sub * len(qf) / n
    params.update(
        metrics={k: round(v, 4) for k, v in result.as_dict().items()},
        seconds_runs=summary(times),
        baseline=(
            f"dense fp32 distances + per-query np.argsort loop, timed on the first {n} "
            f"queries ({sub:.1f} s) and extrapolated x{len(qf) / n:.2f}"
        ),
        baseline_extrapolated=True,
    )
    return Measurement(seconds=best, peak_rss_gib=peak, baseline_seconds=base, params=params)
