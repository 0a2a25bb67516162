"""Market-1501 metrics (CMC, mAP, mINP, Market-kit AP) from the ranks of the positives.

Protocol (shared/docs/conventions.md): gallery items with the query's pid *and* camera are
dropped; a query left without positives is skipped and counted out of ``num_valid_query``.
With ``r_1 < … < r_n`` the 0-based ranks of a query's n positives among its kept items:

- CMC[k]   = 1 if r_1 <= k (cumulative hit clipped at 1), for k < ``max_rank``. A query with
  fewer than ``max_rank`` kept items has its first hit inside its list, so its curve
  simply stays at 1 up to ``max_rank`` (clamped: no crash, no garbage).
- AP       = mean_i i / (r_i + 1)            non-interpolated: torchreid / fast-reid number
- mINP     = n / (r_n + 1)                   fast-reid
- AP (kit) = mean_i (p(r_i - 1) + p(r_i)) / 2 with p(-1) = 1: the official Market-1501
  MATLAB kit's trapezoid rule, 0.5–2.7 points lower; reported under its own key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dynamix.evaluation.inputs import (
    EvaluationInputError,
    check_distmat,
    check_ids,
    check_max_rank,
    tensor_view,
)
from dynamix.evaluation.ranking import GalleryIndex, positive_ranks_block, ranking_threads

log = logging.getLogger(__name__)

# Distances ranked per block: ~1M keeps the ranking step's temporaries (~30 bytes per
# distance at worst) cache-friendly; 4-8x larger blocks measured ~1.4x slower on
# unstructured input and no faster on structured input.
DEFAULT_BLOCK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class RankResult:
    """Metrics of one evaluation, all fractions in [0, 1].

    cmc: (max_rank,) float64, ``cmc[k-1]`` is rank-k accuracy.
    """

    cmc: np.ndarray = field(repr=False)
    mAP: float
    mINP: float
    mAP_market_kit: float
    num_valid_query: int
    num_query: int

    def rank(self, k: int) -> float:
        """Rank-k accuracy (``cmc[k-1]``)."""
        return float(self.cmc[k - 1])

    def as_dict(self) -> dict[str, float | int]:
        """Plain floats for JSON: rank1/5/10 (those within ``max_rank``), mAP, mINP, …"""
        out: dict[str, float | int] = {f"rank{k}": self.rank(k) for k in (1, 5, 10) if k <= len(self.cmc)}
        out.update(
            mAP=float(self.mAP),
            mINP=float(self.mINP),
            mAP_market_kit=float(self.mAP_market_kit),
            num_valid_query=int(self.num_valid_query),
        )
        return out


def metrics_from_ranks(rows: np.ndarray, ranks: np.ndarray, num_query: int, max_rank: int) -> RankResult:
    """Aggregate per-positive ranks into :class:`RankResult`.

    rows, ranks: (N,) int64, one entry per positive, sorted by (row, rank); ``rows`` are
    query indices in [0, num_query). Raises if no query has a positive.
    """
    n_pos = np.bincount(rows, minlength=num_query)
    valid = n_pos > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise EvaluationInputError(
            f"no valid query: none of the {num_query} queries has a gallery item with its pid "
            "on another camera; check that query and gallery pids/camids match"
        )
    start = np.cumsum(n_pos) - n_pos
    hit_no = np.arange(len(rows)) - start[rows] + 1  # i: 1-based index of the hit
    pos = ranks + 1.0  # 1-based rank
    prec = hit_no / pos
    prec_before = np.where(ranks > 0, (hit_no - 1) / np.maximum(ranks, 1), 1.0)
    n = n_pos[valid]
    ap = np.bincount(rows, weights=prec, minlength=num_query)[valid] / n
    kit = np.bincount(rows, weights=(prec + prec_before) / 2, minlength=num_query)[valid] / n
    first = ranks[start[valid]]
    last = pos[start[valid] + n - 1]
    hist = np.bincount(np.minimum(first, max_rank), minlength=max_rank + 1)[:max_rank]
    return RankResult(
        cmc=np.cumsum(hist) / num_valid,
        mAP=float(ap.mean()),
        mINP=float((n / last).mean()),
        mAP_market_kit=float(kit.mean()),
        num_valid_query=num_valid,
        num_query=num_query,
    )


class RankAccumulator:
    """Collects the positive ranks of query blocks, in query order, then scores them."""

    def __init__(self, num_query: int, max_rank: int) -> None:
        self.num_query = num_query
        self.max_rank = max_rank
        self._rows: list[np.ndarray] = []
        self._ranks: list[np.ndarray] = []

    def add(self, first_row: int, rows: torch.Tensor, ranks: torch.Tensor) -> None:
        """Add a block's output (rows relative to the block start ``first_row``)."""
        self._rows.append(rows.cpu().numpy() + first_row)
        self._ranks.append(ranks.cpu().numpy())

    def result(self) -> RankResult:
        rows = np.concatenate(self._rows) if self._rows else np.zeros(0, np.int64)
        ranks = np.concatenate(self._ranks) if self._ranks else np.zeros(0, np.int64)
        return metrics_from_ranks(rows, ranks, self.num_query, self.max_rank)


def query_blocks(num_query: int, block_rows: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive query blocks."""
    for start in range(0, num_query, block_rows):
        yield start, min(start + block_rows, num_query)


def block_rows_for(num_gallery: int, index: GalleryIndex, block_size: int | None) -> int:
    """Rows per block: ``block_size`` if given, else ~DEFAULT_BLOCK_ELEMENTS distances."""
    rows = block_size if block_size is not None else DEFAULT_BLOCK_ELEMENTS // max(num_gallery, 1)
    if int(rows) != rows or rows < 1:
        raise EvaluationInputError(f"block_size must be a positive integer, got {block_size!r}")
    return max(1, min(int(rows), index.max_block_rows()))


def rank_into(
    acc: RankAccumulator,
    start: int,
    dist: torch.Tensor,
    q_pids: torch.Tensor,
    q_camids: torch.Tensor,
    index: GalleryIndex,
    rows_per_block: int,
) -> None:
    """Rank the queries ``start … start + len(dist)`` in sub-blocks and add them to ``acc``.

    dist: (B, G) distances of those queries; q_pids, q_camids: (B,) int64 on dist's device.
    """
    with ranking_threads(dist.device):
        for lo, hi in query_blocks(dist.shape[0], rows_per_block):
            acc.add(
                start + lo,
                *positive_ranks_block(dist[lo:hi], q_pids[lo:hi], q_camids[lo:hi], index),
            )


def evaluate_rank(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    *,
    block_size: int | None = None,
) -> RankResult:
    """Market-1501 metrics of a query × gallery distance matrix (smaller = more similar).

    distmat: (Q, G) float32 or float64 (numpy or torch; float32 is ranked as float32, never
    widened); q_pids, q_camids: (Q,) ints; g_pids, g_camids: (G,) ints. Equal distances are
    ordered by gallery index (a stable sort). ``block_size`` = query rows per block.
    Raises :class:`EvaluationInputError` on mismatched shapes, NaN, or no valid query.
    """
    dist = check_distmat(distmat)
    num_q, num_g = dist.shape
    qp, gp, qc, gc = check_ids(q_pids, g_pids, q_camids, g_camids, num_q, num_g, f"distmat {num_q}×{num_g}")
    max_rank = check_max_rank(max_rank)
    index = GalleryIndex.build(gp, gc)
    rows = block_rows_for(num_g, index, block_size)
    acc = RankAccumulator(num_q, max_rank)
    rank_into(acc, 0, tensor_view(dist), torch.from_numpy(qp), torch.from_numpy(qc), index, rows)
    result = acc.result()
    log.debug("evaluate_rank %dx%d: %s", num_q, num_g, result.as_dict())
    return result
